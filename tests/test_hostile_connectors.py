"""Hostile servers and hostile feeds: every case ends in a clear outcome, never a crash or a hang."""

from __future__ import annotations

import gzip
import time
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from connectors.rss import MAX_FEED_BYTES, FeedParseError, parse_feed, poll_feed
from connectors.web import FetchError, HttpClient, _Decoder
from pipelines.config import FeedConfig, FetchConfig
from tests.localserver import LocalServer, Route, gzip_bomb

pytestmark = pytest.mark.hostile

FETCHED = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
NOW = 1_705_312_800.0
FEED = FeedConfig(url="https://kabar.example/rss", id="kabar", name="Kabar")

GOOD = (
    b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Kabar</title><ttl>10</ttl>'
    b"<item><title>Satu</title><link>https://kabar.example/1</link><guid>https://kabar.example/1</guid>"
    b"<pubDate>Mon, 15 Jan 2024 09:00:00 +0700</pubDate><description>Isi &amp; ringkasan.</description></item>"
    b"<item><title>Dua</title><link>https://kabar.example/2</link>"
    b"<pubDate>Senin, 15 Januari 2024 10:00 WIB</pubDate></item></channel></rss>"
)


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


def client(**kw: object) -> HttpClient:
    base: dict[str, object] = dict(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=3.0)
    base.update(kw)
    return HttpClient(FetchConfig(**base))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile servers (web)


def test_gzip_bomb_stops_at_the_cap(server: LocalServer) -> None:
    server.route("/bomb", gzip_bomb(512 * 1024 * 1024))  # 512 MB of zeros in ~500 KB
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        client(max_bytes=1_000_000).get(server.url("/bomb"))
    assert (info.value.kind, info.value.transient) == ("too_large", False)
    assert time.monotonic() - started < 2.0  # it did not inflate half a gigabyte first


def test_decoder_never_inflates_beyond_what_is_asked() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    decoder = _Decoder("gzip", "http://x/")
    out = decoder.feed(bomb[:16384], 1000)
    assert len(out) <= 1000
    assert zlib.decompress(zlib.compress(b"ok")) == b"ok"
    with pytest.raises(FetchError, match="corrupt gzip"):
        _Decoder("gzip", "http://x/").feed(b"\x1f\x8b\x08\x00garbage-garbage-garbage", 1000)


def test_gzip_body_within_cap_is_decoded(server: LocalServer) -> None:
    server.route("/small", Route(body=gzip.compress(b"a" * 500_000), headers={"Content-Encoding": "gzip"}))
    assert len(client(max_bytes=500_000).get(server.url("/small")).body) == 500_000


def test_content_length_above_cap_fails_before_reading(server: LocalServer) -> None:
    # declares a huge body, then trickles: reading any of it would run into the 3 s deadline
    server.route("/huge", Route(headers={"Content-Length": "999999999"}, trickle=(1, 0.5)))
    started = time.monotonic()
    with pytest.raises(FetchError, match="Content-Length 999999999") as info:
        client(max_bytes=1000).get(server.url("/huge"))
    assert info.value.kind == "too_large"
    assert time.monotonic() - started < 1.5


def test_undeclared_body_above_cap(server: LocalServer) -> None:
    server.route("/big", Route(body=b"x" * 300_000, content_length=False))
    with pytest.raises(FetchError) as info:
        client(max_bytes=100_000).get(server.url("/big"))
    assert info.value.kind == "too_large"
    server.route("/fits", Route(body=b"x" * 100_000, content_length=False))
    assert len(client(max_bytes=100_000).get(server.url("/fits")).body) == 100_000


def test_trickling_server_hits_the_whole_request_deadline(server: LocalServer) -> None:
    server.route("/trickle", Route(trickle=(20, 0.1), headers={"Content-Type": "text/html"}))
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        client(timeout=1.0).get(server.url("/trickle"))
    elapsed = time.monotonic() - started
    assert (info.value.kind, info.value.transient) == ("timeout", True)
    assert 0.9 <= elapsed < 2.0


def test_server_silent_before_headers_times_out(server: LocalServer) -> None:
    server.route("/slow", Route(body=b"late", delay=2.0))
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        client(timeout=0.7).get(server.url("/slow"))
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 1.6


def test_connection_reset_is_transient(server: LocalServer) -> None:
    server.route("/reset", Route(reset=True))
    with pytest.raises(FetchError) as info:
        client().get(server.url("/reset"))
    assert (info.value.kind, info.value.transient) == ("connection_error", True)


# --------------------------------------------------------------------------- hostile feeds (rss)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10) for i in range(10)
    )
    + b']><rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
    b"<link>https://kabar.example/1</link></item></channel></rss>"
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "'
    + b"A" * 50_000
    + b'">]><rss version="2.0"><channel>'
    b"<item><title>"
    + b"&big;" * 20_000
    + b"</title><link>https://kabar.example/1</link></item></channel></rss>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel>'
    b"<item><title>&xxe;</title><link>https://kabar.example/1</link></item></channel></rss>"
)


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, QUADRATIC, EXTERNAL, BILLION_LAUGHS.decode().encode("utf-16")],
    ids=["billion-laughs", "quadratic", "external-entity", "billion-laughs-utf16"],
)
def test_entity_declarations_are_refused(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)
    assert time.monotonic() - started < 1.0


def test_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(FeedParseError, match="parse cap"):
        parse_feed(b" " * (MAX_FEED_BYTES + 1), feed=FEED, fetched_at=FETCHED)


RECOVERABLE = {
    "bare-ampersand": GOOD.replace(b"Isi &amp; ringkasan", b"Isi & ringkasan"),
    "undeclared-entity": GOOD.replace(b"Isi &amp; ringkasan", b"Isi &nbsp; &hellip; &bogus; ringkasan"),
    "truncated": GOOD[: GOOD.index(b"<item><title>Dua")] + b"<item><title>Du",
}


@pytest.mark.parametrize("name", sorted(RECOVERABLE))
def test_malformed_but_recoverable_feeds(server: LocalServer, name: str) -> None:
    entries, _ = parse_feed(RECOVERABLE[name], feed=FEED, fetched_at=FETCHED)
    assert entries[0].link == "https://kabar.example/1" and entries[0].title == "Satu"
    server.route("/rss", Route(body=RECOVERABLE[name], headers={"Content-Type": "application/rss+xml"}))
    result = poll_feed(client(), FeedConfig(url=server.url("/rss"), id="kabar", name="Kabar"), None, now=NOW)
    assert result.outcome == "ok" and result.entries[0].entry_id == "https://kabar.example/1"
    assert result.warning is not None and "malformed" in result.warning


UNUSABLE = {
    "html-page": (
        b"<!DOCTYPE html><html><head><title>Beranda</title></head><body><a href='/a'>a</a></body></html>",
        "HTML page served instead of a feed",
    ),
    "empty-body": (b"", "empty body"),
    "whitespace": (b"  \n\t ", "empty body"),
    "binary": (bytes(range(256)) * 40, "not an RSS/Atom feed"),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an RSS/Atom feed"),
    "json": (b'{"items": [{"url": "https://kabar.example/1"}]}', "not an RSS/Atom feed"),
    "entity-bomb": (BILLION_LAUGHS, "declares XML entities"),
    "links-all-unsafe": (
        GOOD.replace(b"https://kabar.example/", b"javascript:alert/"),
        "none of the 2 entries has an http",
    ),
}


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_feeds_are_parse_errors_with_a_reason(
    server: LocalServer, registry: CollectorRegistry, name: str
) -> None:
    body, reason = UNUSABLE[name]
    with pytest.raises(FeedParseError, match=reason):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)
    server.route("/rss", Route(body=body, headers={"Content-Type": "text/html"}))
    result = poll_feed(client(), FeedConfig(url=server.url("/rss"), id="kabar", name="Kabar"), None, now=NOW)
    assert (result.outcome, result.entries) == ("parse_error", ())
    assert reason in (result.error or "")
    assert result.state.consecutive_errors == 1 and result.state.content_hash is None
    assert (
        registry.get_sample_value("newsmon_feed_polls_total", {"feed": "kabar", "outcome": "parse_error"})
        == 1.0
    )


def test_empty_but_valid_feed_is_ok_with_zero_items(server: LocalServer) -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Sepi</title></channel></rss>'
    assert parse_feed(body, feed=FEED, fetched_at=FETCHED) == ([], None)
    server.route("/rss", Route(body=body))
    result = poll_feed(client(), FeedConfig(url=server.url("/rss"), id="kabar", name="Kabar"), None, now=NOW)
    assert (result.outcome, result.items, result.entries) == ("ok", 0, ())


@pytest.mark.parametrize(
    ("route", "outcome"),
    [
        (Route(body=GOOD, delay=2.0), "timeout"),
        (Route(trickle=(10, 0.1)), "timeout"),
        (Route(reset=True), "connection_error"),
        (gzip_bomb(64 * 1024 * 1024), "too_large"),
        (Route(status=404), "http_error"),
        (Route(status=429, headers={"Retry-After": "600"}), "http_error"),
    ],
    ids=["slow", "trickle", "reset", "gzip-bomb", "404", "429"],
)
def test_hostile_feed_servers_give_clear_outcomes(server: LocalServer, route: Route, outcome: str) -> None:
    server.route("/rss", route)
    started = time.monotonic()
    result = poll_feed(
        client(timeout=0.8, max_bytes=1_000_000),
        FeedConfig(url=server.url("/rss"), id="kabar", name="Kabar"),
        None,
        now=NOW,
    )
    assert result.outcome == outcome and result.error
    assert result.state.next_poll_at > NOW and time.monotonic() - started < 2.5
    if route.status == 429:
        assert result.state.interval == 600.0


# --------------------------------------------------------------------------- fuzzing


def _check_parse(body: bytes) -> None:
    try:
        entries, ttl = parse_feed(body, feed=FEED, fetched_at=FETCHED)
    except FeedParseError as exc:
        assert str(exc)
        return
    assert ttl is None or ttl > 0
    for e in entries:
        assert e.link.startswith(("http://", "https://")) and e.entry_id
        assert e.published is None or e.published.utcoffset().total_seconds() == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(body: bytes) -> None:
    _check_parse(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, 40), st.binary(max_size=12)), max_size=6))
def test_fuzz_mutated_feeds(edits: list[tuple[int, int, bytes]]) -> None:
    body = GOOD
    for pos, cut, insert in edits:
        pos = min(pos, len(body))
        body = body[:pos] + insert + body[pos + cut :]
    _check_parse(body)


FRAGMENTS = [
    b"<item>",
    b"</item>",
    b"<title>",
    b"</title>",
    b"<link>",
    b"</link>",
    b"https://kabar.example/x",
    b"<guid>",
    b"</guid>",
    b"&amp;",
    b"&",
    b"<![CDATA[",
    b"]]>",
    b"<pubDate>",
    b"Senin, 31 Februari 2024",
    b"</pubDate>",
    b"<!DOCTYPE rss>",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"\xff\xfe",
    b"\x00",
    b"<entry>",
    b"<link href='//x'/>",
    b"</channel>",
    b"<ttl>-5</ttl>",
    b"<ttl>99999999999999</ttl>",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=20).map(str.encode), max_size=40))
def test_fuzz_feed_shaped_garbage(parts: list[bytes]) -> None:
    _check_parse(b'<rss version="2.0"><channel>' + b"".join(parts))
