"""robots.txt for article fetches (issue 13, item 21), against local servers with their own robots.txt."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors import robots as robots_mod
from connectors.robots import RobotsCache, RobotsUnreachable, product_token
from connectors.statestore import PendingItem
from connectors.web import FetchError, HttpClient
from pipelines.config import FetchConfig, load_config
from pipelines.process import fetch_page
from tests.localserver import LocalServer, Route
from transforms.records import FeedEntry, article_id

ROBOTS = b"""# test site
User-agent: *
Disallow: /private/
Allow: /private/open-letter
"""
# A group naming our product token replaces the '*' group for us (RFC 9309 2.2.1).
ROBOTS_OWN_GROUP = ROBOTS + b"""
User-agent: newsmon
Disallow: /no-newsmon/
"""
PAGE = Route(body=b"<html><body><p>ok</p></body></html>", headers={"Content-Type": "text/html"})


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


def robots_count(reg: CollectorRegistry, outcome: str) -> float:
    return reg.get_sample_value("newsmon_robots_total", {"outcome": outcome}) or 0.0


def client(**kw: object) -> HttpClient:
    base: dict[str, object] = dict(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0,
                                   connect_timeout=2.0)
    base.update(kw)
    return HttpClient(FetchConfig(**base))  # type: ignore[arg-type]


def site(server: LocalServer, robots: Route | None) -> None:
    if robots is not None:
        server.route("/robots.txt", robots)
    for path in ("/berita/1", "/private/x", "/private/open-letter", "/no-newsmon/y"):
        server.route(path, PAGE)


def paths(server: LocalServer) -> list[str]:
    return [r.path for r in server.requests]


def test_disallowed_pages_are_not_requested(registry: CollectorRegistry) -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS, headers={"Content-Type": "text/plain"}))
        http = client()
        assert http.get(server.url("/berita/1")).status == 200
        assert http.get(server.url("/private/open-letter")).status == 200  # Allow beats the shorter Disallow
        with pytest.raises(FetchError) as info:
            http.get(server.url("/private/x"))
        assert info.value.kind == "robots_disallowed" and not info.value.transient
    assert paths(server) == ["/robots.txt", "/berita/1", "/private/open-letter"]  # fetched once, cached
    assert robots_count(registry, "allowed") == 2 and robots_count(registry, "disallowed") == 1


def test_a_group_for_newsmon_is_the_one_that_applies() -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS_OWN_GROUP))
        http = client()
        with pytest.raises(FetchError) as info:
            http.get(server.url("/no-newsmon/y"))
        assert info.value.kind == "robots_disallowed"
        assert http.get(server.url("/private/x")).status == 200  # the '*' group is not ours
    assert paths(server) == ["/robots.txt", "/private/x"]


def test_redirect_into_a_disallowed_path_is_refused() -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS))
        server.route("/go", Route(status=302, headers={"Location": "/private/x"}))
        with pytest.raises(FetchError) as info:
            client().get(server.url("/go"))
    assert info.value.kind == "robots_disallowed"
    assert "/private/x" not in paths(server)


def test_missing_robots_txt_allows_everything(registry: CollectorRegistry) -> None:
    with LocalServer() as server:
        site(server, None)  # LocalServer answers 404 for unknown paths
        http = client()
        for path in ("/private/x", "/no-newsmon/y", "/berita/1"):
            assert http.get(server.url(path)).status == 200
    assert paths(server).count("/robots.txt") == 1
    assert robots_count(registry, "allowed") == 3


def test_server_error_on_robots_txt_blocks_for_now_and_is_asked_again_later(registry: CollectorRegistry) -> None:
    now = [1000.0]
    calls: list[str] = []
    answers = [RobotsUnreachable("HTTP 503", kind="robots_unavailable"), (200, b"User-agent: *\nDisallow:\n")]

    def fetch(url: str) -> tuple[int, bytes]:
        calls.append(url)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = RobotsCache(fetch, user_agent="newsmon/0.1", clock=lambda: now[0])
    assert cache.check("https://kabar.example/a").outcome == "unavailable"
    assert cache.check("https://kabar.example/b").outcome == "unavailable"  # cached: one request for the burst
    assert len(calls) == 1
    now[0] += robots_mod.UNREACHABLE_TTL + 1
    assert cache.check("https://kabar.example/a").allowed
    assert calls == ["https://kabar.example/robots.txt"] * 2
    assert robots_count(registry, "unavailable") == 2 and robots_count(registry, "allowed") == 1


def test_unreachable_robots_is_a_transient_fetch_failure() -> None:
    with LocalServer() as server:
        site(server, Route(status=503))
        with pytest.raises(FetchError) as info:
            client().get(server.url("/berita/1"))
    assert info.value.kind == "robots_unavailable" and info.value.transient
    assert paths(server) == ["/robots.txt"]


def test_cached_rules_are_kept_while_the_site_is_unreachable() -> None:
    now = [0.0]
    answers: list[object] = [(200, b"User-agent: *\nDisallow: /private/\n"), RobotsUnreachable("timeout", kind="timeout")]

    def fetch(url: str) -> tuple[int, bytes]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    cache = RobotsCache(fetch, user_agent="newsmon", clock=lambda: now[0])
    assert cache.check("http://a.example/private/1").outcome == "disallowed"
    now[0] += robots_mod.RULES_TTL + 1
    assert cache.check("http://a.example/private/1").outcome == "disallowed"  # the earlier copy still applies
    assert cache.check("http://a.example/ok").outcome == "allowed"


def test_exempt_hosts_and_switching_off() -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS))
        assert client(robots_exempt_hosts=("127.0.0.1",)).get(server.url("/private/x")).status == 200
        assert client(robots=False).get(server.url("/private/x")).status == 200
    assert "/robots.txt" not in paths(server)


def test_feed_polls_do_not_consult_robots() -> None:
    from connectors.rss import poll_feed
    from pipelines.config import FeedConfig

    feed = b'<rss version="2.0"><channel><title>t</title><item><title>a</title><link>https://x.example/a</link></item></channel></rss>'
    with LocalServer() as server:
        server.route("/robots.txt", Route(body=b"User-agent: *\nDisallow: /\n"))
        server.route("/private/rss.xml", Route(body=feed, headers={"Content-Type": "application/rss+xml"}))
        result = poll_feed(client(), FeedConfig(url=server.url("/private/rss.xml"), id="f", name="F"), None, now=0.0)
    assert result.outcome == "ok" and paths(server) == ["/private/rss.xml"]


def test_crawl_delay_raises_the_spacing_for_that_host() -> None:
    sleeps: list[float] = []
    lock = threading.Lock()
    clock = [100.0]

    def fake_sleep(seconds: float) -> None:
        with lock:
            sleeps.append(round(seconds, 3))
            clock[0] += seconds

    with LocalServer() as server:
        site(server, Route(body=b"User-agent: *\nCrawl-delay: 7\n"))
        http = HttpClient(FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=1.0, timeout=5.0),
                          clock=lambda: clock[0], sleep=fake_sleep)
        for _ in range(3):
            http.get(server.url("/berita/1"))
    # robots.txt itself went first (1 s spacing), then the Crawl-delay of 7 s applies to the pages
    assert sleeps[-2:] == [7.0, 7.0]


def test_crawl_delay_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    cache = RobotsCache(lambda url: (200, b"User-agent: *\nCrawl-delay: 86400\n"), user_agent="newsmon")
    assert cache.check("http://a.example/x").crawl_delay == robots_mod.MAX_CRAWL_DELAY
    assert "Crawl-delay" in caplog.text


def test_product_token() -> None:
    assert product_token("newsmon/0.1 (+mailto:desk@example.org)") == "newsmon"
    assert product_token("") == "*"


def test_disallowed_article_keeps_the_feeds_text_and_is_counted(registry: CollectorRegistry) -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS))
        link = server.url("/private/x")
        entry = FeedEntry(feed_url=server.url("/rss.xml"), feed_id="f", source="F", entry_id=link, link=link,
                          title="Judul", summary="Ringkasan", published=None, published_raw="",
                          fetched_at=datetime(2024, 1, 1, tzinfo=UTC))
        item = PendingItem(id=article_id(link), canonical_url=link, entry=entry, attempts=0)
        tag, (same, url, page_html) = fetch_page(client(), item, max_attempts=5)
    assert tag == "page" and same == item and page_html is None  # extraction falls back to the feed's text
    assert registry.get_sample_value("newsmon_articles_fetched_total", {"outcome": "robots_disallowed"}) == 1
    assert "/private/x" not in paths(server)


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_text("fetch:\n  robots: true\n  robots_exempt_hosts: [arsip.example.org]\n")
    cfg = load_config(path, env={})
    assert cfg.fetch.robots is True and cfg.fetch.robots_exempt_hosts == ("arsip.example.org",)
    assert robots_mod.is_exempt("www.arsip.example.org", cfg.fetch.robots_exempt_hosts)
    assert not robots_mod.is_exempt("arsip.example.org.evil.example", cfg.fetch.robots_exempt_hosts)


def test_one_robots_request_for_a_burst_of_concurrent_fetches() -> None:
    with LocalServer() as server:
        site(server, Route(body=ROBOTS, delay=0.2))
        http = client(per_host_concurrency=4)
        threads = [threading.Thread(target=http.get, args=(server.url("/berita/1"),)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert paths(server).count("/robots.txt") == 1 and paths(server).count("/berita/1") == 6
