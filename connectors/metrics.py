"""Prometheus metrics of the pipeline: one place that names every series.

Every stage counts its outcomes here. Metrics live in a ``Metrics`` object bound
to a registry so tests can pass their own (``Metrics(CollectorRegistry())``) and
read values with ``registry.get_sample_value``. Production code uses the process
default from :func:`get`.

Beam DoFns are pickled, so they never hold a ``Metrics`` object: they call
:func:`get` in ``setup``/``process``. With the local driver every DoFn runs in
the driver process, so one exporter serves everything. On a runner with several
worker processes each process exposes its own exporter (see README, "Metrics on
distributed runners") and Prometheus sums the series.

Labels are low-cardinality: topic, source/feed id, outcome, kind, stage. Never URLs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

FEED_POLL_OUTCOMES = (
    "ok",
    "not_modified",
    "unchanged",
    "http_error",
    "timeout",
    "connection_error",
    "too_large",
    "parse_error",
    "blocked",
)
FETCH_OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "too_large", "blocked", "not_html",
                  "robots_disallowed", "robots_unavailable")
ROBOTS_OUTCOMES = ("allowed", "disallowed", "unavailable", "exempt")
ENTRY_REJECT_REASONS = ("no_link", "unreadable")
EXTRACT_OUTCOMES = ("ok", "feed_fallback", "error")
DUPLICATE_KINDS = ("url", "exact", "near")
INDEX_OUTCOMES = ("indexed", "updated", "failed", "dead_letter")
ALERT_OUTCOMES = ("sent", "failed", "expired", "dropped", "too_old", "repeat")
STAGES = ("poll", "fetch", "extract", "dedup", "topics", "sink")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else REGISTRY
        self.registry = r
        self.feed_polls = Counter(
            "newsmon_feed_polls", "Feed polls by outcome.", ["feed", "outcome"], registry=r
        )
        self.feed_items = Counter(
            "newsmon_feed_items", "Feed items seen in polls (new or not).", ["feed"], registry=r
        )
        self.feed_last_success = Gauge(
            "newsmon_feed_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a feed.",
            ["feed"],
            registry=r,
        )
        self.feed_last_new_item = Gauge(
            "newsmon_feed_last_new_item_timestamp_seconds",
            "Unix time a feed last yielded a new item.",
            ["feed"],
            registry=r,
        )
        self.feed_interval = Gauge(
            "newsmon_feed_poll_interval_seconds", "Current adaptive poll interval.", ["feed"], registry=r
        )
        self.articles_seen = Counter(
            "newsmon_articles_seen", "New feed entries accepted for processing.", ["feed"], registry=r
        )
        self.entries_rejected = Counter(
            "newsmon_feed_entries_rejected",
            "Feed entries skipped at intake (no http(s) link of their own, unreadable), counted once each.",
            ["feed", "reason"],
            registry=r,
        )
        self.robots = Counter(
            "newsmon_robots", "robots.txt checks before article fetches, by outcome.", ["outcome"], registry=r
        )
        self.articles_fetched = Counter(
            "newsmon_articles_fetched", "Article page fetches by outcome.", ["outcome"], registry=r
        )
        self.articles_extracted = Counter(
            "newsmon_articles_extracted", "Extractions by outcome.", ["outcome"], registry=r
        )
        self.duplicates = Counter(
            "newsmon_duplicates", "Duplicates found, by kind.", ["kind"], registry=r
        )
        self.articles_tagged = Counter(
            "newsmon_articles_tagged", "Original articles tagged, by topic.", ["topic"], registry=r
        )
        self.articles_indexed = Counter(
            "newsmon_articles_indexed", "Sink writes by outcome.", ["sink", "outcome"], registry=r
        )
        self.articles_failed = Counter(
            "newsmon_articles_failed", "Articles that failed a stage.", ["stage", "reason"], registry=r
        )
        self.bulk_retries = Counter(
            "newsmon_bulk_retries", "Bulk items or requests retried.", ["sink"], registry=r
        )
        self.dead_letters = Counter(
            "newsmon_dead_letters", "Documents sent to the dead-letter store.", ["sink"], registry=r
        )
        self.backlog = Gauge(
            "newsmon_index_backlog",
            "Accepted articles not yet acknowledged by the sink.",
            registry=r,
        )
        self.cycles = Counter(
            "newsmon_cycles", "Pipeline cycles by outcome.", ["outcome"], registry=r
        )
        self.last_cycle = Gauge(
            "newsmon_last_cycle_timestamp_seconds", "Unix time the last cycle finished.", registry=r
        )
        self.latency = Histogram(
            "newsmon_article_latency_seconds",
            "Feed item first seen -> article acknowledged by the sink.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "newsmon_stage_duration_seconds",
            "Time spent per stage (per article, or per batch for poll/sink).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.alerts_sent = Counter(
            "newsmon_alerts_sent",
            "Article alerts for Alertmanager by outcome: sent, failed (attempts), expired, dropped, "
            "too_old and repeat (not sent).",
            ["outcome"],
            registry=r,
        )
        self.article_alerts_enabled = Gauge(
            "newsmon_article_alerts_enabled",
            "1 while this process sends NewArticle alerts to Alertmanager (NewCoverage then stays quiet).",
            registry=r,
        )

    def init_series(self, *, feeds: Iterable[str], topics: Iterable[str], sink: str) -> None:
        """Create every configured series at 0 so alerts and dashboards see them from start-up."""
        for feed in feeds:
            for outcome in FEED_POLL_OUTCOMES:
                self.feed_polls.labels(feed, outcome)
            self.feed_items.labels(feed)
            self.feed_last_success.labels(feed)
            self.feed_last_new_item.labels(feed)
            self.feed_interval.labels(feed)
            self.articles_seen.labels(feed)
            for reason in ENTRY_REJECT_REASONS:
                self.entries_rejected.labels(feed, reason)
        for topic in topics:
            self.articles_tagged.labels(topic)
        for outcome in FETCH_OUTCOMES:
            self.articles_fetched.labels(outcome)
        for outcome in ROBOTS_OUTCOMES:
            self.robots.labels(outcome)
        for outcome in EXTRACT_OUTCOMES:
            self.articles_extracted.labels(outcome)
        for kind in DUPLICATE_KINDS:
            self.duplicates.labels(kind)
        for outcome in INDEX_OUTCOMES:
            self.articles_indexed.labels(sink, outcome)
        self.bulk_retries.labels(sink)
        self.dead_letters.labels(sink)
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        for outcome in ("ok", "error"):
            self.cycles.labels(outcome)
        for outcome in ALERT_OUTCOMES:
            self.alerts_sent.labels(outcome)


_lock = threading.Lock()
_default: Metrics | None = None


def get() -> Metrics:
    """The process-wide metrics on the default registry (created on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = Metrics()
        return _default


class MetricsServeError(Exception):
    """The exporter could not bind its address (one line for the user)."""


def serve(host: str, port: int, registry: CollectorRegistry | None = None) -> str:
    """Start the exporter on ``host:port`` (``0``: any free port); returns its ``/metrics`` URL.

    A port that is taken (another newsmon, or anything else) raises :class:`MetricsServeError`
    naming the port and how to pick another, instead of a socket traceback.
    """
    import errno

    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry if registry is not None else get().registry)
    except OSError as exc:
        how = "choose another with --metrics-port PORT (or metrics.port / NEWSMON_METRICS_PORT); 0 picks any free port"
        if exc.errno == errno.EADDRINUSE:
            raise MetricsServeError(f"metrics port {port} on {host} is already in use; {how}") from exc
        reason = (exc.strerror or str(exc)).lower()
        raise MetricsServeError(
            f"cannot serve metrics on {host}:{port}: {reason}; check --metrics-host and --metrics-port "
            "(or metrics.host/port, NEWSMON_METRICS_HOST/PORT)"
        ) from exc
    bound_port = int(server.server_port)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{bound_port}/metrics"


_worker_exporter: tuple[str, int] | None = None


def serve_worker_metrics(env: dict[str, str] | None = None) -> tuple[str, int] | None:
    """Start this worker process's exporter, once per process (distributed runners).

    DoFns call it in ``setup``. A worker reads ``NEWSMON_METRICS_HOST`` (default 127.0.0.1;
    pods set 0.0.0.0) and ``NEWSMON_METRICS_PORT`` (default 9464; 0 disables) from its own
    environment; if the port is taken (several SDK processes on one host) the next free one of
    the following 16 is used. Returns (host, port), or None when disabled or nothing was free.
    """
    import os

    from prometheus_client import start_http_server

    global _worker_exporter
    env = dict(os.environ) if env is None else env
    registry = get().registry
    with _lock:
        if _worker_exporter is not None:
            return _worker_exporter
        host = env.get("NEWSMON_METRICS_HOST", "127.0.0.1")
        port = int(env.get("NEWSMON_METRICS_PORT", "9464"))
        if port == 0:
            return None
        for candidate in range(port, port + 17):
            try:
                start_http_server(candidate, addr=host, registry=registry)
            except OSError:
                continue
            _worker_exporter = (host, candidate)
            return _worker_exporter
        return None


def set_default(metrics: Metrics | None) -> Metrics | None:
    """Replace the process-wide metrics (tests use a fresh registry); returns the previous ones."""
    global _default
    with _lock:
        previous, _default = _default, metrics
        return previous
