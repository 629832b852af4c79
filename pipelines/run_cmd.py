"""Commands: ``run``, ``backfill``, ``feeds check`` (``search`` and ``status``: ``pipelines.query_cmd``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipelines.cli import port_number, positive_float
from pipelines.config import Config, FeedConfig, feed_id_for, load_config, parse_feed

log = logging.getLogger("newsmon")

STOP_GRACE_SECONDS = 8.0


def add_config_options(p: argparse.ArgumentParser, *, feeds: bool = True) -> None:
    p.add_argument("--config", help="YAML configuration file (default: shipped feed list; env NEWSMON_CONFIG)")
    p.add_argument("--store", help="directory of the on-disk store (default: ./newsmon-data; env NEWSMON_STORE)")
    if feeds:
        p.add_argument("--feed", action="append", default=[], metavar="URL", help="poll this feed (repeatable); replaces the configured feeds")


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = load_config(getattr(args, "config", None))
    changes: dict[str, Any] = {}
    if getattr(args, "feed", None):
        feeds = [parse_feed("--feed", f"--feed[{i}]", {"url": url, "id": feed_id_for(url)}) for i, url in enumerate(args.feed)]
        changes["feeds"] = tuple(_unique_ids(feeds))
    if getattr(args, "store", None):
        changes["store_dir"] = Path(args.store)
    if getattr(args, "poll_interval", None) is not None:
        changes["poll_interval"] = float(args.poll_interval)
    if getattr(args, "allow_host", None):
        changes["fetch"] = dataclasses.replace(cfg.fetch, allow_hosts=cfg.fetch.allow_hosts + tuple(args.allow_host))
    if getattr(args, "topics_dir", None):
        changes["topics_dir"] = Path(args.topics_dir)
    if getattr(args, "metrics_host", None):
        changes["metrics_host"] = args.metrics_host
    if getattr(args, "metrics_port", None) is not None:
        changes["metrics_port"] = int(args.metrics_port)
    return cfg.replace(**changes) if changes else cfg


def _unique_ids(feeds: list[FeedConfig]) -> list[FeedConfig]:
    seen: dict[str, int] = {}
    out = []
    for f in feeds:
        n = seen.get(f.id, 0)
        seen[f.id] = n + 1
        out.append(f if n == 0 else dataclasses.replace(f, id=f"{f.id}-{n + 1}"))
    return out


def topic_names(cfg: Config) -> list[str]:
    from transforms.topics import load_topics

    return [t.name for t in load_topics(cfg.topics_dir)]


def start_metrics(cfg: Config, *, sink: str) -> str:
    """Start the exporter (port 0: any free port); returns its URL. A taken port is a one-line error."""
    from connectors import metrics

    m = metrics.get()
    m.init_series(feeds=[f.id for f in cfg.enabled_feeds], topics=topic_names(cfg), sink=sink)
    url = metrics.serve(cfg.metrics_host, cfg.metrics_port, m.registry)
    log.info("metrics on %s", url)
    return url


# -- run ---------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.runner and args.runner not in ("FnApiRunner", "local"):
        return run_streaming(cfg, args)
    if not cfg.enabled_feeds:
        print("newsmon: no feeds configured (use --feed URL or a config file)", file=sys.stderr)
        return 2
    from connectors.storelock import StoreLock
    from pipelines.local import LocalDriver

    lock = StoreLock.acquire(cfg.store_dir, command="run")  # one writer per store; the holder is named
    # Handlers first: the driver starts extraction workers, and a Ctrl-C that reaches the process
    # group while it is still starting up must stop it cleanly too, not raise KeyboardInterrupt.
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        driver = LocalDriver(cfg, workers=extract_workers(args), stop_event=stop)
        metrics_url = start_metrics(cfg, sink="elasticsearch" if cfg.elasticsearch.enabled else "localindex")
    except BaseException:
        lock.release()
        raise
    lock.set_metrics_url(metrics_url)  # `newsmon status --store` reads this process's metrics
    print(
        f"newsmon: polling {len(cfg.enabled_feeds)} feeds into "
        f"{'Elasticsearch' if cfg.elasticsearch.enabled else cfg.store_dir}; metrics on {metrics_url}; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        driver.run_forever()
    finally:
        driver.close()
        lock.release()
    print("newsmon: stopped", file=sys.stderr, flush=True)
    return 0


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM: finish the current step and exit; after a grace period exit anyway.

    Exiting hard is safe: accepted entries and unacknowledged articles are in the state store.
    """

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return
        log.warning("received %s: stopping", signal.Signals(signum).name)
        stop.set()

        def watchdog() -> None:
            time.sleep(STOP_GRACE_SECONDS)
            print("newsmon: stop grace period over; exiting (state is on disk)", file=sys.stderr, flush=True)
            os._exit(0)

        threading.Thread(target=watchdog, daemon=True, name="stop-watchdog").start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run_streaming(cfg: Config, args: argparse.Namespace) -> int:
    """The streaming driver: one long-running Beam job on a streaming runner (Prism, Flink, ...)."""
    from pipelines import streaming

    beam_args = [f"--runner={args.runner}", *args.extra]
    try:
        pipeline = streaming.build_streaming_pipeline(cfg, beam_args)
    except ValueError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return 2
    start_metrics(cfg, sink="elasticsearch" if cfg.elasticsearch.enabled else "localindex")
    if streaming.worker_runs_in_this_process(pipeline.options):
        # The SDK worker is this process: the exporter above already serves its metrics, so
        # its DoFns must not start a second one (nor one at all with --metrics-port 0).
        os.environ["NEWSMON_METRICS_PORT"] = "0"
    if getattr(args, "verbose", 0) < 2:
        streaming.shorten_tracebacks()
    stop = threading.Event()
    install_streaming_stop_handlers(stop)
    print(f"newsmon: streaming {len(streaming.effective_feeds(cfg))} feeds on {args.runner} into "
          f"{'Elasticsearch' if cfg.elasticsearch.enabled else cfg.store_dir}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    try:
        outcome = streaming.run_until_stopped(pipeline, stop)
    except streaming.JobFailed as exc:
        print(f"newsmon: the {args.runner} job failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. the runner could not start: one line, not a traceback
        hint = ("; without internet give a Prism binary with --prism_location=PATH (README: "
                "\"The streaming driver on Prism\")" if "prism" in str(exc).lower() else "")
        print(f"newsmon: could not run on {args.runner}: {type(exc).__name__}: {str(exc).strip()[:500]}{hint}",
              file=sys.stderr, flush=True)
        return 1
    if outcome != "stopped":
        print(f"newsmon: the {args.runner} job ended on its own ({outcome})", file=sys.stderr, flush=True)
        return 1
    print("newsmon: stopped", file=sys.stderr, flush=True)
    return 0


def install_streaming_stop_handlers(stop: threading.Event) -> None:
    """Like :func:`install_stop_handlers`, but the hard exit after the grace period first kills
    the runner subprocess (Prism) this process started, so none is left behind."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return
        log.warning("received %s: cancelling the job", signal.Signals(signum).name)
        stop.set()

        def watchdog() -> None:
            from pipelines.streaming import kill_own_children

            time.sleep(STOP_GRACE_SECONDS)
            print("newsmon: stop grace period over; exiting", file=sys.stderr, flush=True)
            kill_own_children()
            os._exit(0)

        threading.Thread(target=watchdog, daemon=True, name="stop-watchdog").start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# -- backfill ----------------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.url and not args.feed:
        cfg = cfg.replace(feeds=())
    from connectors.storelock import StoreLock

    # refuse a store a `run` holds: its driver keeps feed state in memory as the only writer
    lock = StoreLock.acquire(cfg.store_dir, command="backfill")
    try:
        return _backfill(cfg, args)
    finally:
        lock.release()


def _backfill(cfg: Config, args: argparse.Namespace) -> int:
    """Poll the feeds once, process everything, then report what was done and what was not.

    Exits 0 only when every accepted entry was stored and every feed answered; otherwise it
    lists what is left (waiting for a fetch retry, for the sink, or quarantined) and exits 1.
    """
    from tqdm import tqdm

    from connectors import metrics
    from pipelines.local import CycleReport, LocalDriver
    from transforms.records import FeedEntry, utcnow

    m = metrics.get()
    before = _backfill_counters(m)
    driver = LocalDriver(cfg, workers=extract_workers(args), one_shot=True)
    report = CycleReport()
    try:
        driver.poll(driver.feeds, report, wait=True)
        now = utcnow()
        entries = [
            FeedEntry(
                feed_url="", feed_id="backfill", source="", entry_id=url, link=url, title="", summary="",
                published=None, published_raw="", fetched_at=now,
            )
            for url in args.url
        ]
        driver.state.add_pending(driver.accept(entries, report))
        driver.resend_outbox(report)
        total = driver.state.counts()["pending"]
        with tqdm(total=total, unit="article", desc="backfill", file=sys.stderr, disable=args.quiet) as bar:
            while True:
                done_before = report.processed
                driver.process_pending(report)
                bar.update(report.processed - done_before)
                if report.processed == done_before and not driver.busy():
                    break
        left = driver.state.unfinished(limit=BACKFILL_LIST_LIMIT)
        counts = driver.state.counts()
    finally:
        driver.close()
    after = _backfill_counters(m)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    print(backfill_summary(report, delta), file=sys.stderr)
    unfinished = counts["pending"] + counts["outbox"] + counts["failed"]
    if unfinished:
        print(_unfinished_report(counts, left, cfg), file=sys.stderr)
    return 0 if not report.errors and not unfinished else 1


BACKFILL_LIST_LIMIT = 20


def _backfill_counters(m: Any) -> dict[tuple[str, str], float]:
    """Process-wide counters backfill reports on: (family, label) -> value."""
    out: dict[tuple[str, str], float] = {}
    for family, counter, label in (
        ("fetch", m.articles_fetched, "outcome"),
        ("extract", m.articles_extracted, "outcome"),
        ("rejected", m.entries_rejected, "reason"),
        ("failed", m.articles_failed, "reason"),
    ):
        for metric in counter.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                if family == "failed" and sample.labels.get("stage") != "accept":
                    continue
                key = (family, sample.labels[label])
                out[key] = out.get(key, 0.0) + sample.value
    return out


def _breakdown(delta: dict[tuple[str, str], float], family: str, *, skip: tuple[str, ...] = ()) -> tuple[int, str]:
    parts = {k[1]: int(v) for k, v in delta.items() if k[0] == family and k[1] not in skip and v > 0}
    total = sum(parts.values())
    return total, ", ".join(f"{name} {n}" for name, n in sorted(parts.items()))


def backfill_summary(report: Any, delta: dict[tuple[str, str], float]) -> str:
    """One line: what came in, what was stored, what failed on the way (fetches, intake, feeds)."""
    failures, failure_kinds = _breakdown(delta, "fetch", skip=("ok",))
    rejected, rejected_kinds = _breakdown(delta, "rejected")
    bad_urls = int(sum(v for k, v in delta.items() if k[0] == "failed"))
    if bad_urls:
        rejected += bad_urls
        rejected_kinds = ", ".join(p for p in (rejected_kinds, f"bad_url {bad_urls}") if p)
    fallback = int(delta.get(("extract", "feed_fallback"), 0))
    parts = [
        f"{report.accepted} new",
        f"{report.url_duplicates} already known",
        f"{report.acknowledged} stored" + (f" ({fallback} with the feed's text only)" if fallback else ""),
        f"{failures} fetch failures" + (f" ({failure_kinds})" if failures else ""),
        f"{rejected} entries rejected at intake" + (f" ({rejected_kinds})" if rejected else ""),
        f"{len(report.errors)} feed errors",
    ]
    return "backfill: " + ", ".join(parts)


def _unfinished_report(counts: dict[str, int], left: list[tuple[str, str, str, float | None, str]],
                       cfg: Config) -> str:
    total = counts["pending"] + counts["outbox"] + counts["failed"]
    lines = [
        f"backfill: {total} articles not finished: {counts['pending']} waiting to retry a fetch, "
        f"{counts['outbox']} waiting for the sink, {counts['failed']} quarantined after repeated pipeline failures"
    ]
    now = time.time()
    for where, _aid, url, retry_at, error in left:
        when = ""
        if where == "pending" and retry_at:
            when = f"retry in {max(0, int(retry_at - now))}s; "
        what = {"pending": "fetch", "outbox": "sink", "failed": "quarantined"}[where]
        lines.append(f"  {what:<11} {url}  ({when}{error or 'not attempted yet'})")
    if total > len(left):
        lines.append(f"  ... and {total - len(left)} more")
    lines.append(f"Run the same backfill again later (or `newsmon run --store {cfg.store_dir}`) to finish them; "
                 f"`newsmon status --store {cfg.store_dir}` shows the backlog.")
    return "\n".join(lines)


# -- feeds check -------------------------------------------------------------------------------
def cmd_feeds_check(args: argparse.Namespace) -> int:
    from connectors.rss import poll_feed
    from connectors.web import HttpClient

    cfg = config_from_args(args)
    http = HttpClient(cfg.fetch)
    failures = 0
    width = max([len("feed"), *(len(f.id) for f in cfg.enabled_feeds)])
    print(f"{'feed':<{width}} {'status':<16} {'items':>5} {'time':>7}  conditional GET")
    try:
        for feed in cfg.enabled_feeds:
            first = poll_feed(http, feed, None, now=time.time(), one_shot=True)
            conditional = "-"
            if first.error is None and (first.state.etag or first.state.last_modified):
                second = poll_feed(http, feed, first.state, now=time.time(), one_shot=True)
                conditional = "honoured" if second.outcome == "not_modified" else f"ignored ({second.outcome})"
            elif first.error is None:
                conditional = "no ETag/Last-Modified"
            if first.error is not None:
                failures += 1
            took = f"{first.request_seconds:>6.2f}s" if first.request_seconds is not None else f"{'-':>7}"
            print(f"{feed.id:<{width}} {first.outcome:<16} {first.items:>5} {took}  {conditional}", flush=True)
            if first.error:
                print(f"{'':<{width}} {first.error}", flush=True)
    finally:
        http.close()
    return 1 if failures else 0


# -- extraction processes ----------------------------------------------------------------------
def add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that extract pages (default: one per CPU core; 1 = in the main process)")


def extract_workers(args: argparse.Namespace) -> int:
    from pipelines.extractpool import default_workers

    workers = getattr(args, "workers", None)
    if workers is None:
        return default_workers()
    if workers < 1:
        raise SystemExit(f"newsmon: --workers must be at least 1, got {workers}")
    return workers


# -- registration ------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="poll feeds and process articles until stopped")
    add_config_options(p)
    p.add_argument("--poll-interval", type=positive_float, metavar="SECONDS", help="fixed poll interval for every feed")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="let HOST through the private-address block")
    p.add_argument("--topics-dir", help="directory of user topic YAML files (added to the shipped topics)")
    p.add_argument("--metrics-host", help="metrics bind address (default 127.0.0.1)")
    p.add_argument("--metrics-port", type=port_number, help="metrics port (default 9464; 0: any free port)")
    p.add_argument("--runner", help="FnApiRunner (default, local driver) or PrismRunner|FlinkRunner|DataflowRunner; "
                   "other Beam options are passed through")
    add_workers_option(p)
    p.set_defaults(func=cmd_run, accepts_extra=True, default_verbosity=1)

    p = subparsers.add_parser("backfill", help="process feeds and/or URLs once (batch), then exit")
    add_config_options(p)
    p.add_argument("--url", action="append", default=[], metavar="URL", help="an article URL to fetch (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    p.add_argument("--topics-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_workers_option(p)
    p.set_defaults(func=cmd_backfill)

    feeds = subparsers.add_parser("feeds", help="feed tools")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND")
    p = feeds_sub.add_parser("check", help="poll each feed once and report")
    add_config_options(p)
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    p.set_defaults(func=cmd_feeds_check)


__all__ = ["register", "config_from_args"]
