"""robots.txt for article fetches: fetched once per origin, cached, checked before every request.

:class:`RobotsCache` answers "may newsmon fetch this URL?" for :class:`connectors.web.HttpClient`.
Rules are parsed by ``protego`` (the parser Scrapy uses: wildcards, ``$``, longest-match
precedence, ``Crawl-delay``) and matched against the product token of ``fetch.user_agent``
(``newsmon`` for ``newsmon/0.1 (...)``), falling back to the ``*`` group.

Policy (RFC 9309, section 2.3.1), chosen for a monitor that must not hammer a struggling site:

* **2xx** -- the rules apply; the first 500 KiB are parsed; cached for 24 h.
* **4xx** (404, 401, 403, 410 ...) and unusable files (redirect loops, too large) -- no
  restrictions, as the RFC allows; cached for 24 h.
* **5xx, 429, timeouts, connection errors** ("unreachable") -- complete disallow *for now*:
  the article fetch fails with the transient outcome ``robots_unavailable``, so the pipeline
  retries it later with its usual backoff and, after ``max_attempts``, keeps the feed's text.
  The failure is cached for 5 minutes so a burst of articles from one host costs one robots
  request. If an earlier copy of the file is known, it keeps being used while the site is
  unreachable (the RFC allows a cached copy).
* Hosts in ``fetch.robots_exempt_hosts`` (the host or any subdomain) are not checked: for sites
  whose owner gave the operator permission. ``fetch.robots: false`` turns checking off.

``Crawl-delay`` is returned with the decision; the client raises its per-host spacing to it
(capped at :data:`MAX_CRAWL_DELAY`). Feed polls are not checked: the operator chose each feed,
and feeds are published for machines to read.

Every check is counted in ``newsmon_robots_total{outcome}`` (allowed, disallowed, unavailable,
exempt).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from connectors import metrics as metrics_mod

log = logging.getLogger(__name__)

RULES_TTL = 24 * 3600.0  # RFC 9309: a cached copy should not be used for more than 24 hours
UNREACHABLE_TTL = 300.0  # how long an unreachable robots.txt blocks before it is asked again
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB
MAX_CRAWL_DELAY = 60.0  # a larger Crawl-delay is honoured as 60 s (logged once per origin)
MAX_ORIGINS = 4096  # cached origins (least recently used dropped first)

ROBOTS_OUTCOMES = metrics_mod.ROBOTS_OUTCOMES


class RobotsUnreachable(Exception):
    """The robots.txt request failed in a way that says "try later" (5xx, 429, timeout, network).

    ``kind`` is the fetch outcome to report for the page: ``timeout`` or ``connection_error`` when
    the site itself is unreachable, ``robots_unavailable`` when it answered with an error.
    """

    def __init__(self, message: str, *, kind: str = "robots_unavailable") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class RobotsDecision:
    outcome: str  # one of ROBOTS_OUTCOMES
    crawl_delay: float | None = None
    detail: str = ""
    kind: str = "robots_unavailable"  # for "unavailable": the fetch outcome to report

    @property
    def allowed(self) -> bool:
        return self.outcome in ("allowed", "exempt")


@dataclass(frozen=True, slots=True)
class _Entry:
    rules: Protego | None  # None: no restrictions (4xx, unusable file)
    expires: float
    unreachable: bool = False
    error: str = ""
    kind: str = "robots_unavailable"


# fetch(robots_url) -> (status, body); raises RobotsUnreachable for transient failures,
# any other exception for a file that cannot be used (treated as "no restrictions").
RobotsFetcher = Callable[[str], tuple[int, bytes]]


def product_token(user_agent: str) -> str:
    """``newsmon`` from ``newsmon/0.1 (+mailto:...)``: what robots.txt ``User-agent`` lines name."""
    m = re.match(r"\s*([A-Za-z0-9_-]+)", user_agent)
    return m.group(1) if m else "*"


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    return scheme, host, parts.port or (443 if scheme == "https" else 80)


def robots_url(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}/robots.txt" if port == default else f"{scheme}://{shown}:{port}/robots.txt"


def is_exempt(host: str, exempt_hosts: tuple[str, ...]) -> bool:
    host = host.rstrip(".").lower()
    for h in exempt_hosts:
        h = h.strip().strip("[]").rstrip(".").lower()
        if h and (host == h or host.endswith("." + h)):
            return True
    return False


class RobotsCache:
    """Per-origin robots.txt rules, fetched lazily and at most once at a time per origin."""

    def __init__(
        self,
        fetcher: RobotsFetcher,
        *,
        user_agent: str,
        exempt_hosts: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetcher
        self._agent = product_token(user_agent)
        self._exempt = tuple(exempt_hosts)
        self._clock = clock
        self._lock = threading.Lock()
        self._origin_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._entries: OrderedDict[tuple[str, str, int], _Entry] = OrderedDict()
        self._warned_delay: set[tuple[str, str, int]] = set()

    def check(self, url: str) -> RobotsDecision:
        """May ``url`` be fetched now? Counts the decision in ``newsmon_robots_total``."""
        decision = self._decide(url)
        metrics_mod.get().robots.labels(decision.outcome).inc()
        return decision

    def _decide(self, url: str) -> RobotsDecision:
        origin = origin_of(url)
        if is_exempt(origin[1], self._exempt):
            return RobotsDecision("exempt")
        entry = self._entry(origin)
        if entry.unreachable:
            return RobotsDecision("unavailable", detail=entry.error, kind=entry.kind)
        if entry.rules is None:
            return RobotsDecision("allowed")
        delay = self._crawl_delay(origin, entry.rules)
        if not entry.rules.can_fetch(url, self._agent):
            return RobotsDecision("disallowed", crawl_delay=delay)
        return RobotsDecision("allowed", crawl_delay=delay)

    def _crawl_delay(self, origin: tuple[str, str, int], rules: Protego) -> float | None:
        try:
            delay = rules.crawl_delay(self._agent)
        except (TypeError, ValueError):
            return None
        if delay is None or delay <= 0:
            return None
        if delay > MAX_CRAWL_DELAY and origin not in self._warned_delay:
            self._warned_delay.add(origin)
            log.warning("%s asks for Crawl-delay %.0f s; newsmon spaces requests to it by %.0f s",
                        robots_url(origin), delay, MAX_CRAWL_DELAY)
        return min(float(delay), MAX_CRAWL_DELAY)

    def _entry(self, origin: tuple[str, str, int]) -> _Entry:
        with self._lock:
            lock = self._origin_locks.setdefault(origin, threading.Lock())
        with lock:  # one robots request per origin at a time; the others wait for its answer
            now = self._clock()
            with self._lock:
                cached = self._entries.get(origin)
                if cached is not None:
                    self._entries.move_to_end(origin)
            if cached is not None and cached.expires > now:
                return cached
            entry = self._load(origin, previous=cached, now=now)
            with self._lock:
                self._entries[origin] = entry
                self._entries.move_to_end(origin)
                while len(self._entries) > MAX_ORIGINS:
                    old, _ = self._entries.popitem(last=False)
                    self._origin_locks.pop(old, None)
            return entry

    def _load(self, origin: tuple[str, str, int], *, previous: _Entry | None, now: float) -> _Entry:
        url = robots_url(origin)
        try:
            status, body = self._fetch(url)
        except RobotsUnreachable as exc:
            if previous is not None and not previous.unreachable:
                log.info("%s unreachable (%s): keeping the copy fetched earlier", url, exc)
                return _Entry(previous.rules, now + UNREACHABLE_TTL)
            log.warning("%s unreachable (%s): not fetching from this site for now", url, exc)
            return _Entry(None, now + UNREACHABLE_TTL, unreachable=True, error=str(exc), kind=exc.kind)
        except Exception as exc:  # noqa: BLE001 - an unusable file means "no restrictions" (RFC 9309 2.3.1.3)
            log.info("%s unusable (%s): no restrictions", url, exc)
            return _Entry(None, now + RULES_TTL)
        if not 200 <= status < 300:
            return _Entry(None, now + RULES_TTL)
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        try:
            rules = Protego.parse(text)
        except Exception as exc:  # noqa: BLE001 - protego is lenient; this is belt and braces
            log.info("%s could not be parsed (%s): no restrictions", url, exc)
            return _Entry(None, now + RULES_TTL)
        return _Entry(rules, now + RULES_TTL)


__all__ = ["ROBOTS_OUTCOMES", "RobotsCache", "RobotsDecision", "RobotsUnreachable", "product_token"]
