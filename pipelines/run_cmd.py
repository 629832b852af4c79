"""Commands: ``run``, ``backfill``, ``search``, ``feeds check``, ``status``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def start_metrics(cfg: Config, *, sink: str) -> None:
    from prometheus_client import start_http_server

    from pipelines import metrics

    m = metrics.get()
    m.init_series(feeds=[f.id for f in cfg.enabled_feeds], topics=topic_names(cfg), sink=sink)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port, addr=cfg.metrics_host, registry=m.registry)
        log.info("metrics on http://%s:%d/metrics", cfg.metrics_host, cfg.metrics_port)


# -- run ---------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.runner and args.runner not in ("FnApiRunner", "local"):
        return run_streaming(cfg, args)
    if not cfg.enabled_feeds:
        print("newsmon: no feeds configured (use --feed URL or a config file)", file=sys.stderr)
        return 2
    from pipelines.local import LocalDriver

    driver = LocalDriver(cfg)
    start_metrics(cfg, sink="elasticsearch" if cfg.elasticsearch.enabled else "localindex")
    install_stop_handlers(driver.stop_event)
    print(
        f"newsmon: polling {len(cfg.enabled_feeds)} feeds into "
        f"{'Elasticsearch' if cfg.elasticsearch.enabled else cfg.store_dir}; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        driver.run_forever()
    finally:
        driver.close()
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
    from tqdm import tqdm

    from pipelines.local import CycleReport, LocalDriver
    from transforms.records import FeedEntry, utcnow

    cfg = config_from_args(args)
    if args.url and not args.feed:
        cfg = cfg.replace(feeds=())
    driver = LocalDriver(cfg)
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
                before = report.processed
                driver.process_pending(report)
                bar.update(report.processed - before)
                if report.processed == before:
                    break
    finally:
        driver.close()
    print(
        f"backfill: {report.accepted} new, {report.url_duplicates} already known, "
        f"{report.acknowledged} stored, {len(report.errors)} feed errors",
        file=sys.stderr,
    )
    return 0 if not report.errors else 1


# -- search ------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from pipelines.process import open_sink

    cfg = config_from_args(args)
    sink = open_sink(cfg.elasticsearch, cfg.store_dir)
    try:
        try:
            hits = sink.search(args.query, limit=args.limit, include_duplicates=args.all)
        except ValueError as exc:
            print(f"newsmon: {exc}", file=sys.stderr)
            return 2
    finally:
        sink.close()
    if args.json:
        for hit in hits:
            print(json.dumps(hit.to_dict(), ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
    for i, hit in enumerate(hits, 1):
        topics = f"  [{', '.join(hit.topics)}]" if hit.topics else ""
        print(f"{i:>2}. {hit.title}{topics}")
        print(f"    {hit.source} · {hit.published or 'no date'} · {hit.url}")
        print(f"    {hit.snippet}")
    return 0


# -- feeds check -------------------------------------------------------------------------------
def cmd_feeds_check(args: argparse.Namespace) -> int:
    from connectors.rss import poll_feed
    from connectors.web import HttpClient

    cfg = config_from_args(args)
    http = HttpClient(cfg.fetch)
    failures = 0
    print(f"{'feed':<32} {'status':<16} {'items':>5} {'time':>7}  conditional GET")
    try:
        for feed in cfg.enabled_feeds:
            first = poll_feed(http, feed, None, now=time.time())
            conditional = "-"
            if first.error is None and (first.state.etag or first.state.last_modified):
                second = poll_feed(http, feed, first.state, now=time.time())
                conditional = "honoured" if second.outcome == "not_modified" else f"ignored ({second.outcome})"
            elif first.error is None:
                conditional = "no ETag/Last-Modified"
            if first.error is not None:
                failures += 1
            print(f"{feed.id:<32} {first.outcome:<16} {first.items:>5} {first.elapsed:>6.2f}s  {conditional}")
            if first.error:
                print(f"{'':<32} {first.error}")
    finally:
        http.close()
    return 1 if failures else 0


# -- status ------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    from connectors.statestore import StateStore

    cfg = config_from_args(args)
    state_path = Path(cfg.store_dir) / "state.sqlite"
    if not state_path.exists():
        print(f"newsmon: no state in {cfg.store_dir} (has `newsmon run` started with this --store?)", file=sys.stderr)
        return 2
    store = StateStore(state_path)
    try:
        states = store.all_feed_states()
        counts = store.counts()
    finally:
        store.close()
    now = time.time()
    print(f"{'feed':<32} {'last success':<20} {'items':>5} {'interval':>9}  last error")
    for fid in sorted(states):
        s = states[fid]
        err = f"{_ago(now, s.last_error_at)} ago: {s.last_error}" if s.last_error else ""
        last = f"{_ago(now, s.last_success_at)} ago" if s.last_success_at else "never"
        print(f"{fid:<32} {last:<20} {s.items_last:>5} {s.interval:>8.0f}s  {err}")
    print(f"\nbacklog: {counts['pending']} pending, {counts['outbox']} awaiting the sink, "
          f"{counts['failed']} quarantined after repeated pipeline failures")
    topics = scrape_topic_counts(args.metrics_url or f"http://{cfg.metrics_host}:{cfg.metrics_port}/metrics")
    if topics is None:
        print("topics: the running process's metrics endpoint did not answer")
    else:
        print("topics (articles tagged since start): " + ", ".join(f"{t}={int(v)}" for t, v in sorted(topics.items())))
    return 0


def scrape_topic_counts(url: str) -> dict[str, float] | None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - operator-given local URL
            text = r.read().decode("utf-8")
    except OSError:
        return None
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "newsmon_articles_tagged_total":
                out[sample.labels["topic"]] = sample.value
    return out


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "?"
    secs = max(0, int(now - then))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h"


# -- registration ------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="poll feeds and process articles until stopped")
    add_config_options(p)
    p.add_argument("--poll-interval", type=float, metavar="SECONDS", help="fixed poll interval for every feed")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="let HOST through the private-address block")
    p.add_argument("--topics-dir", help="directory of user topic YAML files (added to the shipped topics)")
    p.add_argument("--metrics-host", help="metrics bind address (default 127.0.0.1)")
    p.add_argument("--metrics-port", type=int, help="metrics port (default 9464; 0 disables)")
    p.add_argument("--runner", help="FnApiRunner (default, local driver) or PrismRunner|FlinkRunner|DataflowRunner; "
                   "other Beam options are passed through")
    p.set_defaults(func=cmd_run, accepts_extra=True, default_verbosity=1)

    p = subparsers.add_parser("backfill", help="process feeds and/or URLs once (batch), then exit")
    add_config_options(p)
    p.add_argument("--url", action="append", default=[], metavar="URL", help="an article URL to fetch (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    p.add_argument("--topics-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)

    p = subparsers.add_parser("search", help="search stored articles")
    p.add_argument("query", help='words, "a phrase", prefix*, -exclude')
    add_config_options(p, feeds=False)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--all", action="store_true", help="include duplicates (hidden by default)")
    p.set_defaults(func=cmd_search)

    feeds = subparsers.add_parser("feeds", help="feed tools")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND")
    p = feeds_sub.add_parser("check", help="poll each feed once and report")
    add_config_options(p)
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    p.set_defaults(func=cmd_feeds_check)

    p = subparsers.add_parser("status", help="feed health and topic counts of a running newsmon")
    add_config_options(p, feeds=False)
    p.add_argument("--metrics-url", help="the running process's /metrics URL (default from config)")
    p.set_defaults(func=cmd_status)


__all__ = ["register", "config_from_args"]
