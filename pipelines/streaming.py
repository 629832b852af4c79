"""The streaming driver: the same ``ProcessArticles`` behind a polling source, for runners with
real streaming (Prism, Flink, Dataflow).

    Read feeds (PeriodicImpulse -> poll due feeds -> accept new URLs) -> fixed windows of one tick
        -> Reshuffle -> ProcessArticles (fetch, extract, dedup, tag, write) [-> Forget written]

Entries are put in fixed windows of one tick, so the per-window grouping inside
``DedupArticles`` (copies that arrive together are compared with each other) closes at the end
of each window under the default trigger. Ids are fixed (canonical URL -> ``Article.id``)
*before* the Reshuffle, so a re-run re-writes the same ``_id`` instead of creating a duplicate.

When the SDK worker is this process (Prism's default LOOPBACK environment) every DoFn shares the
state store of ``--store``, so the source keeps the local driver's protocol: a feed's new state
and its accepted entries are committed together to the ``pending`` queue, and an entry leaves
it only once the sink has acknowledged it (:class:`PollAndQueue`, :class:`ForgetWritten`).
With workers in other processes (Flink, Dataflow) the source polls and accepts only: feed state
is saved before the entries travel on, so an entry can be lost if the job dies in between.

On Prism the SDK worker runs inside this process (Beam's default LOOPBACK environment for
Prism), so the launcher's metrics exporter already serves every DoFn's metrics.
:func:`run_until_stopped` runs the job until a stop signal, cancels it and leaves no runner
process behind. ``tests/test_streaming_e2e.py`` runs it on a real Prism (``.ci/prism.sh``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import window

from connectors.settings import FeedConfig
from connectors.statestore import PendingItem
from pipelines.accept import accept_entry
from pipelines.config import Config
from pipelines.process import ProcessArticles, Resources, retry_delay
from transforms.records import FeedEntry

log = logging.getLogger(__name__)

STREAMING_RUNNERS = ("PrismRunner", "FlinkRunner", "DataflowRunner", "PortableRunner")


class AcceptEntries(beam.DoFn):
    """FeedEntry -> PendingItem for URLs the dedup store does not know yet."""

    def __init__(self, resources: Resources) -> None:
        self._res = resources
        self._dedup = None

    def setup(self) -> None:
        self._dedup = self._res.dedup_store_factory()()

    def process(self, entry: FeedEntry) -> Iterator[PendingItem]:
        dedup = self._dedup
        _, item = accept_entry(entry, lambda aid: dedup is not None and dedup.lookup(aid) is not None)
        if item is not None:
            yield item

    def teardown(self) -> None:
        close = getattr(self._dedup, "close", None)
        if close is not None:
            close()


MIN_TICK_SECONDS = 1.0
MAX_TICK_SECONDS = 10.0


def effective_feeds(cfg: Config) -> list[FeedConfig]:
    """Enabled feeds; ``--poll-interval`` pins every feed's interval bounds (as the local driver does)."""
    feeds = list(cfg.enabled_feeds)
    if cfg.poll_interval is not None:
        fixed = cfg.poll_interval
        feeds = [dataclasses.replace(f, min_interval=fixed, max_interval=fixed) for f in feeds]
    return feeds


def tick_for(feeds: Sequence[FeedConfig]) -> float:
    """Seconds between two looks at which feeds are due: the shortest feed interval, within [1, 10]."""
    shortest = min((f.min_interval for f in feeds), default=MAX_TICK_SECONDS)
    return max(MIN_TICK_SECONDS, min(MAX_TICK_SECONDS, shortest))


SINK_PATIENCE_SECONDS = 600.0  # how long a write waits for the sink to come back (Prism fails the job otherwise)


def streaming_resources(cfg: Config, options: PipelineOptions) -> Resources:
    """What the DoFns open: no outbox, no secrets; the dedup store chosen by where workers run."""
    resources = dataclasses.replace(Resources.from_config(cfg, use_outbox=False), sink_patience=SINK_PATIENCE_SECONDS)
    if worker_runs_in_this_process(options):
        # One worker process (Prism's LOOPBACK): the on-disk SQLite dedup store is shared by
        # every DoFn already and survives restarts; no need to keep dedup state in the cluster.
        return dataclasses.replace(resources, shared_dedup=False)
    return resources  # workers elsewhere: the dedup store in the cluster (Elasticsearch or OpenSearch)


class PollAndQueue(beam.DoFn):
    """On each tick: poll the due feeds; commit each feed's new state together with its new
    entries to the ``pending`` queue of the state store (one transaction, as the local driver
    does); then emit the due pending entries, each under a lease.

    An entry leaves ``pending`` only when the sink has acknowledged it (:class:`ForgetWritten`).
    If the job dies first, or its page fetch failed transiently, the lease runs out and the
    entry is emitted again (``attempts`` + 1, the lease growing with each attempt): nothing
    accepted is lost, and a re-run is harmless because dedup decisions and sink writes are
    idempotent per article id. Used when the SDK worker is this process (one state store).
    """

    def __init__(self, feeds: Sequence[FeedConfig], resources: Resources, *, lease_seconds: float,
                 batch_limit: int = 500) -> None:
        self._feeds = tuple(feeds)
        self._res = resources
        self._lease = lease_seconds
        self._limit = batch_limit
        self._http: Any = None
        self._state: Any = None
        self._dedup: Any = None

    def setup(self) -> None:
        from connectors.web import HttpClient

        self._http = HttpClient(self._res.fetch)
        self._state = self._res.open_state()
        self._dedup = self._res.dedup_store_factory()()

    def process(self, _tick: Any) -> Iterator[PendingItem]:
        from connectors.rss import due, poll_feed

        now = time.time()
        ours = {f.id for f in self._feeds}
        states = {k: v for k, v in self._state.all_feed_states().items() if k in ours}
        for feed in due(states, self._feeds, now):
            result = poll_feed(self._http, feed, states.get(feed.id), now=now)
            self._state.commit_poll(result.state, self._accept(result.entries))
        for item in self._state.due_pending(now=now, limit=self._limit):
            lease = max(self._lease, retry_delay(item.attempts + 1))
            self._state.defer(item.id, error="in the pipeline", retry_at=now + lease)
            yield item

    def _accept(self, entries: Sequence[FeedEntry]) -> list[PendingItem]:
        """New entries whose canonical URL is not known yet (counted by ``accept_entry``)."""
        items: dict[str, PendingItem] = {}

        def known(aid: str) -> bool:
            return aid in items or self._state.is_known(aid) or self._dedup.lookup(aid) is not None

        for entry in entries:
            _, item = accept_entry(entry, known)
            if item is not None:
                items[item.id] = item
        return list(items.values())

    def teardown(self) -> None:
        for thing in (self._http, self._state, self._dedup):
            close = getattr(thing, "close", None)
            if close is not None:
                close()


class ForgetWritten(beam.DoFn):
    """Acknowledged article ids -> removed from the ``pending`` queue (end of each bundle)."""

    def __init__(self, resources: Resources) -> None:
        self._res = resources
        self._state: Any = None
        self._ids: list[str] = []

    def setup(self) -> None:
        self._state = self._res.open_state()

    def start_bundle(self) -> None:
        self._ids = []

    def process(self, article_id: str) -> None:
        self._ids.append(article_id)

    def finish_bundle(self) -> None:
        ids, self._ids = self._ids, []
        if ids:
            self._state.forget_pending(ids)

    def teardown(self) -> None:
        if self._state is not None:
            self._state.close()


class ReadQueued(beam.PTransform):
    """Source of the in-process streaming driver: a tick every ``tick_seconds`` -> :class:`PollAndQueue`."""

    def __init__(self, feeds: Sequence[FeedConfig], resources: Resources, *, tick_seconds: float,
                 lease_seconds: float) -> None:
        super().__init__()
        self._feeds = tuple(feeds)
        self._res = resources
        self._tick = tick_seconds
        self._lease = lease_seconds

    def expand(self, pbegin: Any) -> Any:
        from apache_beam.transforms.periodicsequence import PeriodicImpulse

        return (
            pbegin
            | "Tick" >> PeriodicImpulse(fire_interval=self._tick, apply_windowing=False)
            | "Poll, accept and queue" >> beam.ParDo(PollAndQueue(self._feeds, self._res, lease_seconds=self._lease))
        )


def lease_for(cfg: Config, tick: float) -> float:
    """How long an emitted entry is left alone before it is emitted again: longer than a page
    fetch can take (twice the whole-request deadline) plus a few windows."""
    return 2 * cfg.fetch.timeout + 3 * tick + 10.0


def build_streaming_pipeline(
    cfg: Config, beam_args: Sequence[str], *, tick_seconds: float | None = None
) -> beam.Pipeline:
    """Build (not run) the streaming pipeline for ``--runner`` given in ``beam_args``."""
    from connectors.rssbeam import ReadFromRss

    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    if runner not in STREAMING_RUNNERS:
        raise ValueError(f"--runner={runner} is not a streaming runner; use one of {', '.join(STREAMING_RUNNERS)}")
    feeds = effective_feeds(cfg)
    if not feeds:
        raise ValueError("no feeds configured (use --feed URL or a config file)")
    tick = tick_seconds if tick_seconds is not None else tick_for(feeds)
    options.view_as(StandardOptions).streaming = True
    resources = streaming_resources(cfg, options)
    pipeline = beam.Pipeline(options=options)
    if worker_runs_in_this_process(options):
        # one state store for every DoFn: the durable pending queue, as in the local driver
        items = pipeline | "Read feeds" >> ReadQueued(feeds, resources, tick_seconds=tick,
                                                       lease_seconds=lease_for(cfg, tick))
    else:
        # workers elsewhere each have their own disk: poll and accept only (at most once)
        items = (
            pipeline
            | "Read feeds" >> ReadFromRss(feeds, cfg.fetch, resources.open_state, tick_seconds=tick)
            | "Accept new URLs" >> beam.ParDo(AcceptEntries(resources))
        )
    written = (
        items
        | "Micro-batch windows" >> beam.WindowInto(window.FixedWindows(tick))
        | "Spread work" >> beam.Reshuffle()
        | "Process" >> ProcessArticles(resources)
    )
    if worker_runs_in_this_process(options):
        _ = written | "Forget written" >> beam.ParDo(ForgetWritten(resources))
    return pipeline


def worker_runs_in_this_process(options: PipelineOptions) -> bool:
    """True when the SDK worker is this process (LOOPBACK: Prism's default, or asked for)."""
    from apache_beam.options.pipeline_options import PortableOptions

    runner = options.view_as(StandardOptions).runner
    env_type = options.view_as(PortableOptions).environment_type
    return (env_type or ("LOOPBACK" if runner == "PrismRunner" else "")).upper() == "LOOPBACK"


class JobFailed(RuntimeError):
    """The runner reported the job failed (its last error message is the text)."""


def run_until_stopped(
    pipeline: beam.Pipeline, stop: threading.Event, *, cancel_timeout: float = 4.0
) -> str:
    """Submit ``pipeline``, wait until the job ends or ``stop`` is set, then cancel it.

    Returns ``"stopped"`` (we cancelled it) or the runner's terminal state name; raises
    :class:`JobFailed` with one line of explanation when the job fails.
    """
    result = pipeline.run()
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["state"] = str(result.wait_until_finish())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            outcome["error"] = exc

    waiter = threading.Thread(target=wait, name="job-waiter", daemon=True)
    waiter.start()
    while waiter.is_alive() and not stop.wait(0.5):
        pass
    if stop.is_set():
        quiet_shutdown()
        canceller = threading.Thread(target=_cancel_quietly, args=(result,), name="job-cancel", daemon=True)
        canceller.start()
        canceller.join(cancel_timeout)
        return "stopped"
    if "error" in outcome:
        raise JobFailed(_one_line(outcome["error"])) from None
    return outcome.get("state", "UNKNOWN")


def quiet_shutdown() -> None:
    """Once we are stopping, the runner closes its gRPC streams under Beam's worker threads, which
    then die with tracebacks that say nothing useful to an operator: log those at debug level."""
    for name in ("apache_beam.runners.worker", "apache_beam.runners.portability"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def hook(args: threading.ExceptHookArgs) -> None:
        log.debug("thread %s ended during shutdown: %s", getattr(args.thread, "name", "?"), args.exc_value)

    threading.excepthook = hook


def _cancel_quietly(result: Any) -> None:
    try:
        result.cancel()
    except Exception as exc:  # noqa: BLE001 - the runner may already be gone
        log.debug("cancel: %s", exc)


_EXCEPTION_LINE = re.compile(r"^(?:[a-z_][\w]*\.)*[A-Z]\w*: \S")


def _one_line(exc: BaseException) -> str:
    """The useful line of a runner failure (Beam's messages carry whole worker tracebacks):
    the last ``package.module.SomeError: message`` line, else the first line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    return (errors[-1] if errors else lines[0] if lines else type(exc).__name__)[:500]


class ShortTracebacks(logging.Filter):
    """Keeps Beam's and Prism's error records to their first line (no worker tracebacks on the
    console); ``-vv`` shows them whole. The cause still reaches the operator in newsmon's own
    one-line message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("newsmon") or record.name.startswith("pipelines"):
            return True
        text = record.getMessage()
        if record.exc_info or "Traceback (most recent call last)" in text:
            head = text.split("Traceback (most recent call last)", 1)[0].strip() or "worker error"
            cause = [ln.strip() for ln in text.splitlines() if _EXCEPTION_LINE.match(ln.strip())]
            record.msg = head.splitlines()[0][:300] + (f" ({cause[-1][:300]})" if cause else "")
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def shorten_tracebacks() -> None:
    """Install :class:`ShortTracebacks` on the root logger's handlers."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ShortTracebacks())


def kill_own_children() -> None:
    """SIGKILL this process's direct children (the runner subprocess), by pid; Linux only.

    Used only by the stop watchdog right before a hard exit, so no Prism is left orphaned.
    """
    import signal

    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

