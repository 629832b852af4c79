"""connectors/web.py: SSRF guard, redirects, status classification, charsets, politeness.

Hostile transport cases (bombs, trickles, resets) are in test_hostile_connectors.py.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
import zlib

import pytest

from connectors.web import (
    BlockedDestination,
    FetchError,
    HttpClient,
    HttpResponse,
    is_html,
    is_public_address,
    parse_retry_after,
    redact,
    resolve_target,
)
from pipelines.config import FetchConfig
from tests.localserver import LocalServer, Request, Route, gzipped, redirect


def cfg(**kw: object) -> FetchConfig:
    # robots.txt is tested in tests/test_robots.py; here it would add a request to every count
    base = dict(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0, connect_timeout=2.0, robots=False)
    base.update(kw)
    return FetchConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def server2():
    """A second destination on another loopback address (Linux routes all of 127/8)."""
    try:
        srv = LocalServer("127.0.0.2")
    except OSError as exc:  # pragma: no cover - non-Linux loopback
        pytest.skip(f"cannot bind 127.0.0.2: {exc}")
    with srv:
        yield srv


def fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host: str, port: int, *args: object, **kwargs: object):
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        fam = lambda ip: socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [(fam(ip), socket.SOCK_STREAM, 6, "", (ip, port)) for ip in table[host]]

    return resolve


# --------------------------------------------------------------------------- address classification

BLOCKED = [
    "127.0.0.1",
    "127.5.6.7",
    "::1",
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "fc00::1",
    "fd12:3456::1",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "100.64.0.1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::",
    "64:ff9b::a9fe:a9fe",
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "172.32.0.1", "2001:4860:4860::8888", "64:ff9b::808:808"]


@pytest.mark.parametrize("ip", BLOCKED)
def test_non_public_addresses_are_blocked(ip: str) -> None:
    assert is_public_address(ipaddress.ip_address(ip)) is False


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip: str) -> None:
    assert is_public_address(ipaddress.ip_address(ip)) is True


def test_any_private_address_among_several_blocks_the_host() -> None:
    resolver = fake_resolver({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(BlockedDestination, match="10.0.0.7"):
        resolve_target("http://mixed.example/a", allow_hosts=(), resolver=resolver)
    ok = resolve_target(
        "http://pub.example/a?b=1", allow_hosts=(), resolver=fake_resolver({"pub.example": ["8.8.8.8"]})
    )
    assert (ok.ip, ok.port, ok.path, ok.host_header) == ("8.8.8.8", 80, "/a?b=1", "pub.example")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "javascript:alert(1)",
        "//no-scheme/x",
        "http:///nohost",
        "http://example.com:99999/",
    ],
)
def test_non_http_schemes_and_malformed_urls_refused(url: str) -> None:
    with pytest.raises(BlockedDestination) as info:
        resolve_target(url, allow_hosts=(), resolver=fake_resolver({"example.com": ["8.8.8.8"]}))
    assert info.value.kind == "blocked" and info.value.transient is False


# --------------------------------------------------------------------------- guard against real servers


def test_allow_listed_loopback_is_fetched(server: LocalServer) -> None:
    server.route("/a", Route(body=b"halo dunia", headers={"Content-Type": "text/plain; charset=utf-8"}))
    resp = HttpClient(cfg()).get(server.url("/a"))
    assert (resp.status, resp.body, resp.text()) == (200, b"halo dunia", "halo dunia")
    assert resp.url == server.url("/a") and resp.headers["content-type"].startswith("text/plain")
    req = server.requests[0]
    assert req.headers["user-agent"] == FetchConfig().user_agent
    assert req.headers["accept-encoding"] == "gzip, deflate"


def test_loopback_not_allow_listed_is_refused_without_connecting(server: LocalServer) -> None:
    server.route("/a", Route(body=b"secret"))
    client = HttpClient(cfg(allow_hosts=()))
    with pytest.raises(BlockedDestination) as info:
        client.get(server.url("/a"))
    assert "127.0.0.1" in str(info.value) and info.value.transient is False
    with pytest.raises(BlockedDestination):  # IPv4-mapped IPv6 spelling of the same address
        client.get(f"http://[::ffff:127.0.0.1]:{server.port}/a")
    assert server.connections == 0 and server.requests == []


def test_allow_listed_host_name_connects_to_the_pinned_ip_with_original_host(server: LocalServer) -> None:
    server.route("/feed", Route(body=b"ok"))
    calls: list[str] = []
    client = HttpClient(
        cfg(allow_hosts=("news.example",)), resolver=fake_resolver({"news.example": ["127.0.0.1"]}, calls)
    )
    resp = client.get(f"http://news.example:{server.port}/feed")
    assert resp.body == b"ok"
    assert calls == ["news.example"]  # resolved exactly once: the connection used that answer
    assert server.requests[0].headers["host"] == f"news.example:{server.port}"


def test_host_name_resolving_to_loopback_is_refused(server: LocalServer) -> None:
    client = HttpClient(cfg(allow_hosts=()), resolver=fake_resolver({"evil.example": ["127.0.0.1"]}))
    with pytest.raises(BlockedDestination, match="non-public address 127.0.0.1"):
        client.get(f"http://evil.example:{server.port}/")
    assert server.connections == 0


def test_unresolvable_host_is_a_transient_connection_error() -> None:
    client = HttpClient(cfg(), resolver=fake_resolver({}))
    with pytest.raises(FetchError) as info:
        client.get("http://nowhere.example/")
    assert (info.value.kind, info.value.transient) == ("connection_error", True)


def test_redirect_to_other_unlisted_loopback_is_refused_and_never_contacted(
    server: LocalServer, server2: LocalServer
) -> None:
    server2.route("/internal", Route(body=b"internal"))
    server.route("/go", redirect(server2.url("/internal")))
    with pytest.raises(BlockedDestination, match="127.0.0.2"):
        HttpClient(cfg()).get(server.url("/go"))
    assert server.connections == 1
    assert server2.connections == 0


def test_redirect_to_metadata_address_is_refused(server: LocalServer) -> None:
    server.route("/go", redirect("http://169.254.169.254/latest/meta-data/", status=301))
    with pytest.raises(BlockedDestination, match="169.254.169.254"):
        HttpClient(cfg()).get(server.url("/go"))


def test_redirect_to_non_http_scheme_is_refused(server: LocalServer) -> None:
    server.route("/go", redirect("file:///etc/passwd"))
    with pytest.raises(BlockedDestination, match="scheme"):
        HttpClient(cfg()).get(server.url("/go"))


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_within_limit_is_followed(server: LocalServer) -> None:
    server.route("/r1", redirect("/r2", 301))
    server.route("/r2", redirect(server.url("/r3"), 307))
    server.route("/r3", redirect("final?x=1", 308))
    server.route("/final", Route(body=b"done"))
    resp = HttpClient(cfg(max_redirects=3)).get(server.url("/r1"))
    assert resp.body == b"done" and resp.url == server.url("/final?x=1")
    assert [r.path for r in server.requests] == ["/r1", "/r2", "/r3", "/final?x=1"]


def test_too_many_redirects_is_a_permanent_error(server: LocalServer) -> None:
    for i in range(5):
        server.route(f"/r{i}", redirect(f"/r{i + 1}"))
    with pytest.raises(FetchError, match="more than 2 redirects") as info:
        HttpClient(cfg(max_redirects=2)).get(server.url("/r0"))
    assert (info.value.kind, info.value.transient) == ("http_error", False)
    assert len(server.requests) == 3


def test_redirect_loop_is_detected(server: LocalServer) -> None:
    server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a"))
    with pytest.raises(FetchError, match="redirect loop") as info:
        HttpClient(cfg(max_redirects=10)).get(server.url("/a"))
    assert info.value.transient is False
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- kept-alive connections


def test_requests_to_one_host_share_a_connection(server: LocalServer) -> None:
    server.route("/a", Route(body=b"a" * 3000))
    server.route("/b", gzipped(b"b" * 3000))
    with HttpClient(cfg()) as client:
        bodies = [client.get(server.url(path)).body for path in ("/a", "/b", "/a")]
    assert bodies == [b"a" * 3000, b"b" * 3000, b"a" * 3000]
    assert server.connections == 1 and len(server.requests) == 3


@pytest.mark.parametrize(
    ("first", "error"),
    [
        (Route(status=404, body=b"x" * 5000), "http_error"),  # an error page's body is never read
        (Route(body=b"y" * 5000), "too_large"),  # cut off at the cap, the rest still on the wire
        (redirect("/b"), None),  # the redirect's body is never read; /b then comes on a new connection
    ],
)
def test_a_connection_left_with_unread_body_is_not_reused(server: LocalServer, first: Route, error: str | None) -> None:
    server.route("/first", first)
    server.route("/b", Route(body=b"fresh"))
    client = HttpClient(cfg(max_bytes=1000))
    if error is None:
        assert client.get(server.url("/first")).body == b"fresh"
    else:
        with pytest.raises(FetchError) as info:
            client.get(server.url("/first"))
        assert info.value.kind == error
    assert client.get(server.url("/b")).body == b"fresh"  # not the rest of the first body
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_replaced(server: LocalServer) -> None:
    server.route("/a", Route(body=b"a", hang_up=True))
    server.route("/b", Route(body=b"b"))
    client = HttpClient(cfg())
    assert client.get(server.url("/a")).body == b"a"
    time.sleep(0.05)  # the server's close reaches us
    assert client.get(server.url("/b")).body == b"b"
    assert server.connections == 2


def test_a_request_lost_on_a_kept_alive_connection_is_sent_once_more(server: LocalServer) -> None:
    answers = iter([Route(reset=True), Route(body=b"b")])  # the server drops the reused connection once
    server.route("/a", Route(body=b"a"))
    server.route("/b", lambda req: next(answers))
    client = HttpClient(cfg())
    assert client.get(server.url("/a")).body == b"a"
    assert client.get(server.url("/b")).body == b"b"
    assert [r.path for r in server.requests] == ["/a", "/b", "/b"] and server.connections == 2


def test_a_failure_on_a_new_connection_is_not_repeated(server: LocalServer) -> None:
    server.route("/a", Route(reset=True))
    with pytest.raises(FetchError) as info:
        HttpClient(cfg()).get(server.url("/a"))
    assert info.value.kind == "connection_error" and len(server.requests) == 1


def test_a_host_that_resolves_elsewhere_gets_a_new_connection_to_the_new_address(
    server: LocalServer, server2: LocalServer
) -> None:
    for srv in (server, server2):
        srv.route("/a", Route(body=srv.host.encode()))
    table = {"news.example": ["127.0.0.1"]}
    client = HttpClient(cfg(allow_hosts=("news.example",)), resolver=fake_resolver(table))
    assert client.get(f"http://news.example:{server.port}/a").body == b"127.0.0.1"
    table["news.example"] = ["127.0.0.2"]
    assert client.get(f"http://news.example:{server2.port}/a").body == b"127.0.0.2"
    assert (server.connections, server2.connections) == (1, 1)


def test_idle_connections_are_kept_for_a_bounded_number_of_destinations(
    server: LocalServer, server2: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.web

    monkeypatch.setattr(connectors.web, "MAX_DESTINATIONS", 1)
    for srv in (server, server2):
        srv.route("/a", Route(body=b"a"))
    client = HttpClient(cfg(allow_hosts=("127.0.0.1", "127.0.0.2")))
    for srv in (server, server2, server):
        client.get(srv.url("/a"))
    assert (server.connections, server2.connections) == (2, 1)  # the first one's was closed for the second
    client.close()
    client.get(server2.url("/a"))
    assert server2.connections == 2  # close() closed the kept one


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (404, False),
        (410, False),
        (403, False),
        (400, False),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (429, True),
        (408, True),
    ],
)
def test_status_classification(server: LocalServer, status: int, transient: bool) -> None:
    server.route("/s", Route(status=status, body=b"x"))
    with pytest.raises(FetchError) as info:
        HttpClient(cfg()).get(server.url("/s"))
    assert (info.value.kind, info.value.status, info.value.transient) == ("http_error", status, transient)


def test_retry_after_seconds_and_date(server: LocalServer) -> None:
    server.route("/busy", Route(status=503, headers={"Retry-After": "120"}))
    with pytest.raises(FetchError) as info:
        HttpClient(cfg()).get(server.url("/busy"))
    assert info.value.retry_after == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == 60.0
    assert parse_retry_after("not a date") is None
    assert parse_retry_after("99999999") == 86400.0


def test_304_is_a_response_not_an_error(server: LocalServer) -> None:
    server.route(
        "/feed",
        lambda req: Route(status=304) if req.headers.get("if-none-match") == '"v1"' else Route(body=b"x"),
    )
    resp = HttpClient(cfg()).get(server.url("/feed"), headers={"If-None-Match": '"v1"'})
    assert (resp.status, resp.body) == (304, b"")


def test_connection_refused_is_transient() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(FetchError) as info:
        HttpClient(cfg()).get(f"http://127.0.0.1:{port}/")
    assert (info.value.kind, info.value.transient) == ("connection_error", True)


def test_gzip_and_both_deflate_flavours_are_decoded(server: LocalServer) -> None:
    text = "Berita terkini dari Jakarta. " * 200
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    server.route("/z", Route(body=zlib.compress(text.encode()), headers={"Content-Encoding": "deflate"}))
    server.route(
        "/raw", Route(body=raw.compress(text.encode()) + raw.flush(), headers={"Content-Encoding": "deflate"})
    )
    server.route("/br", Route(body=b"??", headers={"Content-Encoding": "br"}))
    client = HttpClient(cfg())
    assert client.get(server.url("/z")).text() == text
    assert client.get(server.url("/raw")).text() == text
    with pytest.raises(FetchError, match="unsupported Content-Encoding"):
        client.get(server.url("/br"))


def test_userinfo_never_logged(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    server.route("/gone", Route(status=404))
    caplog.set_level(logging.DEBUG, logger="connectors.web")
    with pytest.raises(FetchError) as info:
        HttpClient(cfg()).get(f"http://admin:s3cret@127.0.0.1:{server.port}/gone")
    assert "s3cret" not in str(info.value)
    assert caplog.records and "s3cret" not in caplog.text
    assert redact("https://u:p@host:8/x?q=1") == "https://host:8/x?q=1"


# --------------------------------------------------------------------------- charsets


def resp(body: bytes, ctype: str | None) -> HttpResponse:
    headers = {"content-type": ctype} if ctype else {}
    return HttpResponse(url="http://x/", status=200, headers=headers, body=body, elapsed=0.0)


def test_windows_1252_declared_in_header() -> None:
    body = "Kafé “kutipan” – 5€".encode("cp1252")
    assert resp(body, "text/html; charset=windows-1252").text() == "Kafé “kutipan” – 5€"
    assert resp(body, "text/html; charset=ISO-8859-1").text() == "Kafé “kutipan” – 5€"  # browsers' reading


def test_utf8_declared_only_in_meta_or_xml_declaration() -> None:
    html_doc = (
        '<html><head><meta charset="utf-8"></head><body>Menlu Rusia ke Pyongyang — “kunjungan”</body></html>'
    )
    assert "“kunjungan”" in resp(html_doc.encode("utf-8"), "text/html").text()
    xml_doc = '<?xml version="1.0" encoding="windows-1252"?><rss><title>Café</title></rss>'
    assert "Café" in resp(xml_doc.encode("cp1252"), None).text()
    http_equiv = '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>é</p>'
    assert "<p>é</p>" in resp(http_equiv.encode("latin-1"), None).text()


def test_bom_wins_and_bogus_labels_fall_back() -> None:
    assert resp("halo".encode("utf-16"), "text/plain; charset=utf-8").text() == "halo"
    assert resp("halo é".encode(), "text/plain; charset=x-no-such-charset").text() == "halo é"


def test_double_encoded_and_undecodable_text_does_not_crash() -> None:
    mojibake = "L’Oréal “baru”".encode().decode("cp1252", errors="replace").encode("utf-8")
    out = resp(mojibake, "text/html; charset=utf-8").text()
    assert isinstance(out, str) and "Oreal" in out.replace("Ã©", "e")
    junk = bytes(range(256)) * 4
    for ctype in (
        None,
        "text/html; charset=utf-8",
        "text/html; charset=shift_jis",
        "text/html; charset=utf-16",
    ):
        assert isinstance(resp(junk, ctype).text(), str)
    assert resp(b"", None).text() == ""


def test_detection_without_any_declaration() -> None:
    body = ("Presiden bertemu dengan para menteri di Istana Merdeka pada hari Senin. " * 20 + "Kafé").encode(
        "cp1252"
    )
    assert resp(body, "text/html").text().endswith("Kafé")


def test_is_html() -> None:
    assert is_html(resp(b"<html></html>", "text/html; charset=utf-8"))
    assert is_html(resp(b"<html></html>", "application/xhtml+xml"))
    assert is_html(resp(b"<html></html>", ""))  # nothing declared: extraction decides
    assert not is_html(resp(b"%PDF-1.4", "application/pdf"))
    assert not is_html(resp(b"{}", "application/json"))


# --------------------------------------------------------------------------- politeness


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_min_spacing_between_request_starts_per_host(server: LocalServer) -> None:
    server.route("/a", Route(body=b"a"))
    clock = FakeClock()
    client = HttpClient(
        cfg(per_host_min_spacing=5.0, allow_hosts=("127.0.0.1", "other.example")),
        resolver=fake_resolver({"other.example": ["127.0.0.1"]}),
        clock=clock,
        sleep=clock.sleep,
    )
    for _ in range(3):
        client.get(server.url("/a"))
    assert clock.sleeps == [5.0, 5.0]
    client.get(f"http://other.example:{server.port}/a")  # another host: no wait
    assert clock.sleeps == [5.0, 5.0]
    clock.now += 60  # long idle: no wait either
    client.get(server.url("/a"))
    assert clock.sleeps == [5.0, 5.0]
    assert len(server.requests) == 5


def test_per_host_concurrency_cap(server: LocalServer) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(req: Request) -> Route:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return Route(body=b"ok")

    server.route("/slow", slow)
    client = HttpClient(cfg(per_host_concurrency=2))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            client.get(server.url("/slow"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert state["max"] == 2
    assert len(server.requests) == 6
