"""The article transforms as one composite Beam ``PTransform``, shared by both drivers.

``ProcessArticles``: PCollection[PendingItem] -> PCollection[str] (ids the sink acknowledged)

    'Fetch pages'      FetchPages        connectors/web: SSRF guard, caps, politeness;
                                         transient failures go to the 'retry' output
    (``ProcessPages`` is everything below, for pages fetched elsewhere)
    'Extract'          ExtractArticles   transforms/extract: trafilatura -> Article, feed fallback
                                         (in worker processes with ``extract_workers >= 2``)
    'Deduplicate'      DedupArticles     transforms/dedup against the dedup store
    'Tag topics'       TagTopics         transforms/topics rules
    'Write'            WriteToSink       outbox (local driver) -> sink -> ack

Everything a DoFn needs is built in ``setup`` from picklable settings (:class:`Resources`),
so no client, connection or large state is pickled into the graph, and nothing assumes
the local runner. The local driver fetches pages itself, ahead of processing (so the pages of
the next batch download while this one is extracted) and applies ``ProcessPages`` to them.
Metrics go to the process registry (``connectors.metrics.get()``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from connectors import metrics
from connectors.sink import Sink, SinkUnavailable
from connectors.statestore import PendingItem, StateStore
from pipelines.config import AlertsConfig, Config, ElasticsearchConfig, FetchConfig, from_environment
from pipelines.dedupbeam import DedupArticles
from pipelines.topicsbeam import TagTopics
from transforms.records import Article, utcnow

log = logging.getLogger(__name__)

RETRY = "retry"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """Picklable description of everything the transforms open in ``DoFn.setup``."""

    fetch: FetchConfig
    elasticsearch: ElasticsearchConfig
    store_dir: str
    topics_dir: str | None
    dedup_window_days: float
    max_attempts: int
    use_outbox: bool = True  # local driver: durable outbox in the state store
    alerts: AlertsConfig = AlertsConfig()  # article alerts (local driver only)
    send_alerts: bool = False  # False: remember announced stories without sending (backfill)
    extract_workers: int = 1  # >= 2: extract pages in that many worker processes (pipelines/extractpool)
    # None: the Elasticsearch dedup store when distributed (no outbox) and writing to a cluster.
    # The streaming driver sets False when every DoFn runs in its own process (Prism LOOPBACK).
    shared_dedup: bool | None = None
    # No outbox: how long a bundle waits for the sink to come back before failing (streaming sets it).
    sink_patience: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config, *, use_outbox: bool = True, extract_workers: int = 1) -> Resources:
        es = cfg.elasticsearch
        if not use_outbox:
            # Distributed runners ship the pickled graph to workers and job servers: keep secrets
            # out of it. Workers read NEWSMON_ES_API_KEY / NEWSMON_ES_PASSWORD from their own
            # environment when they open the sink (see open_sink).
            es = dataclasses.replace(es, api_key=None, password=None)
        return cls(
            fetch=cfg.fetch,
            elasticsearch=es,
            store_dir=str(cfg.store_dir),
            topics_dir=str(cfg.topics_dir) if cfg.topics_dir else None,
            dedup_window_days=cfg.dedup_window_days,
            max_attempts=cfg.max_attempts,
            use_outbox=use_outbox,
            alerts=cfg.alerts if use_outbox else AlertsConfig(),
            extract_workers=extract_workers,
        )

    @property
    def state_path(self) -> Path:
        return Path(self.store_dir) / "state.sqlite"

    def open_state(self) -> StateStore:
        return StateStore(self.state_path)

    def dedup_store_factory(self) -> Callable[[], Any]:
        """SQLite on local disk for the local driver; Elasticsearch, shared by every worker, for a
        distributed runner writing to Elasticsearch."""
        shared = self.shared_dedup if self.shared_dedup is not None else not self.use_outbox
        if shared and self.elasticsearch.enabled:
            from connectors.elasticsearch.dedupstore import ElasticsearchDedupStoreFactory

            return ElasticsearchDedupStoreFactory(self.elasticsearch, window_days=self.dedup_window_days)
        from connectors.dedupstore import SqliteDedupStore

        return partial(SqliteDedupStore, Path(self.store_dir) / "dedup.sqlite", window_days=self.dedup_window_days)

    def open_sink(self) -> Sink:
        es = self.elasticsearch
        if not self.use_outbox and es.enabled:  # a distributed worker: secrets from its environment
            es = from_environment(Config(feeds=(), elasticsearch=es), os.environ).elasticsearch
        return open_sink(es, Path(self.store_dir))

    def open_alert_hook(self) -> Any:
        """The ``on_acknowledged`` hook of ``write_batch`` (article alerts), or None when off."""
        if not (self.alerts.enabled and self.use_outbox):
            return None
        from connectors.alertmanager import AlertNotifier

        kibana = self.elasticsearch.kibana_url if self.elasticsearch.enabled else None
        return AlertNotifier(self.alerts, self.store_dir, kibana_url=kibana, record_only=not self.send_alerts)


def open_sink(es: ElasticsearchConfig, store_dir: Path) -> Any:
    """Elasticsearch when configured, else the embedded local index."""
    if es.enabled:
        from connectors.elasticsearch import ElasticsearchSink

        return ElasticsearchSink(es, deadletter_dir=store_dir / "deadletter")
    from connectors.localindex import LocalIndex

    return LocalIndex.in_store(store_dir)


def retry_delay(attempts: int, *, retry_after: float | None = None, base: float = 30.0, cap: float = 3600.0) -> float:
    """Backoff before the next fetch attempt: exponential with jitter, at least Retry-After."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = delay * (0.5 + random.random() / 2)
    return max(delay, retry_after or 0.0)


def fetch_page(client: Any, item: PendingItem, *, max_attempts: int) -> tuple[str, Any]:
    """Fetch one article page. Returns ``("page", (item, final_url, html | None))`` or
    ``("retry", (item, error, retry_after))`` for a transient failure with attempts left.

    A permanent failure (404, blocked, too large, not HTML), or a transient one on the last
    attempt, gives ``html=None``: extraction then falls back to the feed's title and summary,
    so an accepted entry is never dropped.
    """
    from connectors.web import FetchError, is_html

    m = metrics.get()
    start = time.monotonic()
    link = item.entry.link
    try:
        response = client.get(link)
    except FetchError as exc:
        m.articles_fetched.labels(exc.kind).inc()
        attempts = item.attempts + 1
        if exc.transient and attempts < max_attempts:
            log.info("fetch %s failed (%s, attempt %d): will retry", item.id[:12], exc, attempts)
            return RETRY, (item, str(exc), exc.retry_after)
        log.warning("fetch %s failed for good (%s): using the feed's text", item.id[:12], exc)
        m.articles_failed.labels("fetch", exc.kind).inc()
        return "page", (item, link, None)
    finally:
        m.stage_seconds.labels("fetch").observe(time.monotonic() - start)
    if response.status != 200 or not is_html(response):
        m.articles_fetched.labels("not_html" if response.status == 200 else "http_error").inc()
        return "page", (item, response.url, None)
    m.articles_fetched.labels("ok").inc()
    return "page", (item, response.url, response.text())


FETCH_THREADS = 8
_fetch_pool: ThreadPoolExecutor | None = None
_fetch_pool_lock = threading.Lock()


def fetch_pool() -> ThreadPoolExecutor:
    """One fetch thread pool per worker process, shared by every FetchPages instance.

    The local driver builds a new pipeline (and new DoFn instances) every cycle; a pool per
    instance would start and stop eight threads per cycle for nothing.
    """
    global _fetch_pool
    with _fetch_pool_lock:
        if _fetch_pool is None:
            _fetch_pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="fetch")
        return _fetch_pool


class FetchPages(beam.DoFn):
    """PendingItem -> (item, final_url, html | None); transient failures -> 'retry' output.

    Pages of a bundle are fetched concurrently (:func:`fetch_pool`); the HTTP client still
    enforces the per-host concurrency cap and spacing, so one slow or trickling server delays
    only its own pages. Results are emitted at the end of the bundle in their own windows.
    """

    def __init__(self, resources: Resources) -> None:
        self._res = resources
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[tuple[Future[tuple[str, Any]], Any, Any]] = []

    def setup(self) -> None:
        from connectors.web import HttpClient

        self._client = HttpClient(self._res.fetch)
        self._pool = fetch_pool()
        if not self._res.use_outbox:  # a distributed worker: expose this process's metrics
            metrics.serve_worker_metrics()

    def start_bundle(self) -> None:
        self._inflight = []

    def process(
        self, item: PendingItem, window: Any = beam.DoFn.WindowParam, timestamp: Any = beam.DoFn.TimestampParam
    ) -> None:
        assert self._pool is not None
        future = self._pool.submit(fetch_page, self._client, item, max_attempts=self._res.max_attempts)
        self._inflight.append((future, window, timestamp))

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.utils.windowed_value import WindowedValue

        inflight, self._inflight = self._inflight, []
        for future, window, timestamp in inflight:
            tag, value = future.result()
            wv = WindowedValue(value, timestamp, (window,))
            yield pvalue.TaggedOutput(RETRY, wv) if tag == RETRY else wv

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()


def extract_kwargs(element: tuple[PendingItem, str, str | None]) -> dict[str, Any]:
    item, final_url, html = element
    return dict(entry=item.entry, article_id=item.id, canonical_url=item.canonical_url, final_url=final_url,
                html=html, first_seen=item.entry.fetched_at)


def extract_inline(element: tuple[PendingItem, str, str | None]) -> tuple[Article, float, str | None]:
    """``build_article`` in this process: (article, seconds, error or None); never raises."""
    from pipelines.extractpool import build

    return build(extract_kwargs(element))


def _count_extracted(article: Article, seconds: float, error: str | None) -> None:
    from transforms.records import EXTRACTION_FEED_FALLBACK

    m = metrics.get()
    if error is not None:
        log.warning("extraction of %s failed (%s): using the feed's text", article.id[:12], error)
        m.articles_extracted.labels("error").inc()
    m.articles_extracted.labels("feed_fallback" if article.extraction == EXTRACTION_FEED_FALLBACK else "ok").inc()
    m.stage_seconds.labels("extract").observe(seconds)


class ExtractArticles(beam.DoFn):
    """(item, final_url, html) -> Article (falls back to the feed's title/summary).

    With ``workers >= 2`` the pages of a bundle are extracted concurrently in the process's
    extraction pool (:mod:`pipelines.extractpool`) and emitted, in input order, at the end of
    the bundle; otherwise each page is extracted here. Either way the same ``build_article``
    runs on the same input, so the output does not depend on the number of workers.
    """

    def __init__(self, workers: int = 1) -> None:
        self._workers = workers
        self._inflight: list[tuple[tuple[PendingItem, str, str | None], Future[Any], Any, Any]] = []

    def start_bundle(self) -> None:
        self._inflight = []

    def process(
        self,
        element: tuple[PendingItem, str, str | None],
        window: Any = beam.DoFn.WindowParam,
        timestamp: Any = beam.DoFn.TimestampParam,
    ) -> Iterator[Article]:
        from concurrent.futures.process import BrokenProcessPool

        from pipelines import extractpool

        pool = extractpool.get(self._workers)
        if pool is not None:
            kwargs = extract_kwargs(element)
            try:
                future = extractpool.claim(kwargs) or extractpool.submit(pool, kwargs)
                self._inflight.append((element, future, window, timestamp))
                return
            except BrokenProcessPool:  # a worker died earlier: this page here, a new pool next time
                extractpool.discard(pool)
        article, seconds, error = extract_inline(element)
        _count_extracted(article, seconds, error)
        yield article

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.utils.windowed_value import WindowedValue

        inflight, self._inflight = self._inflight, []
        for element, future, window, timestamp in inflight:
            yield WindowedValue(_result(element, future), timestamp, (window,))


def _result(element: tuple[PendingItem, str, str | None], future: Future[Any]) -> Article:
    """The worker's article; if the worker died, the entry is built from its feed text here."""
    from concurrent.futures.process import BrokenProcessPool

    from pipelines import extractpool

    try:
        article, seconds, error = future.result()
    except BrokenProcessPool as exc:
        pool = getattr(future, "_newsmon_pool", None)
        if pool is not None:
            extractpool.discard(pool)
        item, final_url, _ = element
        article, seconds, _ = extract_inline((item, final_url, None))
        error = f"extraction worker died ({exc})"
    _count_extracted(article, seconds, error)
    return article


class DeferRetries(beam.DoFn):
    """Records transient fetch failures in the state store; the entry is retried later."""

    def __init__(self, resources: Resources) -> None:
        self._res = resources
        self._state: StateStore | None = None

    def setup(self) -> None:
        if self._res.use_outbox:
            self._state = self._res.open_state()

    def process(self, element: tuple[PendingItem, str, float | None]) -> Iterator[str]:
        item, error, retry_after = element
        if self._state is not None:
            delay = retry_delay(item.attempts + 1, retry_after=retry_after)
            self._state.defer(item.id, error=error, retry_at=time.time() + delay)
        yield item.id

    def teardown(self) -> None:
        if self._state is not None:
            self._state.close()


class WriteToSinkFn(beam.DoFn):
    """Buffers articles; at the end of a bundle: outbox -> sink.write -> ack. Emits acknowledged ids."""

    def __init__(self, resources: Resources, *, batch_size: int = 200) -> None:
        self._res = resources
        self._batch_size = batch_size
        self._sink: Any = None
        self._state: StateStore | None = None
        self._buffer: list[Article] = []
        self._on_ack: Any = None

    def setup(self) -> None:
        self._sink = self._res.open_sink()
        self._on_ack = self._res.open_alert_hook()
        if self._res.use_outbox:
            self._state = self._res.open_state()

    def start_bundle(self) -> None:
        self._buffer = []
        self._windows: dict[str, tuple[Any, Any]] = {}

    def process(
        self, article: Article, window: Any = beam.DoFn.WindowParam, timestamp: Any = beam.DoFn.TimestampParam
    ) -> Iterator[str]:
        self._buffer.append(article)
        self._windows[article.id] = (window, timestamp)
        if len(self._buffer) >= self._batch_size:
            yield from self._flush()
            self._windows = {}

    def finish_bundle(self) -> Iterator[Any]:
        # Acknowledged ids go out in their article's own window: on a streaming runner the
        # PCollection is in fixed windows, and a GlobalWindow there breaks the window coder.
        from apache_beam.utils.windowed_value import WindowedValue

        windows, self._windows = self._windows, {}
        for article_id in self._flush():
            window, timestamp = windows[article_id]
            yield WindowedValue(article_id, timestamp, (window,))

    def _flush(self) -> Iterable[str]:
        batch, self._buffer = self._buffer, []
        if not batch:
            return []
        if self._state is not None:
            self._state.to_outbox(batch)
            return write_batch(self._sink, batch, self._state, on_acknowledged=self._on_ack)
        # No outbox (streaming runners). Prism fails the whole job on a bundle error (it does not
        # retry bundles), so first wait here for the sink to come back, with backoff, for up to
        # Resources.sink_patience; only then fail the bundle (Flink/Dataflow retry it). Safe: the
        # sink is idempotent on Article.id, so what was already written is not duplicated.
        acked: list[str] = []
        remaining = batch
        deadline = time.monotonic() + self._res.sink_patience
        pause = 1.0
        while True:
            done = set(write_batch(self._sink, remaining, None))
            acked += [a.id for a in remaining if a.id in done]
            remaining = [a for a in remaining if a.id not in done]
            if not remaining:
                return acked
            if time.monotonic() + pause > deadline:
                raise SinkUnavailable(
                    f"{len(remaining)} of {len(batch)} articles not acknowledged after "
                    f"{self._res.sink_patience:.0f}s; the bundle will be retried")
            log.warning("sink %s: %d articles waiting; trying again in %.0fs", self._sink.name, len(remaining), pause)
            time.sleep(pause)
            pause = min(30.0, pause * 2)

    def teardown(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._on_ack is not None:
            self._on_ack.close()
        if self._state is not None:
            self._state.close()


def write_batch(
    sink: Sink,
    batch: list[Article],
    state: StateStore | None,
    *,
    on_acknowledged: Callable[[list[Article]], None] | None = None,
) -> list[str]:
    """Write one batch, count outcomes, ack what is done in the outbox (if any).

    Returns the ids that are done: stored, or rejected for good and kept in the dead-letter
    store. Never raises for sink faults; the rest stays in the outbox for the next cycle.
    """
    m = metrics.get()
    start = time.monotonic()
    try:
        result = sink.write(batch)
    except SinkUnavailable as exc:
        log.error("sink %s unavailable (%s): %d articles not written", sink.name, exc, len(batch))
        m.articles_indexed.labels(sink.name, "failed").inc(len(batch))
        if state is not None:
            state.outbox_failed([a.id for a in batch], error=str(exc))
        return []
    finally:
        m.stage_seconds.labels("sink").observe(time.monotonic() - start)
    done = list(result.acknowledged) + list(result.dead_lettered)
    if on_acknowledged is not None:  # article alerts, before the ack: a crash re-offers, never loses
        acked_ids = set(result.acknowledged)
        on_acknowledged([a for a in batch if a.id in acked_ids])
    if state is not None:
        state.ack(done)
        if result.retry:
            state.outbox_failed(result.retry, error="; ".join(sorted(set(result.errors.values())))[:500])
    now = utcnow()
    by_id = {a.id: a for a in batch}
    updated = set(result.updated)
    for article_id in result.acknowledged:
        # this function is the one owner of newsmon_articles_indexed_total (sinks only report)
        m.articles_indexed.labels(sink.name, "updated" if article_id in updated else "indexed").inc()
        article = by_id.get(article_id)
        if article is None:
            continue
        m.latency.observe(max(0.0, (now - article.first_seen).total_seconds()))
        if article.duplicate_of is None:
            for topic in article.topics:
                m.articles_tagged.labels(topic).inc()
    if result.dead_lettered:
        m.articles_indexed.labels(sink.name, "dead_letter").inc(len(result.dead_lettered))
    if result.retry:
        m.articles_indexed.labels(sink.name, "failed").inc(len(result.retry))
    return done


def _after_fetch(pages: beam.PCollection, res: Resources) -> beam.PCollection:
    """extract -> deduplicate -> tag -> write, applied in the caller's scope (the step names
    stay ``Process/Extract``... in both composites)."""
    return (
        pages
        | "Extract" >> beam.ParDo(ExtractArticles(res.extract_workers))
        | "Deduplicate" >> DedupArticles(res.dedup_store_factory(), window_days=res.dedup_window_days)
        | "Tag topics" >> TagTopics(res.topics_dir)
        | "Write" >> beam.ParDo(WriteToSinkFn(res))
    )


class ProcessPages(beam.PTransform):
    """(item, final_url, html | None) -> extract -> deduplicate -> tag -> write; returns acknowledged ids."""

    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self._res = resources

    def expand(self, pages: beam.PCollection) -> beam.PCollection:
        return _after_fetch(pages, self._res)


class ProcessArticles(beam.PTransform):
    """fetch -> extract -> deduplicate -> tag -> write; returns acknowledged ids."""

    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self._res = resources

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        fetched = items | "Fetch pages" >> beam.ParDo(FetchPages(self._res)).with_outputs(RETRY, main="pages")
        _ = fetched[RETRY] | "Defer retries" >> beam.ParDo(DeferRetries(self._res))
        return _after_fetch(fetched["pages"], self._res)


__all__ = [
    "ProcessArticles",
    "ProcessPages",
    "Resources",
    "FetchPages",
    "ExtractArticles",
    "WriteToSinkFn",
    "write_batch",
    "open_sink",
    "retry_delay",
]
