"""Read-only commands: ``search`` and ``status``.

Neither creates anything: a store path that does not exist is an error ("no store at X"),
never a new, empty store.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from pipelines.cli import positive_int
from pipelines.config import Config
from pipelines.run_cmd import add_config_options, config_from_args

SEARCH_DASH_HINT = (
    "hint: a query word starting with '-' (an exclusion) reads as an option here; put the query after --, "
    "as in  newsmon search -- banjir -jokowi  (or quote the whole query:  newsmon search \"banjir -jokowi\")"
)


# -- search ------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    query = " ".join(args.query)
    with contextlib.ExitStack() as stack:
        return _search(cfg, args, query, stack)


def _search(cfg: Config, args: argparse.Namespace, query: str, stack: contextlib.ExitStack) -> int:
    from connectors.localindex import INDEX_FILE, LocalIndex
    from connectors.sqlite import ensure_store_dir

    sink: Any
    if cfg.elasticsearch.enabled:
        from connectors.elasticsearch import ElasticsearchSink

        # the ES sink opens a dead-letter store; a search never writes one, so keep it out of --store
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="newsmon-search-"))
        sink = ElasticsearchSink(cfg.elasticsearch, deadletter_dir=Path(scratch) / "deadletter")
    else:
        store = ensure_store_dir(cfg.store_dir, create=False)
        if not (store / INDEX_FILE).exists():  # e.g. `run` has just started
            if not args.json:  # --json: no lines, like any empty result
                print(f"no results (nothing is indexed in {store} yet)")
            return 0
        sink = LocalIndex.in_store(store, create=False)
    try:
        try:
            hits = sink.search(query, limit=args.limit, include_duplicates=args.all)
        except ValueError as exc:  # QueryError, or a query the sink cannot parse
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
        for line in format_hit(i, hit):
            print(line)
    return 0


def format_hit(rank: int, hit: Any) -> list[str]:
    """The text lines of one search result, with its duplicate details when the sink has them."""
    topics = f"  [{', '.join(hit.topics)}]" if hit.topics else ""
    lines = [
        f"{rank:>2}. {hit.title}{topics}",
        f"    {hit.source} · {hit.published or 'no date'} · {hit.url}",
        f"    {hit.snippet}",
    ]
    if getattr(hit, "duplicate_of", None):
        kind = getattr(hit, "duplicate_kind", None) or "duplicate"
        lines.append(f"    {kind} duplicate of {hit.duplicate_of}")
    copies = list(getattr(hit, "also_published_at", ()) or ())
    if copies:
        lines.append(f"    also published at ({len(copies)}):")
        for c in copies:
            when = str(c.get("first_seen") or "")[:19].replace("T", " ")
            kind = c.get("kind") or "copy"
            lines.append(f"      - {c.get('source') or '?'} · {kind} · {when} · {c.get('url', '')}")
    story = getattr(hit, "story_id", None)
    if story:
        lines.append(f"    story {story}")
    return lines


# -- status ------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    from connectors.sqlite import ensure_store_dir
    from connectors.statestore import StateStore
    from connectors.storelock import store_owner

    cfg = config_from_args(args)
    store_dir = ensure_store_dir(cfg.store_dir, create=False)
    state_path = store_dir / "state.sqlite"
    if not state_path.exists():
        print(f"newsmon: no state in {store_dir} (has `newsmon run` started with this --store?)", file=sys.stderr)
        return 2
    store = StateStore(state_path, create=False)
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
    owner, held = store_owner(store_dir)
    if args.metrics_url:
        url = args.metrics_url
        print(f"process: metrics read from {url} (--metrics-url)")
    elif held and owner is not None and owner.metrics_url:
        url = owner.metrics_url
        print(f"process: {owner.describe()}; metrics read from {url}")
    elif held and owner is not None:
        print(f"process: {owner.describe()}; it serves no metrics, so topic counts are unknown")
        return 0
    elif held:
        print("process: a newsmon process holds this store but has not recorded who it is yet; try again")
        return 0
    else:
        last = f" (last: {owner.describe()})" if owner is not None else ""
        print(f"process: no newsmon process holds this store{last}; topic counts need a running `newsmon run`")
        return 0
    topics = scrape_topic_counts(url)
    if topics is None:
        print(f"topics: the running process's metrics endpoint did not answer ({url})")
    else:
        print("topics (articles tagged since start): " + ", ".join(f"{t}={int(v)}" for t, v in sorted(topics.items())))
    return 0


def scrape_topic_counts(url: str) -> dict[str, float] | None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - operator-given local URL
            text = r.read().decode("utf-8")
    except (OSError, ValueError):
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
    p = subparsers.add_parser("search", help="search stored articles")
    p.add_argument("query", nargs="+", help='words, "a phrase", prefix*, -exclude, a OR b (put -words after --)')
    add_config_options(p, feeds=False)
    p.add_argument("--limit", type=positive_int, default=10, help="at most N results (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--all", action="store_true", help="include duplicates (hidden by default)")
    p.set_defaults(func=cmd_search, dash_hint=SEARCH_DASH_HINT)
    _hint_on_error(p, SEARCH_DASH_HINT)

    p = subparsers.add_parser("status", help="feed health and topic counts of a running newsmon")
    add_config_options(p, feeds=False)
    p.add_argument("--metrics-url", help="read topic counts from this /metrics URL (default: the one the "
                   "process holding the store recorded)")
    p.set_defaults(func=cmd_status)


def _hint_on_error(parser: argparse.ArgumentParser, hint: str) -> None:
    """Add ``hint`` when the query is missing: ``search -jokowi`` reads -jokowi as an option."""
    plain_error = parser.error

    def error(message: str) -> NoReturn:
        plain_error(f"{message}\n{hint}" if "required: query" in message else message)

    parser.error = error  # type: ignore[method-assign]


__all__ = ["register", "format_hit", "scrape_topic_counts"]
