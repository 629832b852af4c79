"""Metrics: every configured series at 0 from start-up; one exporter per worker process."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import CollectorRegistry

from connectors import metrics


def test_configured_series_exist_at_zero() -> None:
    reg = CollectorRegistry()
    m = metrics.Metrics(reg)
    m.init_series(feeds=["antara-dunia", "tempo-dunia"], topics=["russia-dprk", "nato-reaction"], sink="localindex")
    get = reg.get_sample_value
    for topic in ("russia-dprk", "nato-reaction"):
        assert get("newsmon_articles_tagged_total", {"topic": topic}) == 0
    for feed in ("antara-dunia", "tempo-dunia"):
        for outcome in metrics.FEED_POLL_OUTCOMES:
            assert get("newsmon_feed_polls_total", {"feed": feed, "outcome": outcome}) == 0
    for kind in ("url", "exact", "near"):
        assert get("newsmon_duplicates_total", {"kind": kind}) == 0
    assert get("newsmon_dead_letters_total", {"sink": "localindex"}) == 0


def test_worker_exporter_starts_once_and_skips_a_taken_port() -> None:
    metrics.set_default(metrics.Metrics(CollectorRegistry()))
    metrics._worker_exporter = None
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        env = {"NEWSMON_METRICS_HOST": "127.0.0.1", "NEWSMON_METRICS_PORT": str(taken)}
        host, port = metrics.serve_worker_metrics(env)
        assert (host, port) != ("127.0.0.1", taken) and taken < port <= taken + 16
        assert metrics.serve_worker_metrics(env) == (host, port)  # once per process
        metrics.get().duplicates.labels("near").inc()
        body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
        assert 'newsmon_duplicates_total{kind="near"} 1.0' in body
    finally:
        blocker.close()
        metrics._worker_exporter = None
    assert metrics.serve_worker_metrics({"NEWSMON_METRICS_PORT": "0"}) is None
