"""Run ``newsmon dedup`` over ../shared/data/corpus and print figures plus a sample to hand-check.

Usage: .venv/bin/python bench/dedup_corpus_report.py [--sample 15] [--seed 7]

The corpus is sorted by ``published`` (undated articles last, at "now") and piped through the
real CLI in a subprocess, so the figures are those of the command users run. For each sampled
pair it prints both titles, both-way containment and the opening of each stripped text, so a
person can judge "copy" or "different article" and compute the precision.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "data" / "corpus" / "articles.jsonl.gz"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=15)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not CORPUS.exists():
        print(f"skip: {CORPUS} absent")
        return 0
    from transforms.dedup import containment, shingle_hashes, strip_boilerplate, tokens

    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    rows.sort(key=lambda d: (d.get("published") is None, d.get("published") or ""))
    src = {r["id"]: r for r in rows}
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dedup", "--summary"],
        input=payload, capture_output=True, text=True, cwd=REPO, check=True,
    )
    elapsed = time.perf_counter() - t
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    pairs = [(r["id"], r["duplicate_of"], r["duplicate_kind"], r["similarity"]) for r in out if r["duplicate_kind"]]
    stories = collections.Counter(r["story_id"] for r in out)
    sizes = collections.Counter(min(n, 10) for n in stories.values())
    print(f"articles: {len(out)}  wall: {elapsed:.1f} s ({1000 * elapsed / len(out):.2f} ms/article incl. start-up)")
    print(f"pairs flagged: {len(pairs)}  by kind: {dict(collections.Counter(p[2] for p in pairs))}")
    print(f"by dataset: {dict(collections.Counter(p[0].split(':')[0] for p in pairs))}")
    print(f"stories: {len(stories)}  multi-article stories: {sum(1 for n in stories.values() if n > 1)}"
          f"  size histogram (10 = 10+): {dict(sorted(sizes.items()))}")
    rnd = random.Random(args.seed)
    for a, b, kind, sim in rnd.sample(pairs, min(args.sample, len(pairs))):
        ta, tb = (tokens(strip_boilerplate(src[x]["text"])) for x in (a, b))
        sa, sb = shingle_hashes(ta), shingle_hashes(tb)
        title = lambda x: (src[x].get("title") or src[x].get("title_slug") or "")[:70]
        print(f"\n[{kind} {sim}] {a} <- copy of {b}   contain a->b {containment(sa, sb):.2f}  b->a {containment(sb, sa):.2f}")
        print(f"  A: {title(a)}\n  B: {title(b)}")
        print(f"  A text: {' '.join(ta[:30])}\n  B text: {' '.join(tb[:30])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
