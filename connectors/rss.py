"""Feed polling: fetch a feed politely, parse it safely, emit only entries not seen before.

One poll (:func:`poll_feed`) is a pure-ish step ``(client, feed, state, now) -> PollResult``:
it never raises for feed problems, and returns the *new* :class:`FeedState` for the caller to
persist (the local driver stores it with the accepted entries in one transaction).

* **Cheap when nothing changed.** Conditional GET (``If-None-Match`` / ``If-Modified-Since``)
  gives ``not_modified``; a sha256 of the body catches servers that ignore validators or change
  the ETag without changing the content (``unchanged``). ``conditional_get`` reports whether
  the server honoured the validators (for ``newsmon feeds check``).
* **Adaptive schedule** (:func:`next_interval`, pure): the interval halves while a feed yields
  several new items per poll, holds at one, grows 1.5x when quiet, always within
  ``[min_interval, max_interval]``; the feed's ``<ttl>`` is a lower bound (capped by
  ``max_interval``); ``Retry-After`` on 429/503 is honoured (up to 6 h); errors back off
  exponentially from ``min_interval``. A fixed interval is ``min_interval == max_interval``
  (:func:`apply_poll_interval`).
* **Parsing** (:func:`parse_feed`): feedparser does the work, reading from a stream (never a
  string, which it could take for a URL or a file name). Before it runs, the input is capped by
  size and documents that declare XML entities in a DTD are refused (no entity-expansion bombs;
  feedparser already disables external entities). feedparser's untyped entries become
  :class:`~transforms.records.FeedEntry` here: the entry key is the guid/id, else the link;
  links hidden behind FeedsPortal/FeedBurner redirectors are replaced by the real URL in the
  guid. An entry needs an http(s) link *of its own*: its ``<link>`` (a root-relative one is
  resolved against the feed's final URL), or a guid/id that is itself an absolute http(s) URL.
  A guid such as ``1`` or ``right`` is never turned into a URL on the feed's host (feedparser
  does that when told the document's location, so it is not told); such entries are skipped,
  logged once and counted in ``newsmon_feed_entries_rejected_total{feed,reason}``, and so is an
  entry that cannot be read at all. Dates become UTC (``transforms.dates.parse_date`` for forms
  feedparser cannot read); double-encoded UTF-8 ("â€™") is repaired; HTML is stripped from titles and summaries.
* :class:`ReadFromRss` wraps the same poll for streaming runners: ``PeriodicImpulse`` -> poll
  the feeds that are due -> ``FeedEntry``; state lives in a :class:`FeedStateStore`, not in Beam.
  It lives in :mod:`connectors.rssbeam` so that polling does not import Beam; the names are still
  importable from here (loaded on first use).

Metrics: :func:`poll_feed` counts every poll in ``newsmon_feed_polls_total{feed,outcome}`` and
updates the per-feed items, interval, last-success and last-new-item series (``metrics.get()``).
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import html
import io
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import feedparser

from connectors import metrics as metrics_mod
from connectors.settings import FeedConfig
from connectors.web import FetchError, HttpClient, redact
from transforms.dates import parse_date
from transforms.records import FeedEntry

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 10 * 1024 * 1024
SEEN_LIMIT = 2000
RETRY_AFTER_CAP = 6 * 3600.0
_MAX_BACKOFF_STEPS = 16
_REDIRECTOR_HOSTS = ("feedsportal.com", "feedproxy.google.com", "feeds.feedburner.com")


class FeedParseError(Exception):
    """The body is not a usable feed (not XML/RSS/Atom, refused DTD, too large...). Permanent."""


# --------------------------------------------------------------------------- state + result


@dataclass(frozen=True, slots=True)
class FeedState:
    feed_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    interval: float = 0.0  # current adaptive interval (s); 0 = not polled yet
    next_poll_at: float = 0.0  # unix time
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_errors: int = 0
    items_last: int = 0
    last_new_item_at: float | None = None
    seen: tuple[str, ...] = ()  # newest first, bounded: entry keys already emitted
    polls: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seen"] = list(self.seen)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedState:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["seen"] = tuple(kwargs.get("seen", ()))
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class PollResult:
    feed_id: str
    outcome: str  # one of connectors.metrics.FEED_POLL_OUTCOMES
    entries: tuple[FeedEntry, ...]  # only entries not seen before
    state: FeedState  # the updated state; the caller persists it
    items: int  # items in the feed document (0 when not parsed)
    elapsed: float
    conditional_get: bool | None  # True: server answered 304; False: it ignored our validators
    error: str | None  # why the poll failed (None when outcome is ok/not_modified/unchanged)
    warning: str | None = None  # e.g. malformed XML that feedparser recovered from
    rejected: int = 0  # entries skipped at intake for the first time (no http(s) link, unreadable)
    request_seconds: float | None = None  # the HTTP request alone, without politeness waits


class FeedStateStore(Protocol):
    def load_feed_state(self, feed_id: str) -> FeedState | None: ...

    def save_feed_state(self, state: FeedState) -> None: ...


# --------------------------------------------------------------------------- parsing


def _prolog_text(body: bytes) -> str:
    """The document up to its first element, as text (handles UTF-16/32 BOMs and BOM-less UTF-16)."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, errors="replace")
    if body[:1] == b"\0":
        return body.decode("utf-16-be", errors="replace")
    if body[1:2] == b"\0":
        return body.decode("utf-16-le", errors="replace")
    return body.decode("latin-1")


_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")


def _check_safe(body: bytes) -> None:
    if len(body) > MAX_FEED_BYTES:
        raise FeedParseError(f"feed is {len(body)} bytes, above the {MAX_FEED_BYTES}-byte parse cap")
    if not body.strip():
        raise FeedParseError("empty body")
    text = _prolog_text(body)
    m = _FIRST_ELEMENT.search(text)
    prolog = text[: m.start()] if m else text
    if _ENTITY_DECL.search(prolog):
        raise FeedParseError("document declares XML entities in a DTD (refused: entity-expansion risk)")


_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")
# Runs that look like UTF-8 decoded as windows-1252 ("â€™", "Ã©", "Â ").
_MOJIBAKE = re.compile(
    "(?:[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{1,3})+"
)


_CP1252_HOLES = frozenset("\x81\x8d\x8f\x90\x9d")


def fix_mojibake(text: str) -> str:
    """Repair runs of double-encoded UTF-8; text that is not mojibake is returned unchanged."""

    def repair(m: re.Match[str]) -> str:
        try:  # cp1252's five unassigned bytes survive as U+0081.. when decoded leniently: map them back
            raw = b"".join(c.encode("cp1252") if c not in _CP1252_HOLES else bytes([ord(c)]) for c in m.group(0))
            return raw.decode("utf-8")
        except UnicodeError:
            return m.group(0)

    return _MOJIBAKE.sub(repair, text) if text else text


def clean_text(value: Any) -> str:
    """Plain text from a feed field that may hold HTML: tags stripped, entities decoded, spaces collapsed."""
    if not isinstance(value, str):
        return ""
    text = html.unescape(_TAG.sub(" ", value))
    return fix_mojibake(_WS.sub(" ", text).strip())


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_redirector(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _REDIRECTOR_HOSTS)


def _entry_link(entry: Mapping[str, Any], base: str) -> str | None:
    """The entry's own http(s) link, or None (see the module docstring)."""
    guid = entry.get("id")
    guid = guid.strip() if isinstance(guid, str) else None
    guid_url = guid if guid and _is_http_url(guid) else None
    link = None
    raw_link = entry.get("link")
    if isinstance(raw_link, str) and entry.get("guidislink") and raw_link.strip() == guid:
        raw_link = None  # feedparser copied a permalink guid into "link": that is the guid, not a link
    if isinstance(raw_link, str) and raw_link.strip():
        raw_link = raw_link.strip()
        if _is_http_url(raw_link):
            link = raw_link
        elif raw_link.startswith("/") and not raw_link.startswith("//"):
            try:
                link = urljoin(base, raw_link)
            except ValueError:
                link = None
            link = link if _is_http_url(link) else None
    if guid_url and (link is None or _is_redirector(link)):
        return guid_url
    return link


def _struct_to_dt(value: Any) -> datetime | None:
    try:
        year, month, day, hour, minute, second = value[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _entry_date(entry: Mapping[str, Any], fetched_at: datetime) -> tuple[datetime | None, str]:
    raw = ""
    for key in ("published", "updated", "created"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            raw = value.strip()
            parsed = _struct_to_dt(entry.get(f"{key}_parsed"))
            if parsed is not None:
                return parsed, raw
            break
    if not raw:
        return None, ""
    return _fallback_date(raw, fetched_at), raw


def _fallback_date(raw: str, fetched_at: datetime) -> datetime | None:
    try:
        parsed = parse_date(raw, now=fetched_at)
    except Exception:
        log.debug("parse_date failed on %r", raw, exc_info=True)
        return None
    return None if parsed is None else parsed.astimezone(UTC)


def entry_key(entry: Mapping[str, Any], link: str | None) -> str | None:
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return guid.strip()
    return link


def to_feed_entry(
    entry: Mapping[str, Any], *, feed: FeedConfig, fetched_at: datetime, base_url: str | None = None
) -> FeedEntry | None:
    """Convert one feedparser entry; None when it has no http(s) link of its own.

    ``base_url``: where the document was fetched from (after redirects), for root-relative links.
    """
    link = _entry_link(entry, base_url or feed.url)
    key = entry_key(entry, link)
    if link is None or key is None:
        return None
    published, raw = _entry_date(entry, fetched_at)
    return FeedEntry(
        feed_url=feed.url,
        feed_id=feed.id,
        source=feed.name,
        entry_id=key,
        link=link,
        title=clean_text(entry.get("title")),
        summary=clean_text(entry.get("summary")),
        published=published,
        published_raw=raw,
        fetched_at=fetched_at,
    )


def _parse(body: bytes, *, content_type: str | None) -> Any:
    # No content-location: feedparser would resolve non-URL guids into links on the feed's host.
    # No content-type when the server sent none: feedparser would call that a malformed feed.
    headers = {"content-type": content_type} if content_type else None
    return feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=True)


# bozo exceptions that say nothing about the document being malformed
_NOT_MALFORMED = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    entries: list[FeedEntry]
    ttl: int | None
    items: int  # entries in the document, usable or not
    warning: str | None
    rejected: list[tuple[str, str, str]]  # (seen key, reason, description) of entries skipped


def _looks_like_html(body: bytes) -> bool:
    head = body[:2048].lstrip().lower()
    return head.startswith(b"<!doctype html") or b"<html" in head


def parse_feed(
    body: bytes, *, feed: FeedConfig, fetched_at: datetime, content_type: str | None = None,
    base_url: str | None = None,
) -> tuple[list[FeedEntry], int | None]:
    """Parse a feed document into FeedEntry records (+ ``<ttl>`` in minutes). Raises FeedParseError."""
    parsed = _parse_feed(body, feed=feed, fetched_at=fetched_at, content_type=content_type, base_url=base_url)
    return parsed.entries, parsed.ttl


def _rejected_key(raw: Mapping[str, Any]) -> str:
    """A stable key for an entry that is skipped, so it is logged and counted once, not every poll."""
    guid = raw.get("id")
    if isinstance(guid, str) and guid.strip():
        ident = guid.strip()
    else:
        ident = hashlib.sha256(f"{raw.get('title')!s}\0{raw.get('summary')!s}".encode(errors="replace")).hexdigest()[:24]
    return f"!rejected:{ident}"


def _parse_feed(
    body: bytes, *, feed: FeedConfig, fetched_at: datetime, content_type: str | None, base_url: str | None = None
) -> ParsedFeed:
    _check_safe(body)
    try:
        result = _parse(body, content_type=content_type)
    except Exception as exc:
        raise FeedParseError(f"feedparser failed: {type(exc).__name__}: {exc}") from exc
    raw_entries = list(result.get("entries") or ())
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    version = result.get("version") or ""
    if not raw_entries:
        if _looks_like_html(body):
            raise FeedParseError("HTML page served instead of a feed")
        if not version:
            reason = f": {type(bozo).__name__}: {bozo}" if bozo is not None else ""
            raise FeedParseError(f"not an RSS/Atom feed{reason}")
    entries: list[FeedEntry] = []
    rejected: list[tuple[str, str, str]] = []
    keys: set[str] = set()
    for raw in raw_entries:
        try:
            record = to_feed_entry(raw, feed=feed, fetched_at=fetched_at, base_url=base_url)
        except Exception as exc:  # noqa: BLE001 - one odd entry must not cost the feed its other items
            rejected.append((_rejected_key(raw), "unreadable", f"{type(exc).__name__}: {exc}"[:200]))
            continue
        if record is None:
            title = clean_text(raw.get("title"))[:80]
            rejected.append((_rejected_key(raw), "no_link", f"no http(s) link of its own (title {title!r})"))
            continue
        if record.entry_id in keys:
            continue
        keys.add(record.entry_id)
        entries.append(record)
    if raw_entries and not entries:
        raise FeedParseError(f"none of the {len(raw_entries)} entries has an http(s) link of its own")
    warning = None
    if bozo is not None and not isinstance(bozo, _NOT_MALFORMED):
        warning = f"recovered from malformed feed: {type(bozo).__name__}: {bozo}"
    ttl = _ttl(result.get("feed", {}).get("ttl"))
    return ParsedFeed(entries, ttl, len(raw_entries), warning, rejected)


_TTL = re.compile(r"\s*([0-9]{1,6})\s*")  # ASCII digits only: "²".isdigit() is True but int("²") fails


def _ttl(value: Any) -> int | None:
    """``<ttl>`` in minutes when it is a plausible number, else None (ignored, never an error)."""
    m = _TTL.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        if value:
            log.debug("ignoring <ttl> %r", value)
        return None
    ttl = int(m.group(1))
    return ttl if 0 < ttl <= 7 * 24 * 60 else None


# --------------------------------------------------------------------------- scheduling


def next_interval(
    state: FeedState | None,
    *,
    new_items: int,
    feed: FeedConfig,
    ttl: int | None,
    retry_after: float | None,
    failed: bool,
) -> float:
    """The next poll interval in seconds (pure). See the module docstring for the policy."""
    lo, hi = feed.min_interval, max(feed.max_interval, feed.min_interval)
    current = state.interval if state is not None and state.interval > 0 else lo
    if failed:
        errors = (state.consecutive_errors if state is not None else 0) + 1
        interval = lo * 2 ** min(errors, _MAX_BACKOFF_STEPS)
    elif new_items >= 2:
        interval = current / 2
    elif new_items == 1:
        interval = current
    else:
        interval = current * 1.5
    interval = min(max(interval, lo), hi)
    if ttl and not failed:
        interval = max(interval, min(ttl * 60.0, hi))
    if retry_after is not None and retry_after > 0:
        interval = max(interval, min(retry_after, RETRY_AFTER_CAP))
    return interval


def due(states: Mapping[str, FeedState], feeds: Sequence[FeedConfig], now: float) -> list[FeedConfig]:
    """Enabled feeds whose next poll time has come, most overdue first (never-polled first of all)."""
    ready = [f for f in feeds if f.enabled and (f.id not in states or states[f.id].next_poll_at <= now)]
    return sorted(ready, key=lambda f: states[f.id].next_poll_at if f.id in states else float("-inf"))


def apply_poll_interval(feeds: Iterable[FeedConfig], poll_interval: float | None) -> tuple[FeedConfig, ...]:
    """Force a fixed interval on every feed (``Config.poll_interval``); unchanged when None."""
    if poll_interval is None:
        return tuple(feeds)
    return tuple(dataclasses.replace(f, min_interval=poll_interval, max_interval=poll_interval) for f in feeds)


# --------------------------------------------------------------------------- polling

_FETCH_TO_POLL = {"http_error": "http_error", "timeout": "timeout", "connection_error": "connection_error",
                  "too_large": "too_large", "blocked": "blocked", "not_html": "parse_error"}


def _merge_seen(current_keys: Sequence[str], old: Sequence[str]) -> tuple[str, ...]:
    """Keys present in the feed now (newest first), then older ones, bounded by SEEN_LIMIT."""
    present = list(dict.fromkeys(current_keys))
    present_set = set(present)
    rest = [k for k in old if k not in present_set]
    return tuple(present + rest)[: max(SEEN_LIMIT, len(present))]


def poll_feed(
    client: HttpClient, feed: FeedConfig, state: FeedState | None, *, now: float, one_shot: bool = False
) -> PollResult:
    """Poll one feed once. Never raises for feed problems: the outcome says what happened.

    ``one_shot``: the caller polls once and exits (``backfill``), so a failure is not announced
    with a next-try time.
    """
    started = time.monotonic()
    if state is None or state.feed_id != feed.id:
        state = FeedState(feed_id=feed.id, url=feed.url)
    elif state.url != feed.url:  # the feed moved: validators no longer apply, seen keys still do
        state = FeedState(feed_id=feed.id, url=feed.url, seen=state.seen, interval=state.interval)
    headers: dict[str, str] = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    fetched_at = datetime.fromtimestamp(now, UTC)
    try:
        response = client.get(feed.url, headers=headers, robots=False)
    except FetchError as exc:
        return _failed(feed, state, now, started, _FETCH_TO_POLL.get(exc.kind, "connection_error"), str(exc),
                       retry_after=exc.retry_after, one_shot=one_shot, request_seconds=exc.elapsed)
    except Exception as exc:
        log.debug("feed %s: unexpected error while fetching", feed.id, exc_info=True)
        return _failed(feed, state, now, started, "connection_error", f"unexpected {type(exc).__name__}: {exc}",
                       one_shot=one_shot)

    validators: dict[str, Any] = {
        "etag": response.headers.get("etag") or state.etag,
        "last_modified": response.headers.get("last-modified") or state.last_modified,
    }
    took = response.elapsed
    if response.status == 304:
        return _quiet(feed, state, now, started, "not_modified", True, validators, took)
    digest = hashlib.sha256(response.body).hexdigest()
    if digest == state.content_hash:
        return _quiet(feed, state, now, started, "unchanged", False if headers else None, validators, took)
    try:
        parsed = _parse_feed(
            response.body, feed=feed, fetched_at=fetched_at, content_type=response.headers.get("content-type"),
            base_url=response.url,
        )
    except FeedParseError as exc:
        return _failed(feed, state, now, started, "parse_error", f"{exc} ({redact(response.url)})",
                       one_shot=one_shot, request_seconds=took)
    except Exception as exc:  # noqa: BLE001 - a parser bug must cost one feed one poll, with one clear line
        log.debug("feed %s: unexpected parser failure", feed.id, exc_info=True)
        return _failed(feed, state, now, started, "parse_error", f"unexpected {type(exc).__name__}: {exc}",
                       one_shot=one_shot, request_seconds=took)
    entries, ttl, items, warning = parsed.entries, parsed.ttl, parsed.items, parsed.warning
    if warning:
        log.warning("feed %s: %s", feed.id, warning)
    seen = set(state.seen)
    new_rejections = _count_rejections(feed, parsed.rejected, seen)
    new = tuple(e for e in entries if e.entry_id not in seen)
    interval = next_interval(state, new_items=len(new), feed=feed, ttl=ttl, retry_after=None, failed=False)
    new_state = dataclasses.replace(
        state,
        **validators,
        content_hash=digest,
        interval=interval,
        next_poll_at=now + interval,
        last_success_at=now,
        consecutive_errors=0,
        items_last=items,
        last_new_item_at=now if new else state.last_new_item_at,
        seen=_merge_seen([e.entry_id for e in entries] + [key for key, _, _ in parsed.rejected], state.seen),
        polls=state.polls + 1,
    )
    conditional = False if headers else None
    result = PollResult(feed.id, "ok", new, new_state, items, time.monotonic() - started, conditional, None, warning,
                        rejected=new_rejections, request_seconds=took)
    _record(result)
    return result


def _count_rejections(feed: FeedConfig, rejected: Sequence[tuple[str, str, str]], seen: set[str]) -> int:
    """Log and count entries skipped at intake that this feed's state has not seen before."""
    m = metrics_mod.get()
    fresh = 0
    for key, reason, description in rejected:
        if key in seen:
            continue
        fresh += 1
        m.entries_rejected.labels(feed.id, reason).inc()
        log.warning("feed %s: entry skipped (%s): %s", feed.id, reason, description)
    return fresh


def _quiet(
    feed: FeedConfig, state: FeedState, now: float, started: float, outcome: str,
    conditional: bool | None, validators: Mapping[str, Any], request_seconds: float | None = None,
) -> PollResult:
    interval = next_interval(state, new_items=0, feed=feed, ttl=None, retry_after=None, failed=False)
    new_state = dataclasses.replace(
        state, **validators, interval=interval, next_poll_at=now + interval, last_success_at=now,
        consecutive_errors=0, polls=state.polls + 1,
    )
    result = PollResult(feed.id, outcome, (), new_state, state.items_last,
                        time.monotonic() - started, conditional, None, request_seconds=request_seconds)
    _record(result)
    return result


def _failed(
    feed: FeedConfig, state: FeedState, now: float, started: float, outcome: str, error: str,
    *, retry_after: float | None = None, one_shot: bool = False, request_seconds: float | None = None,
) -> PollResult:
    interval = next_interval(state, new_items=0, feed=feed, ttl=None, retry_after=retry_after, failed=True)
    new_state = dataclasses.replace(
        state, interval=interval, next_poll_at=now + interval, last_error=error, last_error_at=now,
        consecutive_errors=state.consecutive_errors + 1, polls=state.polls + 1,
    )
    if one_shot:
        log.warning("feed %s: poll failed (%s): %s", feed.id, outcome, error)
    else:
        log.warning("feed %s: poll failed (%s): %s; next try in %.0fs", feed.id, outcome, error, interval)
    result = PollResult(feed.id, outcome, (), new_state, 0, time.monotonic() - started, None, error,
                        request_seconds=request_seconds)
    _record(result)
    return result


def _record(result: PollResult) -> None:
    m = metrics_mod.get()
    fid = result.feed_id
    m.feed_polls.labels(fid, result.outcome).inc()
    m.feed_interval.labels(fid).set(result.state.interval)
    if result.outcome == "ok":
        m.feed_items.labels(fid).inc(result.items)
    if result.state.last_success_at is not None and result.error is None:
        m.feed_last_success.labels(fid).set(result.state.last_success_at)
    if result.entries and result.state.last_new_item_at is not None:
        m.feed_last_new_item.labels(fid).set(result.state.last_new_item_at)

