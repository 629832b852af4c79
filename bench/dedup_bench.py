"""Dedup cost per article and state size per article with N articles in the window.

Usage: .venv/bin/python bench/dedup_bench.py [--n 100000] [--copies 0.05] [--store PATH]

Synthetic articles (300 words drawn from a 20,000-word vocabulary with a Zipf-like
skew, titles of 8 words) spread over 6 days so all stay inside the 7-day window; a
fraction are copies of earlier ones (reordered paragraphs, trimmed ending, new dateline).
Each article goes through :func:`transforms.dedup.decide` against an on-disk
SqliteDedupStore, as in the local driver. Prints ms/article (decide only, text generation
excluded) per 10% of the run, the SQLite file size per article and the process RSS growth
per article.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.dedupstore import SqliteDedupStore
from transforms.dedup import decide
from transforms.records import Article

SYLL = ["ka", "ba", "ra", "ma", "na", "ta", "si", "lu", "pe", "ng", "an", "ir", "di", "ke", "su", "wa", "ja", "ha"]


def vocabulary(rnd: random.Random, size: int = 20000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rnd.choice(SYLL) for _ in range(rnd.randint(2, 4))))
    return sorted(words)


def body(rnd: random.Random, vocab: list[str], words: int = 300) -> str:
    picks = [vocab[min(int(rnd.paretovariate(0.9)) - 1, len(vocab) - 1)] if rnd.random() < 0.4
             else rnd.choice(vocab) for _ in range(words)]
    paras = [" ".join(picks[i:i + 50]) + "." for i in range(0, words, 50)]
    return "\n\n".join(paras)


def copy_of(rnd: random.Random, text: str) -> str:
    paras = text.split("\n\n")
    how = rnd.randrange(3)
    if how == 0:
        paras[0], paras[1] = paras[1], paras[0]
    elif how == 1:
        paras = paras[: len(paras) - 1]
    else:
        paras[0] = "JAKARTA, KOMPAS.com - " + paras[0]
    return "\n\n".join(paras)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--copies", type=float, default=0.05)
    ap.add_argument("--store", default="")
    args = ap.parse_args()
    rnd = random.Random(42)
    vocab = vocabulary(rnd)
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.store or os.path.join(tmp.name, "bench.sqlite"))
    store = SqliteDedupStore(path, window_days=7)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    step = timedelta(days=6) / args.n
    texts: list[str] = []
    spent = 0.0
    spent_block = 0.0
    dups = 0
    block = max(1, args.n // 10)
    for i in range(args.n):
        if texts and rnd.random() < args.copies:
            text = copy_of(rnd, rnd.choice(texts[-2000:]))
        else:
            text = body(rnd, vocab)
        if len(texts) < 100_000:
            texts.append(text)
        seen = t0 + step * i
        art = Article(id=f"a{i}", url=f"https://x.id/{i}", canonical_url=f"https://x.id/{i}", source="x",
                      title=" ".join(rnd.choice(vocab) for _ in range(8)), text=text, published=seen,
                      first_seen=seen)
        t = time.perf_counter()
        out = decide(art, store, now=seen)
        dt = time.perf_counter() - t
        spent += dt
        spent_block += dt
        dups += out.duplicate_of is not None
        if (i + 1) % block == 0:
            print(f"{i + 1:>7} articles: {1000 * spent_block / block:.2f} ms/article (this block), "
                  f"db {path.stat().st_size / (i + 1):.0f} B/article, duplicates {dups}", flush=True)
            spent_block = 0.0
    stats = store.stats()
    rss = proc.memory_info().rss - rss0
    print(f"total: {args.n} articles, {1000 * spent / args.n:.2f} ms/article (decide), duplicates found {dups}")
    print(f"store: {stats['bytes']} B = {stats['bytes'] / args.n:.0f} B/article on disk; rows {stats}")
    print(f"process RSS growth: {rss / 1e6:.1f} MB = {rss / args.n:.0f} B/article (SQLite page cache included)")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
