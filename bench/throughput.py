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

Ratios are against the floor measured in the same run, just before each line (the floor is
printed again each time). On a shared machine the articles/s move
with the other processes' load; the CPU time per article (summed over newsmon and every process
it starts, sampled every 0.1 s) moves much less, so each line also prints the floor's CPU
per article divided by its own (1.00 = nothing on top of trafilatura). ``--repeat`` runs
everything R times and prints each round.

A process start (imports, the language model, the topic rules, extraction workers) costs a few
seconds that the floor, measured in a warm process, does not pay. Each newsmon run is therefore
followed by a ``past start-up`` line: the same command over the first :data:`STARTUP_ARTICLES`
articles (a feed of their own), and the rate and CPU per article of the rest, i.e.
``(N - n) / (time(N) - time(n))``: what a long backfill or a burst meets once newsmon runs.

    .venv/bin/python bench/throughput.py [--articles 1000] [--repeat 1] [--workers 1 2] [--before CHECKOUT]
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
STARTUP_ARTICLES = 10


def floor(pages: list[str], cpu: int | None) -> tuple[float, float]:
    """(wall, CPU) seconds for trafilatura alone over ``pages`` (pinned to ``cpu`` when given)."""
    import trafilatura

    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for page in pages[:5]:  # warm-up: dateparser/htmldate load their tables on first use
            trafilatura.extract(page, output_format="json", with_metadata=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        for page in pages:
            trafilatura.extract(page, output_format="json", with_metadata=True)
        return time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        os.sched_setaffinity(0, before)


def plain_loop(feed_url: str, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds for feedparser + urllib + trafilatura.extract, one page after the other."""
    import feedparser
    import trafilatura

    start, cpu_start = time.perf_counter(), time.process_time()
    with urllib.request.urlopen(feed_url, timeout=30) as r:  # noqa: S310 - loopback
        feed = feedparser.parse(r.read())
    done = 0
    for entry in feed.entries:
        with urllib.request.urlopen(entry.link, timeout=30) as r:  # noqa: S310 - loopback
            html = r.read().decode("utf-8")
        if trafilatura.extract(html, output_format="json", with_metadata=True):
            done += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert done == n, f"the loop extracted {done} of {n}"
    return elapsed, cpu


def newsmon_backfill(feed_url: str, tmp: Path, n: int, *, workers: int | None, cpu: int | None,
                     repo: Path = REPO) -> tuple[float, float]:
    """(wall, CPU) seconds from starting ``newsmon backfill`` (of the checkout ``repo``) to its
    exit, CPU summed over newsmon and every process it started; checks every article was stored.
    ``workers=None`` leaves the option out (older checkouts)."""
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
    err = tmp / "backfill.err"
    start = time.perf_counter()
    with open(err, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=fh, preexec_fn=pin)
        cpu = tree_cpu_until_exit(proc)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"newsmon backfill exited {proc.returncode}:\n{err.read_text()[-3000:]}")
    from connectors.localindex import LocalIndex

    index = LocalIndex.in_store(store)
    stored = index.count()
    assert stored == n, f"newsmon stored {stored} of {n}"
    from_page = sum(1 for aid in index.ids() if index.get(aid).extraction == "page")  # type: ignore[union-attr]
    # a page extraction rejects falls back to the feed's text; many would mean a broken extractor
    assert from_page >= 0.99 * n, f"newsmon extracted only {from_page} of {n} from their pages"
    return elapsed, cpu


def show(label: str, wall: float, cpu: float, n: int, base: float, base_cpu: float) -> None:
    """One line: articles/s and its ratio to the floor; CPU ms per article (every process) and
    the floor's CPU per article divided by it (1.0 = no cost on top of trafilatura; this ratio
    moves little with the machine's load, the articles/s do)."""
    rate, cpu_ms = n / wall, cpu / n * 1000
    print(f"{label:<58} {rate:7.1f} articles/s {rate / base:5.2f}x floor | "
          f"CPU {cpu_ms:5.1f} ms/article, floor/this {base_cpu / cpu_ms:4.2f}", flush=True)


def show_past_startup(full: tuple[float, float], small: tuple[float, float], n: int, base: float,
                      base_cpu: float) -> None:
    """The line under a newsmon run: its start-up (``small``: the first STARTUP_ARTICLES) and the
    rate and CPU per article of the other ``n - STARTUP_ARTICLES``."""
    (wall, cpu), (wall0, cpu0) = full, small
    rest = n - STARTUP_ARTICLES
    if wall <= wall0 or cpu <= cpu0:
        print(f"{'  past start-up':<58} (start-up run took longer than the full run: machine too busy)", flush=True)
        return
    rate, cpu_ms = rest / (wall - wall0), (cpu - cpu0) / rest * 1000
    print(f"{'  past start-up (' + f'{STARTUP_ARTICLES} articles: {wall0:.1f} s, CPU {cpu0:.1f} s)':<58} "
          f"{rate:7.1f} articles/s {rate / base:5.2f}x floor | "
          f"CPU {cpu_ms:5.1f} ms/article, floor/this {base_cpu / cpu_ms:4.2f}", flush=True)


def tree_cpu_until_exit(proc: subprocess.Popen[bytes], every: float = 0.1) -> float:
    """Wait for ``proc``; return the CPU seconds (user + system) of it and every process it started.

    ``getrusage`` of our children would count only what their parents reaped and waited for;
    the process tree is sampled instead (at most ``every`` s of a process's last moments can be
    missed)."""
    import psutil

    root = psutil.Process(proc.pid)
    last: dict[int, float] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                t = p.cpu_times()
                last[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        time.sleep(every)
    return sum(last.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=1000)
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
    small_url, small_server = serve_in_subprocess(stories[:STARTUP_ARTICLES], heavy=True)
    print(f"{n} corpus articles as {size:.1f} KB portal pages, served from 127.0.0.1 by another process; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(1, args.repeat + 1):
                if args.repeat > 1:
                    print(f"-- round {round_} (load {os.getloadavg()[0]:.2f})", flush=True)
                def fresh_floor() -> tuple[float, float]:
                    """The floor, measured again just before the next line: this machine's speed
                    drifts by tens of percent over minutes, and a ratio must compare like with like."""
                    wall, cpu_s = floor(pages, cpu)
                    show("floor    trafilatura.extract alone, pages in memory, 1 core", wall, cpu_s, n, n / wall,
                         cpu_s / n * 1000)
                    return n / wall, cpu_s / n * 1000

                if not args.skip_loop:
                    base, base_cpu = fresh_floor()
                    show("loop     feedparser + urllib + extract, 1 process", *plain_loop(feed_url, n), n, base, base_cpu)
                runs: list[tuple[str, Path, int | None, int | None]] = []
                if args.before is not None:
                    where = f"{len(os.sched_getaffinity(0))} cores"
                    runs += [(f"before   backfill ({args.before.name}), pinned to 1 core", args.before.resolve(), None, cpu),
                             (f"before   backfill ({args.before.name}), {where}", args.before.resolve(), None, None)]
                for workers in args.workers:
                    pinned = cpu if workers <= 1 else None
                    where = "pinned to 1 core" if pinned is not None else f"{len(os.sched_getaffinity(0))} cores"
                    runs.append((f"newsmon  backfill --workers {workers}, {where}", REPO, workers, pinned))
                for label, repo, workers, pinned in runs:
                    base, base_cpu = fresh_floor()
                    wall, cpu_s = newsmon_backfill(feed_url, Path(tmp), n, workers=workers, cpu=pinned, repo=repo)
                    show(label, wall, cpu_s, n, base, base_cpu)
                    small = newsmon_backfill(small_url, Path(tmp), STARTUP_ARTICLES, workers=workers, cpu=pinned,
                                             repo=repo)
                    show_past_startup((wall, cpu_s), small, n, base, base_cpu)
    finally:
        server.kill()  # type: ignore[attr-defined]
        small_server.kill()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
