"""The one HTTP seam of newsmon: feeds and article pages are fetched only through here.

Everything a feed item points at is untrusted, so :class:`HttpClient` is defensive by default:

* **SSRF guard.** The host is resolved once; if *any* address is loopback, link-local (incl. the
  cloud metadata address 169.254.169.254), private, unique-local, unspecified, multicast or reserved
  (also when wrapped as IPv4-mapped/6to4-style IPv6), the request is refused with
  :class:`BlockedDestination` before a socket is opened -- unless the host name or IP literal is in
  ``FetchConfig.allow_hosts``. The connection then goes to the *validated* IP (pinned: no second DNS
  lookup, so no DNS rebinding), with the original ``Host`` header and, for https, SNI and certificate
  checks against the original host name.
* **Redirects** are followed by hand, each hop re-validated by the guard; at most ``max_redirects``
  hops, loops detected.
* **Connections are kept alive** per validated destination (scheme, IP, port and host name, so a
  host that resolves elsewhere gets a new connection, re-checked by the guard), at most
  ``per_host_concurrency`` idle ones each, for the :data:`MAX_DESTINATIONS` destinations used
  last: a feed's pages cost one TCP (and TLS) handshake instead of one each, for the outlet as
  much as for us. A connection goes back for reuse only after a complete 2xx body; any other
  answer, a failure or a cut-off body closes it. A request to a destination used before that
  fails before any answer (the server may have closed the kept-alive connection just as it was
  reused) is sent once more, within the same deadline.
* **Caps.** ``Content-Length`` above ``max_bytes`` fails before reading; the *decoded* body is capped
  while it is inflated (a gzip bomb stops at the cap); one deadline (``timeout``) covers the whole
  request including redirects, enforced on every socket read (a server trickling bytes fails at the
  deadline); ``connect_timeout`` bounds each connect. The deadline counts the time spent talking to
  servers only: time queued for a host's politeness slot (and for its robots.txt, which has its
  own deadline) is added back, so a page late in a batch for a busy host is not timed out before
  it was ever requested. ``HttpResponse.elapsed`` and
  ``FetchError.elapsed`` are request time, likewise without the politeness wait.
* **Politeness.** At most ``per_host_concurrency`` requests in flight per host and at least
  ``per_host_min_spacing`` seconds between request starts to one host (thread-safe; ``clock`` and
  ``sleep`` are injectable so tests do not sleep). Deadlines use the real monotonic clock because
  they bound real socket reads.
* **robots.txt** (``get(..., robots=True)``, the default; feed polls pass ``robots=False``): every
  hop is checked against its origin's robots.txt (:mod:`connectors.robots`, cached) before it is
  queued; a disallowed URL fails with ``robots_disallowed`` (permanent), an unreachable robots.txt
  with ``robots_unavailable`` (transient). A ``Crawl-delay`` raises that host's spacing.

Errors (every failure is logged with its reason; userinfo is stripped from logged URLs)::

    Exception
     └── FetchError                kind in connectors.metrics.FETCH_OUTCOMES, transient, status, retry_after
          └── BlockedDestination   kind="blocked", never transient

``kind`` is the metrics label; ``transient`` tells callers whether to retry later (timeouts, resets,
5xx, 408/425/429) or give up (4xx, blocked, too large, unsupported scheme, redirect loops).
"""

from __future__ import annotations

import codecs
import email.utils
import ipaddress
import logging
import re
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import (
    HTTPError as Urllib3HTTPError,
)

from connectors.robots import RobotsCache, RobotsUnreachable
from connectors.settings import FetchConfig

log = logging.getLogger(__name__)

Resolver = Callable[..., list[tuple[Any, ...]]]

_CHUNK = 16 * 1024
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_DESTINATIONS = 32  # destinations with idle connections kept open (least recently used closed first)
_MAX_RETRY_AFTER = 86400.0
_ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also accepts "²", which int() refuses


class FetchError(Exception):
    """A fetch failed. ``kind`` is a FETCH_OUTCOMES label; ``transient`` means "retry later"."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        transient: bool,
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.elapsed: float | None = None  # request time without politeness waits (set by HttpClient.get)


class BlockedDestination(FetchError):
    """The URL points at a refused destination (private address, bad scheme...). Never transient."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, kind="blocked", transient=False, url=url)


# --------------------------------------------------------------------------- response + charset


@dataclass(frozen=True, slots=True)
class HttpResponse:
    url: str  # final URL after redirects
    status: int  # 2xx, or 304 for a conditional GET (not an error)
    headers: Mapping[str, str]  # lower-cased names
    body: bytes  # decoded from gzip/deflate, capped at max_bytes
    elapsed: float

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text: HTTP charset, then BOM / <meta charset> / XML declaration, then detection.

        Never raises: undecodable bytes become U+FFFD.
        """
        return decode_body(self.body, self.headers.get("content-type"))


_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_DECL_RE = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it shares its first two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# What browsers do (WHATWG Encoding): these labels mean windows-1252 in practice.
_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252"}


def _codec(label: str | bytes | None) -> str | None:
    if not label:
        return None
    name = label.decode("ascii", "ignore") if isinstance(label, bytes) else label
    name = name.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.IGNORECASE)
    return _codec(m.group(1)) if m else None


def sniff_charset(body: bytes) -> str | None:
    """Charset from a BOM, an XML declaration or an HTML <meta> in the first 4 KB."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    head = body[:4096]
    m = _XML_DECL_RE.match(head)
    if m:
        return _codec(m.group(1))
    m = _CHARSET_RE.search(head)
    return _codec(m.group(1)) if m else None


def decode_body(body: bytes, content_type: str | None = None) -> str:
    """Decode ``body``; never raises. See :meth:`HttpResponse.text`."""
    if not body:
        return ""
    for bom, name in _BOMS:  # a BOM is authoritative, even over the header
        if body.startswith(bom):
            return body.decode(name, errors="replace")
    charset = header_charset(content_type) or sniff_charset(body)
    if charset is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            charset = _detect(body)
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # pragma: no cover - codec quirks
        return body.decode("utf-8", errors="replace")


def _detect(body: bytes) -> str:
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:65536]).best()
        if best is not None and best.encoding:
            return _codec(best.encoding) or "cp1252"
    except Exception:
        log.debug("charset detection failed", exc_info=True)
    return "cp1252"


def is_html(response: HttpResponse) -> bool:
    """Whether a page response may hold an article: an HTML or XML type, or none declared
    (extraction then decides). A PDF, image or JSON answer is counted ``not_html`` by the caller."""
    ctype = response.content_type
    return not ctype or "html" in ctype or "xml" in ctype


# --------------------------------------------------------------------------- guard


def redact(url: str) -> str:
    """``url`` without userinfo (``user:secret@``), for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, link-local, private, unspecified, multicast, reserved (and wrapped forms)."""
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None and not is_public_address(inner):
                return False
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 of an IPv4 address
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global
    )


@dataclass(frozen=True, slots=True)
class Target:
    """A validated destination: connect to ``ip`` but talk to ``host``."""

    scheme: str
    host: str
    port: int
    ip: str
    path: str  # path + query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def resolve_target(url: str, *, allow_hosts: tuple[str, ...], resolver: Resolver) -> Target:
    """Validate ``url`` and pick the IP to connect to; raise BlockedDestination when refused."""
    safe = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedDestination(f"malformed URL {safe}: {exc}", url=url) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedDestination(f"scheme {scheme or 'missing'!r} refused (only http/https): {safe}", url=url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedDestination(f"no host in URL {safe}", url=url)
    port = port or (443 if scheme == "https" else 80)
    allowed = {h.lower().strip("[]") for h in allow_hosts}
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host!r}: {exc}", kind="connection_error", transient=True, url=url) from exc
        addresses = []
        for info in infos:
            try:
                addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except (ValueError, IndexError, TypeError):
                continue
        if not addresses:
            raise FetchError(f"{host!r} resolved to no address", kind="connection_error", transient=True, url=url)
    if host not in allowed:
        for ip in addresses:
            if str(ip) not in allowed and not is_public_address(ip):
                raise BlockedDestination(
                    f"{safe} resolves to non-public address {ip} (not in fetch.allow_hosts)", url=url
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, ip=str(addresses[0]), path=path)


# --------------------------------------------------------------------------- politeness


class HostGate:
    """Per-host concurrency cap and minimum spacing between request starts (thread-safe)."""

    def __init__(
        self, *, concurrency: int, spacing: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._concurrency = max(1, concurrency)
        self._spacing = max(0.0, spacing)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}
        self._host_spacing: dict[str, float] = {}

    def raise_spacing(self, host: str, seconds: float) -> None:
        """Space requests to ``host`` by at least ``seconds`` (e.g. robots.txt Crawl-delay)."""
        with self._lock:
            if seconds > self._host_spacing.get(host, self._spacing):
                self._host_spacing[host] = seconds

    def spacing(self, host: str) -> float:
        with self._lock:
            return self._host_spacing.get(host, self._spacing)

    def acquire(self, host: str) -> None:
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self._concurrency))
        sem.acquire()
        try:
            with self._lock:  # reserve a start time; later callers queue behind it
                now = self._clock()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + self._host_spacing.get(host, self._spacing)
            if start > now:
                self._sleep(start - now)
        except BaseException:
            sem.release()
            raise

    def release(self, host: str) -> None:
        self._slots[host].release()


# --------------------------------------------------------------------------- client


@dataclass(slots=True)
class _Deadline:
    end: float
    timer: Callable[[], float] = field(default=time.monotonic)
    waited: float = 0.0  # politeness waits, added back to the deadline

    def remaining(self) -> float:
        return self.end - self.timer()

    def pause(self, seconds: float) -> None:
        """Time spent queued for a politeness slot does not count against the request."""
        if seconds > 0:
            self.end += seconds
            self.waited += seconds


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), clamped to [0, 1 day]."""
    if not value:
        return None
    value = value.strip()
    if _ASCII_DIGITS.fullmatch(value):
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return min(max(0.0, when.timestamp() - current), _MAX_RETRY_AFTER)


class HttpClient:
    """Fetch URLs safely (see the module docstring). ``get`` raises :class:`FetchError` only."""

    def __init__(
        self,
        config: FetchConfig,
        *,
        resolver: Resolver = socket.getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._resolver = resolver
        self._gate = HostGate(
            concurrency=config.per_host_concurrency, spacing=config.per_host_min_spacing, clock=clock, sleep=sleep
        )
        self._robots = RobotsCache(
            self._fetch_robots, user_agent=config.user_agent, exempt_hosts=config.robots_exempt_hosts
        )
        self._pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._pools_lock = threading.Lock()

    def close(self) -> None:
        """Close the idle connections (one in use is closed when its request ends)."""
        with self._pools_lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, robots: bool = True) -> HttpResponse:
        """GET ``url`` (redirects followed). ``robots=False`` skips robots.txt (feed polls)."""
        started = time.monotonic()
        deadline = _Deadline(started + self.config.timeout)
        check_robots = robots and self.config.robots
        seen: set[str] = set()
        current = url
        try:
            for _hop in range(self.config.max_redirects + 1):
                seen.add(current)
                status, resp_headers, body = self._one_hop(current, headers or {}, deadline, check_robots)
                if status in _REDIRECT_STATUS and resp_headers.get("location"):
                    nxt = urljoin(current, resp_headers["location"].strip())
                    if nxt in seen:
                        raise FetchError(
                            f"redirect loop: {redact(current)} -> {redact(nxt)}", kind="http_error",
                            transient=False, url=url, status=status,
                        )
                    current = nxt
                    continue
                if status == 304 or 200 <= status < 300:
                    return HttpResponse(
                        url=current, status=status, headers=resp_headers, body=body,
                        elapsed=time.monotonic() - started - deadline.waited,
                    )
                raise FetchError(
                    f"HTTP {status} from {redact(current)}",
                    kind="http_error",
                    transient=status in _TRANSIENT_STATUS,
                    url=url,
                    status=status,
                    retry_after=parse_retry_after(resp_headers.get("retry-after")),
                )
            raise FetchError(
                f"more than {self.config.max_redirects} redirects from {redact(url)}",
                kind="http_error", transient=False, url=url,
            )
        except FetchError as exc:
            exc.elapsed = time.monotonic() - started - deadline.waited
            # the caller (feed poll or page fetch) logs the failure with its own context
            log.debug("fetch failed (%s%s): %s", exc.kind, ", transient" if exc.transient else "", exc)
            raise

    # -- one request, no redirect handling
    def _one_hop(
        self, url: str, extra_headers: Mapping[str, str], deadline: _Deadline, check_robots: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        target = resolve_target(url, allow_hosts=self.config.allow_hosts, resolver=self._resolver)
        queued = time.monotonic()  # robots.txt look-up and politeness wait: not part of the request's time
        if check_robots:
            self._check_robots(url, target)
        self._gate.acquire(target.host)
        deadline.pause(time.monotonic() - queued)
        try:
            return self._request(url, target, extra_headers, deadline)
        finally:
            self._gate.release(target.host)

    def _check_robots(self, url: str, target: Target) -> None:
        decision = self._robots.check(url)
        if decision.crawl_delay:
            self._gate.raise_spacing(target.host, decision.crawl_delay)
        if decision.outcome == "disallowed":
            raise FetchError(f"robots.txt of {target.host} disallows {redact(url)}", kind="robots_disallowed",
                             transient=False, url=url)
        if decision.outcome == "unavailable":
            raise FetchError(f"robots.txt of {target.host} unreachable ({decision.detail}); not fetching "
                             f"{redact(url)} for now", kind=decision.kind, transient=True, url=url)

    def _fetch_robots(self, url: str) -> tuple[int, bytes]:
        """The robots.txt fetcher of :class:`RobotsCache`: (status, body); transient failures raise
        RobotsUnreachable, other failures FetchError (the file is then treated as absent)."""
        try:
            response = self.get(url, robots=False)
        except FetchError as exc:
            if exc.kind == "http_error" and exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return exc.status, b""
            if exc.transient:
                kind = exc.kind if exc.kind in ("timeout", "connection_error") else "robots_unavailable"
                raise RobotsUnreachable(str(exc), kind=kind) from exc
            raise
        return response.status, response.body

    def _request(
        self, url: str, target: Target, extra_headers: Mapping[str, str], deadline: _Deadline
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Host": target.host_header,
            "User-Agent": self.config.user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            **{k: v for k, v in extra_headers.items() if k.lower() not in ("host", "accept-encoding")},
        }
        pool = self._pool(target)
        try:
            try:
                resp = self._send(pool, url, target, headers, deadline)
            except ProtocolError:
                # a kept-alive connection the server closed just as it was reused: once more
                if pool.num_requests <= 1:
                    raise
                resp = self._send(pool, url, target, headers, deadline)
            complete = False
            try:
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status in _REDIRECT_STATUS or resp.status == 304 or resp.status >= 400:
                    return resp.status, resp_headers, b""
                body = self._read_body(url, resp, resp_headers, deadline)
                complete = True
                return resp.status, resp_headers, body
            finally:
                if not complete:  # unread or cut-off body: the connection cannot carry another request
                    resp.close()
                resp.release_conn()
        except FetchError:
            raise
        except NewConnectionError as exc:  # before ConnectTimeoutError: urllib3 makes it a subclass
            raise FetchError(f"cannot connect to {redact(url)}: {exc}", kind="connection_error",
                             transient=True, url=url) from exc
        except (ConnectTimeoutError, ReadTimeoutError, TimeoutError) as exc:
            raise FetchError(f"timed out fetching {redact(url)}: {type(exc).__name__}", kind="timeout",
                             transient=True, url=url) from exc
        except SSLError as exc:
            raise FetchError(f"TLS error for {redact(url)}: {exc}", kind="connection_error",
                             transient=False, url=url) from exc
        except (ProtocolError, Urllib3HTTPError, OSError) as exc:
            raise FetchError(f"connection failed for {redact(url)}: {type(exc).__name__}: {exc}",
                             kind="connection_error", transient=True, url=url) from exc

    def _send(self, pool: urllib3.HTTPConnectionPool, url: str, target: Target, headers: Mapping[str, str],
              deadline: _Deadline) -> urllib3.BaseHTTPResponse:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FetchError(f"deadline of {self.config.timeout}s passed before {redact(url)}",
                             kind="timeout", transient=True, url=url)
        timeout = urllib3.Timeout(connect=min(self.config.connect_timeout, remaining), read=remaining)
        return pool.urlopen(
            "GET", target.path, headers=headers, redirect=False, retries=False, timeout=timeout,
            preload_content=False, decode_content=False, assert_same_host=False,
        )

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        """The kept-alive connections to this validated destination (created on first use)."""
        key = (target.scheme, target.ip, target.port, target.host)
        evicted = []
        with self._pools_lock:
            pool = self._pools.pop(key, None)
            if pool is None:
                size = max(1, self.config.per_host_concurrency)
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        target.ip, target.port, retries=False, maxsize=size, block=False,
                        server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(target.ip, target.port, retries=False, maxsize=size, block=False)
            self._pools[key] = pool  # the most recently used last
            while len(self._pools) > MAX_DESTINATIONS:
                evicted.append(self._pools.popitem(last=False)[1])
        for old in evicted:
            old.close()  # idle connections now; one in use is closed when it is handed back
        return pool

    def _read_body(
        self, url: str, resp: urllib3.BaseHTTPResponse, headers: Mapping[str, str], deadline: _Deadline
    ) -> bytes:
        cap = self.config.max_bytes
        length = headers.get("content-length", "").strip()
        if _ASCII_DIGITS.fullmatch(length) and int(length) > cap:
            raise FetchError(f"Content-Length {length} exceeds the {cap}-byte cap: {redact(url)}",
                             kind="too_large", transient=False, url=url)
        decoder = _Decoder(headers.get("content-encoding", ""), url)
        out = bytearray()
        sock = getattr(resp.connection, "sock", None)  # the live socket: re-armed with the deadline per read
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise FetchError(f"deadline of {self.config.timeout}s passed reading {redact(url)}",
                                 kind="timeout", transient=True, url=url)
            if sock is not None:
                sock.settimeout(remaining)
            chunk = resp.read1(_CHUNK, decode_content=False)
            if not chunk:
                out += decoder.flush(cap + 1 - len(out))
                break
            out += decoder.feed(chunk, cap + 1 - len(out))
            if len(out) > cap:
                break
        if len(out) > cap:
            raise FetchError(f"body exceeds the {cap}-byte cap (after decoding): {redact(url)}",
                             kind="too_large", transient=False, url=url)
        return bytes(out)


class _Decoder:
    """Incremental gzip/deflate decoding that never produces more than asked for."""

    def __init__(self, encoding: str, url: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip().lower() != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise FetchError(f"unsupported Content-Encoding {encoding!r}: {redact(url)}",
                             kind="http_error", transient=False, url=url)
        self._url = url
        self._coding = codings[0] if codings else None
        self._obj: Any = None
        self._pending = b""  # compressed input not yet consumed
        if self._coding in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._coding is None:
            return data
        if self._obj is None:  # deflate: zlib-wrapped per RFC, raw in practice; decide on first bytes
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inflate(self._pending + data, limit)

    def flush(self, limit: int) -> bytes:
        if self._coding is None or self._obj is None:
            return b""
        out = self._inflate(self._pending, limit)
        return out

    def _inflate(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._obj.decompress(data, max(1, limit))
        except zlib.error as exc:
            raise FetchError(f"corrupt {self._coding} body: {exc}: {redact(self._url)}",
                             kind="http_error", transient=False, url=self._url) from exc
        self._pending = self._obj.unconsumed_tail
        return out
