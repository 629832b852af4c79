"""Throughput on realistic pages, newsmon beside the extraction floor, in one run.

N real corpus articles are rendered as ~9 KB news-portal pages (menu, scripts, related and
most-read lists, "Baca juga" links, footer: ``_corpus.heavy_page``) and served from another
process on 127.0.0.1. Measured one after the other, in the same run:

  floor     ``trafilatura.extract(html, output_format="json", with_metadata=True)`` over the
            pages already in memory, one core: what any pipeline built on trafilatura pays
  loop      what a user would write by hand: feedparser + urllib fetch of each page + the same
            extract, sequential, one process
  newsmon   ``newsmon backfill`` as a subprocess, from process start to exit (imports, polling,
            fetch, extract, dedup, topics, the embedded index), every article checked stored:
            ``--workers 1`` pinned to one core, then ``--workers 2`` on both cores

Ratios are against the floor measured in the same run (the machine is shared: absolute numbers
move with the load, the ratios much less). ``--repeat`` runs everything R times and prints each
round, so a noisy round shows.

    .venv/bin/python bench/throughput.py [--articles 300] [--repeat 1] [--workers 1 2] [--before CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _corpus import REPO, corpus_articles, heavy_page, serve_in_subprocess

PYTHON = sys.executable


def floor(pages: list[str], cpu: int | None) -> float:
    """Seconds for trafilatura alone over ``pages`` (pinned to ``cpu`` when given)."""
    import trafilatura

    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for page in pages[:5]:  # warm-up: dateparser/htmldate load their tables on first use
            trafilatura.extract(page, output_format="json", with_metadata=True)
        start = time.perf_counter()
        for page in pages:
            trafilatura.extract(page, output_format="json", with_metadata=True)
        return time.perf_counter() - start
    finally:
        os.sched_setaffinity(0, before)


def plain_loop(feed_url: str, n: int) -> float:
    """Seconds for feedparser + urllib + trafilatura.extract, one page after the other."""
    import feedparser
    import trafilatura

    start = time.perf_counter()
    with urllib.request.urlopen(feed_url, timeout=30) as r:  # noqa: S310 - loopback
        feed = feedparser.parse(r.read())
    done = 0
    for entry in feed.entries:
        with urllib.request.urlopen(entry.link, timeout=30) as r:  # noqa: S310 - loopback
            html = r.read().decode("utf-8")
        if trafilatura.extract(html, output_format="json", with_metadata=True):
            done += 1
    elapsed = time.perf_counter() - start
    assert done == n, f"the loop extracted {done} of {n}"
    return elapsed


def newsmon_backfill(feed_url: str, tmp: Path, n: int, *, workers: int | None, cpu: int | None,
                     repo: Path = REPO) -> float:
    """Seconds from starting ``newsmon backfill`` (of the checkout ``repo``) to its exit; checks
    every article was stored. ``workers=None`` leaves the option out (older checkouts)."""
    store = tmp / f"store-{workers}-{time.monotonic_ns()}"
    config = tmp / "bench.yaml"
    # every page is on one loopback host here: relax the per-host politeness meant for real outlets
    config.write_text("fetch:\n  per_host_min_spacing: 0\n  per_host_concurrency: 8\n")
    cmd = [PYTHON, "-m", "pipelines.cli", "backfill", "--feed", feed_url, "--store", str(store),
           "--config", str(config), "--allow-host", "127.0.0.1", "--quiet"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env["PYTHONPATH"] = str(repo)
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, timeout=1800, preexec_fn=pin)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"newsmon backfill exited {out.returncode}:\n{out.stderr.decode()[-3000:]}")
    from connectors.localindex import LocalIndex

    index = LocalIndex.in_store(store)
    stored = index.count()
    assert stored == n, f"newsmon stored {stored} of {n}"
    from_page = sum(1 for aid in index.ids() if index.get(aid).extraction == "page")  # type: ignore[union-attr]
    # a page extraction rejects falls back to the feed's text; many would mean a broken extractor
    assert from_page >= 0.99 * n, f"newsmon extracted only {from_page} of {n} from their pages"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="newsmon --workers values to run (1 is pinned to one core)")
    ap.add_argument("--skip-loop", action="store_true", help="skip the plain loop")
    ap.add_argument("--before", type=Path, metavar="CHECKOUT",
                    help="also run `newsmon backfill` of another checkout (e.g. `git worktree add /tmp/before "
                         "COMMIT`), pinned to one core and on both, in the same run")
    args = ap.parse_args()
    stories = corpus_articles(args.articles)
    n = len(stories)
    cpu = sorted(os.sched_getaffinity(0))[0]
    published = "2026-01-05T10:00:00+00:00"
    pages = [heavy_page(stories, i, published=published) for i in range(n)]
    size = sum(len(p.encode()) for p in pages) / n / 1024
    feed_url, server = serve_in_subprocess(stories, heavy=True)
    print(f"{n} corpus articles as {size:.1f} KB portal pages, served from 127.0.0.1 by another process; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(1, args.repeat + 1):
                if args.repeat > 1:
                    print(f"-- round {round_} (load {os.getloadavg()[0]:.2f})", flush=True)
                base = n / floor(pages, cpu)
                print(f"floor    trafilatura.extract alone, pages in memory, 1 core  {base:7.1f} articles/s", flush=True)
                if not args.skip_loop:
                    rate = n / plain_loop(feed_url, n)
                    print(f"loop     feedparser + urllib + extract, 1 process          {rate:7.1f} articles/s"
                          f"  {rate / base:5.2f}x floor", flush=True)
                if args.before is not None:
                    for pinned in (cpu, None):
                        rate = n / newsmon_backfill(feed_url, Path(tmp), n, workers=None, cpu=pinned,
                                                    repo=args.before.resolve())
                        where = "pinned to 1 core" if pinned is not None else f"{len(os.sched_getaffinity(0))} cores"
                        label = f"before   backfill ({args.before.name}), {where}, start to exit"
                        print(f"{label:<60} {rate:7.1f} articles/s  {rate / base:5.2f}x floor", flush=True)
                for workers in args.workers:
                    pinned = cpu if workers <= 1 else None
                    rate = n / newsmon_backfill(feed_url, Path(tmp), n, workers=workers, cpu=pinned)
                    where = "pinned to 1 core" if pinned is not None else f"{len(os.sched_getaffinity(0))} cores"
                    label = f"newsmon  backfill --workers {workers}, {where}, start to exit"
                    print(f"{label:<60} {rate:7.1f} articles/s  {rate / base:5.2f}x floor", flush=True)
    finally:
        server.kill()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
