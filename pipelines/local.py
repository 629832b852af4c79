"""The local driver: a long-lived process that polls feeds and runs one bounded Beam
pipeline per batch on the in-process ``FnApiRunner`` (micro-batches).

A cycle:

1. poll the feeds that are due (threads; ``connectors/rss`` + ``connectors/web`` politeness),
   drop entries whose canonical URL is already known (pending, outbox or dedup store:
   ``duplicates{kind="url"}``), and store each feed's new state together with its accepted
   entries in one transaction (``StateStore.commit_poll``);
2. re-send the outbox (articles processed earlier that the sink has not acknowledged, e.g.
   while Elasticsearch was down);
3. hand the pending entries that are due to the :class:`Prefetcher`, which fetches their pages
   on the fetch threads, and run ``ProcessPages`` (extract -> dedup -> tag -> write) over the
   pages fetched so far, in one bounded pipeline;
4. update the backlog gauge (the dedup transform prunes its window every cycle).

Batches follow the fetches. A batch closes when :data:`BATCH_MAX` pages are ready, when no
fetch is left in flight, or :data:`BATCH_WAIT` seconds after its first page arrived. So a
page that trickles in from a polite, slow host is searchable seconds after it was fetched
(not after the whole feed's pages), while a burst from a fast host fills large batches that
spread the pipeline's fixed cost (~0.1-0.3 s) over many articles. Fetching runs ahead of
processing (at most :data:`FETCH_AHEAD` pages and :data:`FETCH_AHEAD_BYTES` of HTML), so the
next batch downloads while this one is extracted; extraction itself uses every core when
``workers >= 2`` (``pipelines/extractpool``).

Fetched pages live only in memory: the entries stay in ``pending`` until the pipeline moves
their articles to the outbox, so a crash re-fetches them and loses nothing.

Then it sleeps until the next feed or retry is due. SIGINT/SIGTERM set a flag checked between
steps; because every accepted entry is on disk, a stop that cannot wait for a slow step exits
anyway after a grace period and the next start resumes from the state store.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from connectors import metrics
from connectors.statestore import PendingItem, StateStore
from pipelines.accept import accept_entry
from pipelines.config import Config, FeedConfig
from pipelines.process import RETRY, ProcessPages, Resources, fetch_page, fetch_pool, retry_delay, write_batch
from transforms.records import FeedEntry

log = logging.getLogger(__name__)

Page = tuple[PendingItem, str, "str | None"]  # (entry, final URL, html or None: use the feed's text)

BATCH_MAX = 400  # pages per bounded pipeline, at most (each pipeline costs ~0.1-0.3 s to set up)
BATCH_WAIT = 1.0  # seconds a fetched page waits for others to share its pipeline
FETCH_AHEAD = 800  # pages fetched or in flight ahead of processing, at most
FETCH_AHEAD_BYTES = 64 * 2**20  # ... and at most this much fetched HTML held in memory
IDLE_SLEEP_CAP = 5.0  # seconds; the loop wakes at least this often to check for due work
POLL_HARVEST_SECONDS = 0.25  # while polls are in flight, look for finished ones this often


@dataclass
class CycleReport:
    polled: int = 0
    accepted: int = 0
    url_duplicates: int = 0
    processed: int = 0
    acknowledged: int = 0
    resent: int = 0
    errors: list[str] = field(default_factory=list)


_OPTIONS = PipelineOptions(["--runner=FnApiRunner"])  # parsing options costs ~30 ms: once per process

# Batches handed to the in-process runner by reference. Putting the pages themselves into
# ``beam.Create`` would pickle every page into the pipeline proto and bz2-compress it (Beam's
# pickler does), then decompress and unpickle it again: ~1.5 s per 200 portal pages, more
# than extracting them. The pipeline's only input is a token; ``_TakeBatch`` looks it up (and
# the same graph serves every batch: :class:`_BatchRunner`).
_HANDOFF: dict[str, list[Page]] = {}


class _TakeBatch(beam.DoFn):
    """token -> the pages registered under it (the local driver's in-process runner only)."""

    def process(self, token: str) -> Iterator[Page]:
        pages = _HANDOFF.get(token)
        if pages is None:
            raise RuntimeError("pages of a local batch not found: run_bounded needs the in-process FnApiRunner")
        yield from pages


def run_bounded(pages: Sequence[Page], resources: Resources, state: StateStore) -> list[str]:
    """Run ProcessPages over fetched ``pages`` in one bounded pipeline on FnApiRunner.

    Returns the ids the sink acknowledged: read back from the state store (an acknowledged
    entry has left both ``pending`` and the outbox), not collected from the pipeline, because
    DoFns (and anything they close over) are serialised and run apart from the driver.
    """
    if not pages:
        return []
    runner = _runner(resources)
    _HANDOFF[_BATCH_TOKEN] = list(pages)
    try:
        runner.run_batch()
    finally:
        del _HANDOFF[_BATCH_TOKEN]
    return [page[0].id for page in pages if not state.is_known(page[0].id)]


_BATCH_TOKEN = "batch"  # the one pipeline input; batches run one at a time in a process


class _BatchRunner(FnApiRunner):
    """The in-process runner, keeping the graph of the first batch to run every later one.

    Building the pipeline (applying the transforms, pickling the DoFns, translating the graph to
    its portable form and back) cost ~0.05-0.1 s per batch, the same every time: only the pages
    change, and they reach ``_TakeBatch`` by reference. So the first batch runs as any Beam
    pipeline does, and its portable graph is kept; later batches hand that graph to the runner
    again (fresh DoFn instances from it each time, ``setup`` and all, as before).
    """

    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self._resources = resources
        self._graph: Any = None

    def run_via_runner_api(self, pipeline_proto: Any, options: PipelineOptions) -> Any:
        self._graph = pipeline_proto  # what run_pipeline built: the graph every batch runs
        return super().run_via_runner_api(pipeline_proto, options)

    def run_batch(self) -> None:
        if self._graph is None:
            with beam.Pipeline(runner=self, options=_OPTIONS) as p:
                _ = (
                    p
                    | "Batch" >> beam.Create([_BATCH_TOKEN])
                    | "Pages" >> beam.ParDo(_TakeBatch())
                    | "Process" >> ProcessPages(self._resources)
                )
        else:
            self.run_via_runner_api(self._graph, _OPTIONS).wait_until_finish()


_RUNNERS: dict[Resources, _BatchRunner] = {}


def _runner(resources: Resources) -> _BatchRunner:
    runner = _RUNNERS.get(resources)
    if runner is None:
        runner = _RUNNERS[resources] = _BatchRunner(resources)
    return runner


class Prefetcher:
    """Fetches pending entries' pages on the process's fetch threads, ahead of processing.

    ``submit`` starts fetches; finished pages wait in memory until ``take`` hands them out as a
    batch. A transient failure with attempts left is deferred in the state store right away
    (the entry is retried after its backoff); every other outcome is a page (``html`` None
    when the feed's text must do).
    """

    def __init__(self, http: Any, state: StateStore, *, max_attempts: int, workers: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._state = state
        self._clock = clock  # the driver's clock: retry times are on it
        self._max_attempts = max_attempts
        self._workers = workers  # >= 2: start each page's extraction as soon as it is fetched
        self._cond = threading.Condition()
        self._inflight: set[str] = set()
        self._ready: list[tuple[float, Page]] = []  # (monotonic time it was ready, page)
        self._ready_bytes = 0

    def busy(self) -> bool:
        with self._cond:
            return bool(self._inflight or self._ready)

    def has_ready(self) -> bool:
        with self._cond:
            return bool(self._ready)

    def held(self) -> set[str]:
        """Ids in flight or fetched and not yet taken."""
        with self._cond:
            return self._inflight | {page[0].id for _, page in self._ready}

    def room(self) -> int:
        with self._cond:
            if self._ready_bytes >= FETCH_AHEAD_BYTES:
                return 0
            return max(0, FETCH_AHEAD - len(self._inflight) - len(self._ready))

    def submit(self, items: Iterable[PendingItem]) -> None:
        pool = fetch_pool()
        for item in items:
            with self._cond:
                if item.id in self._inflight:
                    continue
                self._inflight.add(item.id)
            future = pool.submit(fetch_page, self._http, item, max_attempts=self._max_attempts)
            future.add_done_callback(functools.partial(self._done, item))

    def _done(self, item: PendingItem, future: Future[tuple[str, Any]]) -> None:
        try:
            tag, value = future.result()
        except BaseException as exc:  # a bug in the fetch path: retry later rather than lose the entry
            log.error("fetch of %s crashed: %s", item.id[:12], _short(exc))
            tag, value = RETRY, (item, _short(exc), None)
        if tag == RETRY:
            _, error, retry_after = value
            try:
                delay = retry_delay(item.attempts + 1, retry_after=retry_after)
                self._state.defer(item.id, error=error, retry_at=self._clock() + delay)
            except Exception as exc:  # store closed (shutting down): the entry is still pending
                log.warning("could not defer %s: %s", item.id[:12], _short(exc))
        if tag != RETRY and self._workers >= 2:
            self._extract_early(value)
        with self._cond:
            self._inflight.discard(item.id)
            if tag != RETRY:
                self._ready.append((time.monotonic(), value))
                self._ready_bytes += len(value[2] or "")
            self._cond.notify_all()

    def _extract_early(self, page: Page) -> None:
        """Start extracting ``page`` in the worker processes now: they extract the next batch
        while the driver deduplicates, tags and writes this one (the extract stage claims it)."""
        from pipelines import extractpool
        from pipelines.process import extract_kwargs

        pool = extractpool.get(self._workers)
        if pool is None:
            return
        try:
            extractpool.start_early(pool, extract_kwargs(page))
        except Exception as exc:  # a broken pool: the extract stage extracts the page itself
            log.debug("early extraction of %s not started: %s", page[0].id[:12], exc)

    def take(self, stop: threading.Event, *, max_items: int = BATCH_MAX, max_wait: float = BATCH_WAIT) -> list[Page]:
        """The next batch: waits until ``max_items`` pages are ready, no fetch is in flight, or the
        first ready page has waited ``max_wait`` s (at most ``max_wait`` s for a first page)."""
        give_up = time.monotonic() + max_wait
        with self._cond:
            while not stop.is_set() and self._inflight and len(self._ready) < max_items:
                deadline = self._ready[0][0] + max_wait if self._ready else give_up
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.25))  # wake up now and then to see ``stop``
            batch, self._ready = self._ready[:max_items], self._ready[max_items:]
            self._ready_bytes = sum(len(page[2] or "") for _, page in self._ready)
        return [page for _, page in batch]


def _warm_up(extract_here: bool) -> None:
    """Import the transforms (and load the language model when this process extracts) ahead of
    the first batch: ~1 s of a fresh process's time that otherwise waits for the batch to fill."""
    try:
        import pipelines.topicsbeam  # noqa: F401
        from pipelines.process import ProcessPages  # noqa: F401
        from transforms.dedup import shingle_hashes, signature

        signature(shingle_hashes(["jembatan", "baru"]))  # draws the MinHash permutations

        if extract_here:
            from transforms.extract import extract_page
            from transforms.language import detect_language

            extract_page("<html><body><p>Pemerintah meresmikan jembatan baru.</p></body></html>")
            detect_language("Pemerintah meresmikan jembatan baru.")
    except Exception as exc:  # only a head start; the batch imports what it needs anyway
        log.debug("warm-up: %s", exc)


class LocalDriver:
    """``workers``: extraction processes (1 extracts in this process; see ``pipelines/extractpool``)."""

    def __init__(self, cfg: Config, *, clock: Any = time.time, workers: int = 1, one_shot: bool = False,
                 stop_event: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.workers = workers
        self.resources = Resources.from_config(cfg, extract_workers=workers)
        Path(cfg.store_dir).mkdir(parents=True, exist_ok=True)
        self.state = StateStore(self.resources.state_path)
        self.dedup = self.resources.dedup_store_factory()()
        from connectors.web import HttpClient

        self.http = HttpClient(cfg.fetch)
        # article pages get their own client (own politeness slots), so feed polls never queue behind them
        self.page_http = HttpClient(cfg.fetch)
        self.prefetch = Prefetcher(self.page_http, self.state, max_attempts=cfg.max_attempts, workers=workers,
                                   clock=clock)
        if workers >= 2:
            from pipelines import extractpool

            extractpool.warm_up(workers)  # worker processes start while the feeds are polled
        # import what the first batch needs while the feeds are polled and the first pages fetched
        threading.Thread(target=_warm_up, args=(workers <= 1,), daemon=True, name="warm-up").start()
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.one_shot = one_shot  # backfill: polls once, so poll failures are not announced with a next try
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="poll")
        self._polling: dict[str, tuple[FeedConfig, Future[Any]]] = {}
        # this process is the only writer of feed state: read it once, then keep it current
        self._states = self.state.all_feed_states()
        self.feeds = self._effective_feeds(cfg)
        self.alert_hook = self.resources.open_alert_hook()  # article alerts: remember only, until run_forever
        self.alert_sender: Any = None

    # -- feeds ---------------------------------------------------------------------------------
    @staticmethod
    def _effective_feeds(cfg: Config) -> list[FeedConfig]:
        """Enabled feeds; ``--poll-interval`` pins every feed's interval bounds."""
        feeds = list(cfg.enabled_feeds)
        if cfg.poll_interval is not None:
            fixed = cfg.poll_interval
            feeds = [dataclasses.replace(f, min_interval=fixed, max_interval=fixed) for f in feeds]
        return feeds

    def due_feeds(self, now: float) -> list[FeedConfig]:
        from connectors.rss import due

        return [f for f in due(self._states, self.feeds, now) if f.id not in self._polling]

    def poll(self, feeds: Sequence[FeedConfig], report: CycleReport, *, wait: bool = False) -> None:
        """Start polls of ``feeds`` in the background and harvest the polls that have finished.

        Polls run on a persistent thread pool, so a slow or trickling feed holds up only itself:
        the cycle goes on with the feeds that answered. ``wait=True`` (backfill) waits for all.
        """
        from connectors.rss import poll_feed

        for feed in feeds:
            if feed.id not in self._polling:
                self._polling[feed.id] = (feed, self._pool.submit(poll_feed, self.http, feed, self._states.get(feed.id),
                                                                  now=self.clock(), one_shot=self.one_shot))
        if wait:
            futures_wait([f for _, f in self._polling.values()])
        m = metrics.get()
        for feed_id, (feed, future) in list(self._polling.items()):
            if not future.done():
                continue
            del self._polling[feed_id]
            result = future.result()  # poll_feed never raises; it counted the poll's own metrics
            m.stage_seconds.labels("poll").observe(result.elapsed)
            report.polled += 1
            if result.error is not None:  # poll_feed logged it
                report.errors.append(f"{feed.id}: {result.outcome}")
            items = self.accept(result.entries, report)
            self.state.commit_poll(result.state, items)
            self._states[feed.id] = result.state

    def accept(self, entries: Iterable[FeedEntry], report: CycleReport) -> list[PendingItem]:
        """New entries whose canonical URL is not known yet -> PendingItems (URL duplicates counted)."""
        items: dict[str, PendingItem] = {}

        def is_known(aid: str) -> bool:
            return aid in items or self.state.is_known(aid) or self.dedup.lookup(aid) is not None

        for entry in entries:
            outcome, item = accept_entry(entry, is_known)
            if outcome == "duplicate":
                report.url_duplicates += 1
            if item is not None:
                items[item.id] = item
        report.accepted += len(items)
        return list(items.values())

    # -- processing ------------------------------------------------------------------------------
    def resend_outbox(self, report: CycleReport) -> None:
        batch = self.state.outbox(limit=500)
        if not batch:
            return
        sink = self.resources.open_sink()
        try:
            acked = write_batch(sink, batch, self.state, on_acknowledged=self.alert_hook)
        finally:
            sink.close()
        report.resent += len(acked)
        report.acknowledged += len(acked)

    def process_pending(self, report: CycleReport) -> None:
        """Start fetching the due entries (up to the fetch-ahead bound) and process one batch of
        fetched pages (see the module docstring for when a batch closes)."""
        room = self.prefetch.room()
        if room:
            held = self.prefetch.held()
            due = self.state.due_pending(now=self.clock(), limit=room + len(held))
            self.prefetch.submit([item for item in due if item.id not in held][:room])
        pages = self.prefetch.take(self.stop_event)
        if not pages:
            return
        try:
            acked = run_bounded(pages, self.resources, self.state)
        except Exception as exc:
            acked = self._isolate(pages, exc, report)
        report.processed += len(pages)
        report.acknowledged += len(acked)

    def busy(self) -> bool:
        """Pages are being fetched or wait to be processed."""
        return self.prefetch.busy()

    def _isolate(self, pages: Sequence[Page], exc: Exception, report: CycleReport) -> list[str]:
        """A batch failed: run its pages one by one so one poisonous entry cannot block the rest.

        An entry that fails alone is deferred with backoff; after ``max_attempts`` it is
        quarantined (kept in the state store's ``failed`` table, counted and logged).
        """
        m = metrics.get()
        log.error("batch of %d entries failed (%s): isolating", len(pages), _short(exc))
        acked: list[str] = []
        failures: list[tuple[PendingItem, Exception]] = []
        if len(pages) == 1:
            failures.append((pages[0][0], exc))
        else:
            for page in pages:
                try:
                    acked += run_bounded([page], self.resources, self.state)
                except Exception as single:
                    failures.append((page[0], single))
        for item, error in failures:
            self._give_up_or_defer(item, error, report)
            m.articles_failed.labels("pipeline", type(error).__name__).inc()
        return acked

    def _give_up_or_defer(self, item: PendingItem, exc: Exception, report: CycleReport) -> None:
        report.errors.append(f"{item.id[:12]}: {_short(exc)}")
        if item.attempts + 1 >= self.cfg.max_attempts:
            log.error("entry %s (%s) quarantined after %d attempts: %s", item.id[:12], item.entry.link,
                      item.attempts + 1, _short(exc))
            self.state.quarantine(item.id, error=_short(exc, 2000))
        else:
            self.state.defer(item.id, error=_short(exc), retry_at=self.clock() + retry_delay(item.attempts + 1))

    def cycle(self, *, force_all: bool = False) -> CycleReport:
        """One cycle; ``force_all`` polls every feed regardless of schedule (backfill)."""
        m = metrics.get()
        report = CycleReport()
        try:
            feeds = self.feeds if force_all else self.due_feeds(self.clock())
            self.poll(feeds, report, wait=force_all)
            if not self.stop_event.is_set():
                self.resend_outbox(report)
            while not self.stop_event.is_set():
                before = report.processed
                self.process_pending(report)
                if not force_all or (report.processed == before and not self.busy()):
                    break
            m.cycles.labels("ok").inc()
        except Exception as exc:  # one bad cycle must not kill a monitor that runs for months
            log.exception("cycle failed: %s", exc)
            report.errors.append(f"cycle: {exc}")
            m.cycles.labels("error").inc()
        m.backlog.set(self.state.backlog())
        m.last_cycle.set(self.clock())
        return report

    def seconds_until_due(self) -> float:
        """How long the loop may sleep: until a feed or a retry is due, a poll in flight ends, or 5 s."""
        now = self.clock()
        states = self._states
        idle = [f for f in self.feeds if f.id not in self._polling]
        if any(f.id not in states for f in idle) or self.prefetch.has_ready() or self._unfetched_due(now):
            return 0.0
        cap = POLL_HARVEST_SECONDS if self._polling or self.prefetch.busy() else IDLE_SLEEP_CAP
        return max(0.0, min([cap, *(states[f.id].next_poll_at - now for f in idle)]))

    def start_alerts(self) -> None:
        """Article alerts (``run`` only; a backfill remembers stories but sends nothing)."""
        if self.alert_hook is None:
            return
        from connectors.alertmanager import AlertSender

        self.alert_hook.close()
        self.resources = dataclasses.replace(self.resources, send_alerts=True)
        self.alert_hook = self.resources.open_alert_hook()
        self.alert_sender = AlertSender(self.cfg.alerts, self.cfg.store_dir).start()
        metrics.get().article_alerts_enabled.set(1)

    def _unfetched_due(self, now: float) -> bool:
        held = self.prefetch.held()
        return any(item.id not in held for item in self.state.due_pending(now=now, limit=len(held) + 1))

    def run_forever(self) -> None:
        log.info("newsmon: %d feeds, store %s", len(self.feeds), self.cfg.store_dir)
        self.start_alerts()
        while not self.stop_event.is_set():
            report = self.cycle()
            if report.accepted or report.acknowledged or report.errors:
                log.info(
                    "cycle: polled %d, accepted %d, url-dups %d, processed %d, acknowledged %d, errors %d",
                    report.polled, report.accepted, report.url_duplicates, report.processed,
                    report.acknowledged, len(report.errors),
                )
            self.stop_event.wait(self.seconds_until_due())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.alert_sender is not None:
            self.alert_sender.stop()
        if self.alert_hook is not None:
            self.alert_hook.close()
        if self.workers >= 2:
            from pipelines import extractpool

            extractpool.shutdown()
        self.http.close()
        self.page_http.close()
        self.dedup_close()
        self.state.close()

    def dedup_close(self) -> None:
        close = getattr(self.dedup, "close", None)
        if close is not None:
            close()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
