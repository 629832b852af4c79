"""connectors/rss.py: parsing (own fixtures + the shared real feeds), polling, scheduling, ReadFromRss."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from prometheus_client import CollectorRegistry

from connectors.rss import (
    SEEN_LIMIT,
    FeedState,
    apply_poll_interval,
    due,
    fix_mojibake,
    next_interval,
    parse_feed,
    poll_feed,
)
from connectors.rssbeam import PollDueFeedsFn, ReadFromRss
from connectors.web import HttpClient
from pipelines.config import FeedConfig, FetchConfig
from tests.localserver import LocalServer, Request, Route

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "feeds"
SHARED_FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "feeds"
FETCHED = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
NOW = 1_705_312_800.0  # 2024-01-15T10:00:00Z


def feed_cfg(url: str = "https://kabar.example/rss", **kw: object) -> FeedConfig:
    base: dict[str, object] = dict(
        url=url, id="kabar", name="Kabar Nusantara", min_interval=60.0, max_interval=1800.0
    )
    base.update(kw)
    return FeedConfig(**base)  # type: ignore[arg-type]


def rss(items: list[tuple[str, str]], *, ttl: int | None = None, title: str = "Kabar") -> bytes:
    """A small RSS 2.0 document; items are (guid, title)."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>']
    if ttl:
        parts.append(f"<ttl>{ttl}</ttl>")
    for guid, t in items:
        parts.append(
            f"<item><title>{t}</title><link>https://kabar.example/{guid}</link><guid>https://kabar.example/{guid}</guid>"
            "<pubDate>Mon, 15 Jan 2024 09:00:00 +0700</pubDate><description>Isi singkat.</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")



@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def client() -> HttpClient:
    return HttpClient(FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0))


# --------------------------------------------------------------------------- parsing: own fixtures


def test_parse_rss_fixture() -> None:
    body = (FIXTURES / "kabar_rss.xml").read_bytes()
    entries, ttl = parse_feed(body, feed=feed_cfg(), fetched_at=FETCHED, content_type="application/rss+xml")
    assert ttl == 15
    assert len(entries) == 3  # the entry with neither link nor URL guid is dropped
    first, portal, relative = entries
    assert first.entry_id == "https://kabar.example/dunia/2024/01/15/menlu-rusia-korut"
    assert first.link == "https://kabar.example/dunia/2024/01/15/menlu-rusia-korut?utm_source=rss"
    assert first.title == "Menlu Rusia & Korut bahas kerja sama militer"
    assert first.summary == "Menteri Luar Negeri Rusia tiba di Pyongyang pada Senin pagi."
    assert first.published == datetime(2024, 1, 15, 7, 30, tzinfo=UTC)
    assert first.published_raw == "Mon, 15 Jan 2024 14:30:00 +0700"
    assert (first.feed_id, first.source, first.feed_url, first.fetched_at) == (
        "kabar",
        "Kabar Nusantara",
        "https://kabar.example/rss",
        FETCHED,
    )
    # redirector link replaced by the real URL from the guid; title whitespace trimmed
    assert portal.link == "https://kabar.example/dunia/2024/01/15/nato-menanggapi"
    assert portal.title == "NATO menanggapi kunjungan itu"
    # an Indonesian date feedparser cannot read goes through transforms.dates
    assert portal.published_raw == "Senin, 15 Januari 2024 16:05 WIB"
    assert portal.published == datetime(2024, 1, 15, 9, 5, tzinfo=UTC)
    # relative link resolved against the feed URL; no guid -> the link is the key
    assert relative.link == "https://kabar.example/ekonomi/2024/01/14/harga-cabai"
    assert relative.entry_id == relative.link


def test_parse_atom_fixture() -> None:
    entries, ttl = parse_feed((FIXTURES / "kabar_atom.xml").read_bytes(), feed=feed_cfg(), fetched_at=FETCHED)
    assert ttl is None
    assert [e.entry_id for e in entries] == ["tag:kabar.example,2024:1001", "tag:kabar.example,2024:1002"]
    assert [e.link for e in entries] == [
        "https://kabar.example/dunia/1001",
        "https://kabar.example/ekonomi/1002",
    ]
    assert entries[0].title == "Kim Jong Un menerima delegasi Rusia"
    assert entries[0].published == datetime(2024, 1, 15, 2, 15, tzinfo=UTC)  # published, not updated
    assert entries[1].published == datetime(2024, 1, 15, 2, 0, tzinfo=UTC)  # falls back to updated


def test_fix_mojibake() -> None:
    assert fix_mojibake("Lâ€™Oreal â€œbaruâ€\x9d") == "L’Oreal “baru”"
    assert fix_mojibake("CafÃ© Ã\xa0la") == "Café àla"
    for clean in ("Café", "Menlu Rusia — “kunjungan”", "Â", "", "naïve façade"):
        assert fix_mojibake(clean) == clean


# --------------------------------------------------------------------------- parsing: the shared real feeds


def shared(name: str) -> bytes:
    path = SHARED_FEEDS / name
    if not path.exists():
        pytest.skip(f"../shared/data/feeds/{name} absent: real feed snapshots are not shipped with the repo")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("name", "count", "first_link", "first_published", "first_raw"),
    [
        (
            "antaranews_terkini_2017-04-17.xml",
            20,
            "http://www.antaranews.com/berita/624490/orang-korea-lebih-senang-streaming-musik",
            datetime(2017, 4, 17, 2, 45, 21, tzinfo=UTC),
            "Mon, 17 Apr 2017 09:45:21 +0700",
        ),
        (
            "detik_news_2014-04-29_feedsportal.xml",
            25,
            "http://news.detik.com/read/2014/04/29/080540/2568253/10/perjalanan-ipod-nurhadi-dari-amerika-hingga-disita-kpk",
            datetime(2014, 4, 29, 1, 10, 40, tzinfo=UTC),
            "Tue, 29 Apr 2014 01:10:40 GMT",
        ),
        (
            "tempo_co_2017-04-06.xml",
            50,
            "https://www.tempo.co/read/news/2017/04/06/058863188/Ada-Drone-Intai-Teluk-Bintuni-Kodam-akan-Bangun-Detasemen-Rudal",
            datetime(2017, 4, 6, 3, 39, 8, tzinfo=UTC),
            "Thu, 06 Apr 2017 10:39:08 +0700",
        ),
    ],
)
def test_shared_real_feeds(
    name: str, count: int, first_link: str, first_published: datetime, first_raw: str
) -> None:
    body = shared(name)
    entries, _ttl = parse_feed(body, feed=feed_cfg("https://outlet.example/rss"), fetched_at=FETCHED)
    assert len(entries) == count
    assert len({e.entry_id for e in entries}) == count
    assert entries[0].link == first_link
    assert (entries[0].published, entries[0].published_raw) == (first_published, first_raw)
    for e in entries:
        assert e.link.startswith("http") and "feedsportal" not in e.link
        assert e.published is not None and e.published.utcoffset().total_seconds() == 0
        assert e.title and e.title == e.title.strip() and "<" not in e.title
        assert "â€" not in e.title and "â€" not in e.summary  # tempo's double-encoded UTF-8 is repaired


def test_shared_detik_ttl_and_tempo_mojibake() -> None:
    _entries, ttl = parse_feed(
        shared("detik_news_2014-04-29_feedsportal.xml"), feed=feed_cfg(), fetched_at=FETCHED
    )
    assert ttl == 30
    tempo, _ = parse_feed(shared("tempo_co_2017-04-06.xml"), feed=feed_cfg(), fetched_at=FETCHED)
    assert any("L’Oreal" in e.title for e in tempo)


# --------------------------------------------------------------------------- state


def test_feed_state_round_trips_through_json() -> None:
    state = FeedState(
        feed_id="kabar",
        url="https://kabar.example/rss",
        etag='"abc"',
        last_modified="x",
        content_hash="h",
        interval=90.0,
        next_poll_at=NOW,
        last_success_at=NOW,
        seen=("a", "b"),
        consecutive_errors=2,
        polls=7,
    )
    again = FeedState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert FeedState.from_dict({"feed_id": "x", "url": "u", "future_field": 1}) == FeedState(
        feed_id="x", url="u"
    )


# --------------------------------------------------------------------------- polling


def test_poll_new_items_only_once_and_content_hash(server: LocalServer, registry: CollectorRegistry) -> None:
    doc = {"body": rss([("a", "Satu"), ("b", "Dua")], ttl=None)}
    server.route("/rss", lambda req: Route(body=doc["body"], headers={"Content-Type": "application/rss+xml"}))
    feed = feed_cfg(server.url("/rss"))
    c = client()

    first = poll_feed(c, feed, None, now=NOW)
    assert (first.outcome, first.items, first.error) == ("ok", 2, None)
    assert [e.entry_id for e in first.entries] == ["https://kabar.example/a", "https://kabar.example/b"]
    assert first.state.last_success_at == NOW and first.state.next_poll_at == NOW + first.state.interval

    same = poll_feed(c, feed, first.state, now=NOW + 60)
    assert (same.outcome, same.entries, same.conditional_get) == ("unchanged", (), None)

    doc["body"] = rss([("c", "Tiga"), ("a", "Satu"), ("b", "Dua")])
    more = poll_feed(c, feed, same.state, now=NOW + 120)
    assert more.outcome == "ok" and [e.entry_id for e in more.entries] == ["https://kabar.example/c"]
    assert more.state.last_new_item_at == NOW + 120
    assert more.state.seen[:3] == (
        "https://kabar.example/c",
        "https://kabar.example/a",
        "https://kabar.example/b",
    )

    doc["body"] = rss([("c", "Tiga (ralat judul)"), ("a", "Satu")])  # edited, no new item
    edited = poll_feed(c, feed, more.state, now=NOW + 180)
    assert edited.outcome == "ok" and edited.entries == ()

    val = lambda outcome: registry.get_sample_value(
        "newsmon_feed_polls_total", {"feed": "kabar", "outcome": outcome}
    )
    assert (val("ok"), val("unchanged")) == (3.0, 1.0)
    assert registry.get_sample_value("newsmon_feed_items_total", {"feed": "kabar"}) == 7.0
    assert (
        registry.get_sample_value("newsmon_feed_last_new_item_timestamp_seconds", {"feed": "kabar"})
        == NOW + 120
    )


def test_conditional_get_304(server: LocalServer, registry: CollectorRegistry) -> None:
    def handler(req: Request) -> Route:
        if (
            req.headers.get("if-none-match") == '"v1"'
            or req.headers.get("if-modified-since") == "Mon, 15 Jan 2024"
        ):
            return Route(status=304)
        return Route(body=rss([("a", "Satu")]), headers={"ETag": '"v1"', "Last-Modified": "Mon, 15 Jan 2024"})

    server.route("/rss", handler)
    feed = feed_cfg(server.url("/rss"))
    first = poll_feed(client(), feed, None, now=NOW)
    assert (first.state.etag, first.state.last_modified) == ('"v1"', "Mon, 15 Jan 2024")
    assert "if-none-match" not in server.requests[0].headers
    second = poll_feed(client(), feed, first.state, now=NOW + 60)
    assert (second.outcome, second.conditional_get, second.entries) == ("not_modified", True, ())
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert second.state.seen == first.state.seen and second.state.content_hash == first.state.content_hash
    assert (
        registry.get_sample_value("newsmon_feed_polls_total", {"feed": "kabar", "outcome": "not_modified"})
        == 1.0
    )


def test_etag_changes_without_content_change_is_unchanged(server: LocalServer) -> None:
    counter = {"n": 0}

    def handler(req: Request) -> Route:  # a new ETag on every response, conditional GET ignored
        counter["n"] += 1
        return Route(body=rss([("a", "Satu")]), headers={"ETag": f'"v{counter["n"]}"'})

    server.route("/rss", handler)
    feed = feed_cfg(server.url("/rss"))
    first = poll_feed(client(), feed, None, now=NOW)
    second = poll_feed(client(), feed, first.state, now=NOW + 60)
    assert (second.outcome, second.conditional_get, second.entries) == ("unchanged", False, ())
    assert second.state.etag == '"v2"'


def test_http_error_backs_off_and_honours_retry_after(
    server: LocalServer, registry: CollectorRegistry
) -> None:
    server.route("/rss", Route(status=503, headers={"Retry-After": "900"}))
    feed = feed_cfg(server.url("/rss"))
    result = poll_feed(client(), feed, None, now=NOW)
    assert (result.outcome, result.entries) == ("http_error", ())
    assert "503" in (result.error or "")
    assert result.state.interval == 900.0 and result.state.next_poll_at == NOW + 900
    assert result.state.consecutive_errors == 1 and result.state.last_error_at == NOW
    server.route("/rss", Route(status=500))
    again = poll_feed(client(), feed, result.state, now=NOW + 900)
    assert again.state.consecutive_errors == 2 and again.state.interval == 60.0 * 4
    assert (
        registry.get_sample_value("newsmon_feed_polls_total", {"feed": "kabar", "outcome": "http_error"})
        == 2.0
    )


def test_blocked_feed_url_is_an_outcome_not_an_exception(registry: CollectorRegistry) -> None:
    feed = feed_cfg("http://169.254.169.254/latest/meta-data")
    result = poll_feed(client(), feed, None, now=NOW)
    assert result.outcome == "blocked" and "169.254.169.254" in (result.error or "")


def test_moved_feed_drops_validators_but_keeps_seen(server: LocalServer) -> None:
    server.route("/new", Route(body=rss([("a", "Satu"), ("z", "Baru")])))
    old = FeedState(
        feed_id="kabar",
        url="https://old.example/rss",
        etag='"x"',
        content_hash="h",
        seen=("https://kabar.example/a",),
    )
    result = poll_feed(client(), feed_cfg(server.url("/new")), old, now=NOW)
    assert "if-none-match" not in server.requests[0].headers
    assert [e.entry_id for e in result.entries] == ["https://kabar.example/z"]
    assert result.state.url == server.url("/new")


# --------------------------------------------------------------------------- scheduling (pure)


def test_next_interval_adapts_to_publishing_rate() -> None:
    feed = feed_cfg(min_interval=60.0, max_interval=1800.0)
    s = FeedState(feed_id="kabar", url="u", interval=600.0)
    kw = dict(feed=feed, ttl=None, retry_after=None, failed=False)
    assert next_interval(s, new_items=5, **kw) == 300.0
    assert next_interval(s, new_items=1, **kw) == 600.0
    assert next_interval(s, new_items=0, **kw) == 900.0
    assert next_interval(FeedState(feed_id="k", url="u", interval=1500.0), new_items=0, **kw) == 1800.0
    assert next_interval(FeedState(feed_id="k", url="u", interval=70.0), new_items=9, **kw) == 60.0
    assert next_interval(None, new_items=0, **kw) == 90.0  # first poll starts from min_interval


def test_next_interval_ttl_is_a_lower_bound_capped_by_max() -> None:
    feed = feed_cfg(min_interval=60.0, max_interval=1800.0)
    s = FeedState(feed_id="kabar", url="u", interval=120.0)
    assert next_interval(s, new_items=5, feed=feed, ttl=15, retry_after=None, failed=False) == 900.0
    assert next_interval(s, new_items=5, feed=feed, ttl=600, retry_after=None, failed=False) == 1800.0


def test_next_interval_backoff_and_retry_after() -> None:
    feed = feed_cfg(min_interval=60.0, max_interval=1800.0)
    kw = dict(new_items=0, feed=feed, ttl=None)
    seq = []
    state = FeedState(feed_id="kabar", url="u", interval=60.0)
    for errors in range(7):
        state = FeedState(feed_id="kabar", url="u", interval=60.0, consecutive_errors=errors)
        seq.append(next_interval(state, retry_after=None, failed=True, **kw))
    assert seq == [120.0, 240.0, 480.0, 960.0, 1800.0, 1800.0, 1800.0]
    assert next_interval(state, retry_after=7200.0, failed=True, **kw) == 7200.0  # the server asked
    assert next_interval(state, retry_after=10**9, failed=True, **kw) == 6 * 3600.0


def test_fixed_poll_interval() -> None:
    (fixed,) = apply_poll_interval([feed_cfg()], 2.0)
    for new in (0, 1, 10):
        assert next_interval(None, new_items=new, feed=fixed, ttl=None, retry_after=None, failed=False) == 2.0
    assert apply_poll_interval([feed_cfg()], None) == (feed_cfg(),)


def test_due_orders_most_overdue_first() -> None:
    feeds = [
        feed_cfg(id="a"),
        feed_cfg(id="b"),
        feed_cfg(id="c"),
        feed_cfg(id="d", enabled=False),
        feed_cfg(id="e"),
    ]
    states = {
        "a": FeedState(feed_id="a", url="u", next_poll_at=NOW - 10),
        "b": FeedState(feed_id="b", url="u", next_poll_at=NOW + 10),
        "c": FeedState(feed_id="c", url="u", next_poll_at=NOW - 100),
    }
    assert [f.id for f in due(states, feeds, NOW)] == ["e", "c", "a"]
    assert due(states, feeds, NOW - 1000) == [feeds[4]]


def test_seen_is_bounded_but_keeps_current_items(server: LocalServer) -> None:
    old = tuple(f"https://old.example/{i}" for i in range(SEEN_LIMIT))
    server.route("/rss", Route(body=rss([("a", "Satu")])))
    result = poll_feed(
        client(),
        feed_cfg(server.url("/rss")),
        FeedState(feed_id="kabar", url=server.url("/rss"), seen=old),
        now=NOW,
    )
    assert len(result.state.seen) == SEEN_LIMIT and result.state.seen[0] == "https://kabar.example/a"


# --------------------------------------------------------------------------- Beam


class MemoryStore:
    """A FeedStateStore kept in a JSON file (picklable: Beam pickles the factory)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _all(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def load_feed_state(self, feed_id: str) -> FeedState | None:
        d = self._all().get(feed_id)
        return None if d is None else FeedState.from_dict(d)

    def save_feed_state(self, state: FeedState) -> None:
        data = self._all()
        data[state.feed_id] = state.to_dict()
        self.path.write_text(json.dumps(data))


class StoreFactory:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> MemoryStore:
        return MemoryStore(self.path)


def test_read_from_rss_builds_its_graph(tmp_path: Path) -> None:
    p = beam.Pipeline(runner="FnApiRunner")
    out = p | "Read" >> ReadFromRss(
        [feed_cfg()], FetchConfig(), StoreFactory(str(tmp_path / "s.json")), tick_seconds=5
    )
    assert isinstance(out, beam.PCollection)
    labels = [t.full_label for t in p.transforms_stack[0].parts[0].parts]
    assert labels == ["Read/Tick", "Read/Poll due feeds"]
    with pytest.raises(ValueError):
        ReadFromRss([], FetchConfig(), StoreFactory("x"))
    with pytest.raises(ValueError):
        ReadFromRss([feed_cfg()], FetchConfig(), StoreFactory("x"), tick_seconds=0)


def test_poll_due_feeds_fn_in_a_bounded_pipeline(server: LocalServer, tmp_path: Path) -> None:
    server.route("/rss", Route(body=rss([("a", "Satu"), ("b", "Dua")])))
    feed = feed_cfg(server.url("/rss"))
    fetch = FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0)
    store_path = str(tmp_path / "states.json")
    for _round, expected in ((1, ["https://kabar.example/a", "https://kabar.example/b"]), (2, [])):
        with beam.Pipeline(runner="FnApiRunner") as p:
            links = (
                p
                | beam.Create([0])
                | beam.ParDo(
                    PollDueFeedsFn(
                        [feed], fetch, StoreFactory(store_path), clock=lambda r=_round: 10.0**6 * r
                    )
                )
                | beam.Map(lambda e: e.link)
            )
            assert_that(links, equal_to(expected))
    state = MemoryStore(store_path).load_feed_state("kabar")
    assert state is not None and state.polls == 2 and len(server.requests) == 2
