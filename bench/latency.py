"""Latency: from an item appearing in a feed to the article being searchable (local store).

Runs `newsmon run` as a subprocess against a local feed, publishes --items real corpus articles
one at a time at random gaps, and watches the store (a concurrent reader, as `newsmon search`
is) for each one. Prints p50/p95/max. Latency = wait for the next poll + one cycle.

    .venv/bin/python bench/latency.py --items 40 --poll 2
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from _corpus import corpus_articles, percentile

from connectors.localindex import LocalIndex
from tests.e2e import env, newsmon_cmd
from tests.localserver import LocalServer
from tests.newssite import NewsSite
from transforms.records import article_id
from transforms.urls import canonical_url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--poll", type=float, default=2.0)
    args = ap.parse_args()
    stories = corpus_articles(args.items + 5)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, LocalServer() as server:
        store = Path(tmp) / "store"
        site = NewsSite(server)
        site.publish(*stories[0])
        cmd = newsmon_cmd("run", "--store", str(store), "--feed", site.feed_url, "--poll-interval", str(args.poll),
                          "--allow-host", "127.0.0.1", "--metrics-port", "0")
        proc = subprocess.Popen(cmd, env=env(), stdout=open(Path(tmp) / "log", "wb"), stderr=subprocess.STDOUT)
        latencies: list[float] = []
        try:
            while not (store / "index.sqlite").exists():
                time.sleep(0.2)
            index = LocalIndex(store / "index.sqlite")
            while index.count() < 1:
                time.sleep(0.2)
            for title, paras in stories[1 : args.items + 1]:
                time.sleep(rng.uniform(0.2, 2 * args.poll))
                story = site.publish(title, paras)
                t0 = time.monotonic()
                aid = article_id(canonical_url(site.url_of(story)))
                while index.get(aid) is None:
                    time.sleep(0.05)
                    if time.monotonic() - t0 > 120:
                        raise SystemExit(f"item not searchable after 120 s: {story.title}")
                latencies.append(time.monotonic() - t0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"{len(latencies)} items, poll interval {args.poll:g} s: feed item -> searchable "
          f"p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s")


if __name__ == "__main__":
    main()
