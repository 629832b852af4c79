"""Dedup cost per article and state size per article with N articles in the window.

Usage: .venv/bin/python bench/dedup_bench.py [--n 100000] [--copies 0.05] [--store PATH] [--profile]

Synthetic but news-shaped text, generated here (no third-party text):

* words follow a Zipf-Mandelbrot law (exponent 1.05, offset 2.7) over a 200,000-word vocabulary of
  made-up words; the most frequent ranks are real Indonesian function words (the project's own
  ``STOPWORDS``), so, as in real news, about a third of the tokens never become story terms and
  the rest range from common to one-off;
* every original belongs to an *event*: with probability 0.35 a recent one (one of the last 300),
  otherwise a new one. An event owns 24 rare "name" words (people, places); its articles put 5
  of them in the title and 16 in the lead, so same-event articles share terms the way real
  coverage does and the story index does real work (7 % of originals join an earlier story at
  4k articles, 16 % at 100k; the shared corpus: 8 %). Bodies are 150-600 words in paragraphs
  of 25-60 words;
* a fraction (``--copies``, default 5 %) are copies of a recent article: paragraphs swapped,
  ending trimmed, a dateline and footer added, or a "Baca juga" line inserted.

Articles are spread over 6 days, so all of them stay inside the 7-day window and the store
holds N articles at the end. Each goes through :func:`transforms.dedup.decide` against an
on-disk SqliteDedupStore, as in the local driver. Printed per block of N/10: mean and median
ms/article (decide only; generation excluded), store bytes per article (database + WAL) and
the resident memory of the process. ``--profile`` prints the top functions by cumulative time.

Measured on the 2-core development machine (shared with other jobs), ``--n 100000``:
median 1.62 ms/article in the first 10k block, 1.95 ms in the last (mean 2.4 -> 3.6 ms,
checkpoint stalls included); 4,673 B/article on disk (database + WAL) with 100k articles in
the window; process RSS 108 MB before, 143 MB after (+350 B/article, SQLite cache included).
Before the cost work: 5.8 ms/article at 1-10k and 13.6 ms at 10-20k, growing with the window.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.dedupstore import SqliteDedupStore
from transforms.dedup import STOPWORDS, decide
from transforms.records import Article, article_id

SYLL = (
    "ka",
    "ba",
    "ra",
    "ma",
    "na",
    "ta",
    "si",
    "lu",
    "pe",
    "ng",
    "an",
    "ir",
    "di",
    "ke",
    "su",
    "wa",
    "ja",
    "ha",
    "mo",
    "te",
    "ri",
    "bu",
    "go",
    "ya",
    "el",
    "un",
    "po",
    "de",
)
VOCAB = 200_000
ZIPF_S = 1.05
ZIPF_Q = 2.7
EVENT_WORDS = 24
LEAD_EVENT_WORDS = 16  # event words placed in the lead (the story signal reads title + 80 words)
RECENT_EVENTS = 300


def vocabulary(rng: np.random.Generator, size: int = VOCAB) -> list[str]:
    """Function words first (most frequent ranks), then distinct made-up words of 2-5 syllables."""
    words = sorted(STOPWORDS)
    seen = set(words)
    while len(words) < size:
        n = int(rng.integers(2, 6))
        w = "".join(SYLL[i] for i in rng.integers(0, len(SYLL), n))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@dataclass
class TextGen:
    rng: np.random.Generator
    vocab: list[str]
    cdf: np.ndarray

    @classmethod
    def create(cls, seed: int) -> TextGen:
        rng = np.random.default_rng(seed)
        vocab = vocabulary(rng)
        weights = 1.0 / np.power(np.arange(len(vocab)) + ZIPF_Q, ZIPF_S)
        return cls(rng, vocab, np.cumsum(weights) / weights.sum())

    def words(self, n: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(n))
        return [self.vocab[min(i, len(self.vocab) - 1)] for i in idx]

    def event(self) -> list[str]:
        """Rare words naming an event's people and places (ranks 3,000+)."""
        return [self.vocab[int(i)] for i in self.rng.integers(3000, len(self.vocab), EVENT_WORDS)]

    def article(self, event: list[str]) -> tuple[str, str]:
        rng = self.rng
        title = [event[int(i)] for i in rng.choice(len(event), 5, replace=False)] + self.words(4)
        rng.shuffle(title)
        total = int(rng.integers(150, 601))
        paras: list[str] = []
        while total > 0:
            n = min(total, int(rng.integers(25, 61)))
            words = self.words(n)
            if not paras:  # the lead names the event
                names = rng.choice(len(event), min(n, LEAD_EVENT_WORDS), replace=False)
                for k, e in zip(rng.choice(n, len(names), replace=False), names, strict=True):
                    words[int(k)] = event[int(e)]
            paras.append(" ".join(words).capitalize() + ".")
            total -= n
        return " ".join(title).capitalize(), "\n\n".join(paras)

    def copy_of(self, text: str) -> str:
        paras = text.split("\n\n")
        how = int(self.rng.integers(0, 4))
        if how == 0 and len(paras) > 1:
            paras[0], paras[1] = paras[1], paras[0]
        elif how == 1 and len(paras) > 3:
            paras = paras[: len(paras) - 1]
        elif how == 2:
            paras[0] = "JAKARTA, KOMPAS.com - " + paras[0]
            paras.append("Artikel ini telah tayang di Kompas.com")
        else:
            paras.insert(min(2, len(paras)), "Baca juga: Kabar terbaru dari daerah hari ini")
        return "\n\n".join(paras)


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--copies", type=float, default=0.05)
    ap.add_argument("--store", default="")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    gen = TextGen.create(args.seed)
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.store or os.path.join(tmp.name, "bench.sqlite"))
    store = SqliteDedupStore(path, window_days=7)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    print(
        f"text: Zipf({ZIPF_S}, q={ZIPF_Q}) over {len(gen.vocab)} words, events of {EVENT_WORDS} rare words; "
        f"RSS before the run {rss0 / 1e6:.0f} MB",
        flush=True,
    )
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    step = timedelta(days=6) / args.n
    recent: collections.deque[tuple[str, str]] = collections.deque(maxlen=2000)
    events: collections.deque[list[str]] = collections.deque(maxlen=RECENT_EVENTS)
    block = max(1, args.n // 10)
    times: list[float] = []
    spent = 0.0
    cpu = 0.0  # CPU time of this process: steadier than wall time on a shared machine
    dups = 0
    stories: set[str] = set()
    prof = cProfile.Profile() if args.profile else None
    for i in range(args.n):
        if recent and gen.rng.random() < args.copies:
            title, text = recent[int(gen.rng.integers(0, len(recent)))]
            title, text = "Salinan: " + title, gen.copy_of(text)
        else:
            if events and gen.rng.random() < 0.35:
                event = events[int(gen.rng.integers(0, len(events)))]
            else:
                event = gen.event()
                events.append(event)
            title, text = gen.article(event)
            recent.append((title, text))
        seen = t0 + step * i
        url = f"https://berita.example/{i}"
        art = Article(
            id=article_id(url),
            url=url,
            canonical_url=url,
            source="berita.example",
            title=title,
            text=text,
            published=seen,
            first_seen=seen,
        )
        if prof is not None:
            prof.enable()
        t, c = time.perf_counter(), time.process_time()
        out = decide(art, store, now=seen)
        dt = time.perf_counter() - t
        cpu += time.process_time() - c
        if prof is not None:
            prof.disable()
        times.append(dt)
        spent += dt
        dups += out.duplicate_of is not None
        stories.add(out.story_id)
        if (i + 1) % block == 0:
            blk = times[-block:]
            print(
                f"{i + 1:>7} articles: mean {1000 * statistics.fmean(blk):.2f} ms, median "
                f"{1000 * statistics.median(blk):.2f} ms, p95 {1000 * np.percentile(blk, 95):.2f} ms/article "
                f"(this block); store {disk_bytes(path) / (i + 1):.0f} B/article; "
                f"RSS {proc.memory_info().rss / 1e6:.0f} MB; duplicates {dups}, stories {len(stories)}",
                flush=True,
            )
    stats = store.stats()
    rss = proc.memory_info().rss
    print(
        f"total: {args.n} articles, mean {1000 * spent / args.n:.2f} ms/article, median "
        f"{1000 * statistics.median(times):.2f} ms (decide); CPU {1000 * cpu / args.n:.2f} ms/article; "
        f"duplicates found {dups}; stories {len(stories)}"
    )
    print(
        f"store: {disk_bytes(path)} B on disk (db + WAL) = {disk_bytes(path) / args.n:.0f} B/article; "
        f"pages {stats['bytes'] / args.n:.0f} B/article; rows {stats}"
    )
    print(
        f"process RSS: {rss / 1e6:.0f} MB at the end, growth {(rss - rss0) / 1e6:.1f} MB = "
        f"{(rss - rss0) / args.n:.0f} B/article (SQLite page cache included)"
    )
    store.close()
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
