"""Topic tagging cost and corpus tag counts.

    .venv/bin/python bench/topics_bench.py [--show N] [--limit N]

Reads ../shared/data/corpus/articles.jsonl.gz (third-party text, never copied into the repo),
runs every shipped topic over each article, and prints ms/article (median of 3 passes) and how
many articles got each tag; then the cost on the shared topics dev set, whose pages mostly name
Russia and North Korea and so take the full path (the corpus mostly does not). ``--show N`` prints the first N tagged articles per topic with their
score and strongest sentences, for eyeballing false positives.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transforms.topics import evaluate, load_topics

CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "articles.jsonl.gz"
SEEDS = ROOT.parent / "shared" / "seeds"
DEV = ROOT.parent / "shared" / "data" / "eval" / "topics_dev.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    if not CORPUS.exists():
        print(f"{CORPUS} absent: nothing to measure")
        return 0
    articles = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            articles.append((d["id"], d.get("title") or "", d.get("text") or ""))
            if args.limit and len(articles) >= args.limit:
                break
    t0 = time.perf_counter()
    topics = load_topics()
    load_ms = (time.perf_counter() - t0) * 1000
    chars = sum(len(t) + len(x) for _, t, x in articles)
    timings = []
    results: dict[str, list[tuple[str, str, float]]] = {t.name: [] for t in topics}
    for p in range(args.passes):
        start = time.perf_counter()
        for ident, title, text in articles:
            evidence = evaluate(topics, title=title, text=text)
            if p == 0:
                for e in evidence:
                    results[e.topic].append((ident, title, e.score))
        timings.append(time.perf_counter() - start)
    per_article = statistics.median(timings) / len(articles) * 1000
    print(f"topics: {', '.join(t.name for t in topics)} (load+compile {load_ms:.1f} ms)")
    print(f"articles: {len(articles)}, mean length {chars / len(articles):.0f} chars")
    print(f"tagging cost: {per_article:.3f} ms/article (median of {args.passes} passes; "
          f"{per_article / (chars / len(articles)) * 1000:.3f} ms per 1000 chars)")
    for name, rows in results.items():
        print(f"tagged {name}: {len(rows)}")
        for ident, title, score in rows[: args.show]:
            print(f"    {score:6.1f}  {ident}  {title[:90]}")
    if DEV.is_file():
        rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
        timings = []
        for _ in range(args.passes):
            start = time.perf_counter()
            for row in rows:
                evaluate(topics, title="", text=row.get("text") or "")
            timings.append(time.perf_counter() - start)
        dev_ms = statistics.median(timings) / len(rows) * 1000
        print(f"on-topic pages ({len(rows)} rows of the shared topics dev set, about half on topic): "
              f"{dev_ms:.3f} ms/article")
    if SEEDS.is_dir():
        for path in sorted(SEEDS.glob("*.txt")):
            head, _, body = path.read_text(encoding="utf-8").partition("\n")
            tags = [e.topic for e in evaluate(topics, title=head, text=body)]
            print(f"seed {path.name}: {tags}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
