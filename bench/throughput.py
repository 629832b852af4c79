"""Throughput: corpus pages served from loopback -> fetched, extracted, deduplicated, tagged, stored.

Runs the same N articles twice, in the same process and run:
  beam   the local driver (bounded Beam pipeline per cycle on FnApiRunner, state store, outbox)
  plain  a plain-Python loop calling the same functions one article at a time (no Beam, no outbox)
and prints articles/s for each and their ratio.

    .venv/bin/python bench/throughput.py [--articles 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _corpus import corpus_articles, serve_in_subprocess

from connectors import metrics
from connectors.dedupstore import SqliteDedupStore
from connectors.localindex import LocalIndex
from connectors.rss import poll_feed
from connectors.web import HttpClient
from pipelines.config import Config, FeedConfig, FetchConfig
from pipelines.local import LocalDriver, canonical_id
from transforms.dedup import decide
from transforms.extract import build_article
from transforms.records import utcnow
from transforms.topics import load_topics, tag_article

FETCH = FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, per_host_concurrency=8)


def run_beam(feed_url: str, store: Path, n: int) -> float:
    cfg = Config(feeds=(FeedConfig(url=feed_url, id="bench", name="Bench"),), store_dir=store, fetch=FETCH, metrics_port=0)
    driver = LocalDriver(cfg)
    start = time.perf_counter()
    try:
        driver.cycle(force_all=True)
    finally:
        driver.close()
    elapsed = time.perf_counter() - start
    stored = LocalIndex.in_store(store).count()
    assert stored == n, f"beam stored {stored} of {n}"
    return elapsed


def run_plain(feed_url: str, store: Path, n: int) -> float:
    http = HttpClient(FETCH)
    dedup = SqliteDedupStore(store / "dedup.sqlite")
    index = LocalIndex.in_store(store)
    topics = load_topics(None)
    feed = FeedConfig(url=feed_url, id="bench", name="Bench")
    start = time.perf_counter()
    result = poll_feed(http, feed, None, now=time.time())
    for entry in result.entries:
        canonical, aid = canonical_id(entry.link)
        resp = http.get(entry.link)
        article = build_article(entry=entry, article_id=aid, canonical_url=canonical, final_url=resp.url,
                                html=resp.text(), first_seen=entry.fetched_at)
        article = decide(article, dedup, now=utcnow())
        article = tag_article(article, topics)
        index.write([article])
    elapsed = time.perf_counter() - start
    assert index.count() == n, f"plain stored {index.count()} of {n}"
    http.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=500)
    args = ap.parse_args()
    stories = corpus_articles(args.articles)
    n = len(stories)
    metrics.set_default(metrics.Metrics(__import__("prometheus_client").CollectorRegistry()))
    feed_url, server = serve_in_subprocess(stories)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # warm up one-time costs (htmldate loads dateparser's locales on first use: ~3 s) for both
            run_plain(feed_url, Path(tmp) / "warm-up", n)
            plain = run_plain(feed_url, Path(tmp) / "plain", n)
            beam = run_beam(feed_url, Path(tmp) / "beam", n)
    finally:
        server.kill()  # type: ignore[attr-defined]
    print(f"articles: {n} real corpus articles served from 127.0.0.1 by another process (one feed listing all)")
    print(f"plain Python loop : {n / plain:7.1f} articles/s  ({plain:.1f} s)")
    print(f"Beam local driver : {n / beam:7.1f} articles/s  ({beam:.1f} s, {-(-n // 100)} bounded pipelines of <=100)")
    print(f"ratio Beam/plain  : {plain / beam:.2f}")


if __name__ == "__main__":
    main()
