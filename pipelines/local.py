"""The local driver: a long-lived process that polls feeds and runs one bounded Beam
pipeline per cycle on the in-process ``FnApiRunner`` (micro-batches, see DESIGN.md §Runners).

A cycle:

1. poll the feeds that are due (threads; ``connectors/rss`` + ``connectors/web`` politeness),
   drop entries whose canonical URL is already known (pending, outbox or dedup store:
   ``duplicates{kind="url"}``), and store each feed's new state together with its accepted
   entries in one transaction (``StateStore.commit_poll``);
2. re-send the outbox (articles processed earlier that the sink has not acknowledged, e.g.
   while Elasticsearch was down);
3. run ``ProcessArticles`` over the pending entries that are due, in a bounded pipeline;
4. update the backlog gauge (the dedup transform prunes its window every cycle).

Then it sleeps until the next feed or retry is due. SIGINT/SIGTERM set a flag checked between
steps; because every accepted entry is on disk, a stop that cannot wait for a slow step exits
anyway after a grace period and the next start resumes from the state store.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence
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
from pipelines.accept import canonical_id as canonical_id  # bench and other callers import it from here
from pipelines.config import Config, FeedConfig
from pipelines.process import ProcessArticles, Resources, retry_delay, write_batch
from transforms.records import FeedEntry

log = logging.getLogger(__name__)

MAX_ITEMS_PER_CYCLE = 100
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


def run_bounded(items: Sequence[PendingItem], resources: Resources, state: StateStore) -> list[str]:
    """Run ProcessArticles over ``items`` in one bounded pipeline on FnApiRunner.

    Returns the ids the sink acknowledged: read back from the state store (an acknowledged
    entry has left both ``pending`` and the outbox), not collected from the pipeline, because
    DoFns (and anything they close over) are serialised and run apart from the driver.
    """
    if not items:
        return []
    options = PipelineOptions(["--runner=FnApiRunner"])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
        _ = p | "Pending" >> beam.Create(list(items)) | "Process" >> ProcessArticles(resources)
    return [item.id for item in items if not state.is_known(item.id)]


class LocalDriver:
    def __init__(self, cfg: Config, *, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.resources = Resources.from_config(cfg)
        Path(cfg.store_dir).mkdir(parents=True, exist_ok=True)
        self.state = StateStore(self.resources.state_path)
        self.dedup = self.resources.dedup_store_factory()()
        from connectors.web import HttpClient

        self.http = HttpClient(cfg.fetch)
        self.stop_event = threading.Event()
        self.one_shot = False  # backfill: polls once, so poll failures are not announced with a next try
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
        items = self.state.due_pending(now=self.clock(), limit=MAX_ITEMS_PER_CYCLE)
        if not items:
            return
        try:
            acked = run_bounded(items, self.resources, self.state)
        except Exception as exc:
            acked = self._isolate(items, exc, report)
        report.processed += len(items)
        report.acknowledged += len(acked)

    def _isolate(self, items: Sequence[PendingItem], exc: Exception, report: CycleReport) -> list[str]:
        """A cycle failed: run its entries one by one so one poisonous entry cannot block the rest.

        An entry that fails alone is deferred with backoff; after ``max_attempts`` it is
        quarantined (kept in the state store's ``failed`` table, counted and logged).
        """
        m = metrics.get()
        log.error("cycle of %d entries failed (%s): isolating", len(items), _short(exc))
        acked: list[str] = []
        failures: list[tuple[PendingItem, Exception]] = []
        if len(items) == 1:
            failures.append((items[0], exc))
        else:
            for item in items:
                try:
                    acked += run_bounded([item], self.resources, self.state)
                except Exception as single:
                    failures.append((item, single))
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
                if report.processed == before or not force_all:
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
        if any(f.id not in states for f in idle) or self.state.due_pending(now=now, limit=1):
            return 0.0
        cap = POLL_HARVEST_SECONDS if self._polling else IDLE_SLEEP_CAP
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
        self.http.close()
        self.dedup_close()
        self.state.close()

    def dedup_close(self) -> None:
        close = getattr(self.dedup, "close", None)
        if close is not None:
            close()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
