"""Resident memory of `newsmon run` / `newsmon backfill` (a subprocess) over time.

  idle      N local feeds that never change, polled every --poll seconds for --minutes
  articles  one local feed that grows to --articles real corpus articles while newsmon runs
  backfill  `newsmon backfill --workers W` of one feed listing --articles corpus articles as
            realistic portal pages (served by another process)

RSS is newsmon's own plus that of every process it started (the extraction workers and
multiprocessing's resource tracker), summed: shared pages count once per process, so the sum errs high.

Prints RSS after warm-up, at the end, the maximum, and the slope (MB/hour) of a least-squares
fit over the samples after warm-up.

    .venv/bin/python bench/memory.py idle --minutes 30
    .venv/bin/python bench/memory.py articles --articles 3000
    .venv/bin/python bench/memory.py backfill --articles 5000 --workers 2
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psutil
from _corpus import corpus_articles, serve_in_subprocess

from connectors.localindex import LocalIndex
from tests.e2e import env, newsmon_cmd
from tests.localserver import LocalServer
from tests.newssite import NewsSite
from transforms.records import utcnow


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if den == 0 else sum((t - mt) * (r - mr) for t, r in samples) / den * 3600


def run(feeds: list[str], store: Path, poll: float, until, warmup: float, every: float) -> list[tuple[float, float]]:

    # every feed and page is on one host here: relax the per-host politeness meant for real outlets
    config = store.parent / "bench.yaml"
    config.write_text("fetch:\n  per_host_min_spacing: 0\n  per_host_concurrency: 8\n")
    args = ["run", "--config", str(config), "--store", str(store), "--poll-interval", str(poll),
            "--allow-host", "127.0.0.1", "--metrics-port", "0"]
    for f in feeds:
        args += ["--feed", f]
    return sample(args, store, until, warmup, every, finishes=False)


def tree_rss_mb(ps: psutil.Process) -> tuple[float, int]:
    """RSS of ``ps`` and all its descendants (extraction workers, resource tracker), in MB, and how
    many processes that was."""
    total, count = 0, 0
    for p in [ps, *ps.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            count += 1
        except psutil.Error:  # a worker that just exited
            pass
    return total / 2**20, count


def sample(args: list[str], store: Path, until, warmup: float, every: float, *, finishes: bool) -> list[tuple[float, float]]:
    """Run newsmon ``args`` and sample its process tree's RSS every ``every`` s until ``until``
    (``finishes``: until the command exits on its own, which it must do with status 0)."""
    import subprocess

    log = open(store.parent / "newsmon.log", "wb")
    proc = subprocess.Popen(newsmon_cmd(*args), env=env(), stdout=log, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    start = time.monotonic()
    samples: list[tuple[float, float]] = []
    tree: list[int] = []
    try:
        while not until(time.monotonic() - start):
            time.sleep(every)
            if proc.poll() is not None:
                if finishes and proc.returncode == 0:
                    break
                sys.exit(f"newsmon exited early with {proc.returncode}; see {store.parent / 'newsmon.log'}")
            t = time.monotonic() - start
            try:
                rss, processes = tree_rss_mb(ps)
            except psutil.NoSuchProcess:
                continue
            samples.append((t, rss))
            tree.append(processes)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if finishes and tree:  # the last samples of a command that exits see it shut down: not a trend
        while len(samples) > 1 and tree[-1] < max(tree):
            samples.pop()
            tree.pop()
        del samples[-2:]  # closing the stores and stopping the workers (~2 s)
    return [(t, r) for t, r in samples if t >= warmup] or samples


def report(label: str, samples: list[tuple[float, float]]) -> None:
    rss = [r for _, r in samples]
    print(f"{label}: {len(samples)} samples over {samples[-1][0] - samples[0][0]:.0f} s")
    print(f"  RSS after warm-up {rss[0]:.1f} MB, at end {rss[-1]:.1f} MB, max {max(rss):.1f} MB, "
          f"slope {slope_mb_per_hour(samples):+.1f} MB/h")
    step = max(1, len(samples) // 6)
    print("  over time: " + ", ".join(f"{t:.0f} s {r:.1f} MB" for t, r in samples[::step] + samples[-1:]))
    half = len(samples) // 2
    if half >= 2:
        print(f"  slope of the second half {slope_mb_per_hour(samples[half:]):+.1f} MB/h")


def backfill(n: int, workers: int) -> None:
    stories = corpus_articles(n)
    feed_url, server = serve_in_subprocess(stories, heavy=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store"
            store.mkdir()
            config = Path(tmp) / "bench.yaml"
            config.write_text("fetch:\n  per_host_min_spacing: 0\n  per_host_concurrency: 8\n")
            args = ["backfill", "--config", str(config), "--store", str(store), "--feed", feed_url, "--allow-host",
                    "127.0.0.1", "--quiet", "--workers", str(workers)]
            started = time.monotonic()
            samples = sample(args, store, lambda t: False, warmup=15, every=1, finishes=True)
            took = time.monotonic() - started
            stored = LocalIndex.in_store(store).count()
            report(f"backfill: {stored} of {len(stories)} corpus portal pages, --workers {workers}, in {took:.0f} s "
                   f"(RSS of newsmon and its workers)", samples)
    finally:
        server.kill()  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["idle", "articles", "backfill"])
    ap.add_argument("--workers", type=int, default=2, help="backfill: extraction processes")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--feeds", type=int, default=17)
    ap.add_argument("--poll", type=float, default=5.0)
    ap.add_argument("--articles", type=int, default=3000)
    args = ap.parse_args()
    if args.mode == "backfill":
        backfill(args.articles, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp, LocalServer() as server:
        store = Path(tmp) / "store"
        if args.mode == "idle":
            sites = [NewsSite(server, f"/feed{i}.xml", name=f"Outlet {i}") for i in range(args.feeds)]
            for i, site in enumerate(sites):
                for j in range(20):
                    site.publish(f"Berita {i}-{j} tentang banjir dan pemilu", [f"Isi berita {i}-{j}. " * 40])
            samples = run([s.feed_url for s in sites], store, args.poll, lambda t: t > args.minutes * 60,
                          warmup=120, every=10)
            polls = sum(1 for r in server.requests if r.path.startswith("/feed"))
            report(f"idle: {args.feeds} feeds polled every {args.poll:g} s for {args.minutes:g} min ({polls} polls)", samples)
        else:
            stories = corpus_articles(args.articles)
            site = NewsSite(server, max_items=100)  # a busy outlet's feed: the newest 100 items
            t0 = utcnow() - timedelta(days=1)
            for i, (title, paras) in enumerate(stories[:100]):
                site.publish(title, paras, published=t0 + timedelta(seconds=i))
            state = {"next": 100}
            index_path = store / "index.sqlite"

            def done(t: float) -> bool:
                # feed grows by 100 items every 5 s, like a busy outlet
                if state["next"] < len(stories) and t > state["next"] / 100 * 5:
                    for i in range(state["next"], min(len(stories), state["next"] + 100)):
                        title, paras = stories[i]
                        site.publish(title, paras, published=t0 + timedelta(seconds=i))
                    state["next"] += 100
                if state["next"] < len(stories) or not index_path.exists():
                    return False
                return LocalIndex(index_path).count() >= len(stories)

            started = time.monotonic()
            samples = run([site.feed_url], store, 2.0, done, warmup=20, every=2)
            took = time.monotonic() - started
            report(f"articles: {len(stories)} corpus articles through newsmon run in {took:.0f} s", samples)


if __name__ == "__main__":
    main()
