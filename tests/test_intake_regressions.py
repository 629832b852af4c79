"""Regression tests for what a new user hit at intake (issue 13, items 1, 3, 4, 6 and 18).

Each test failed on the code before its fix. Pages and feeds are written here, for these tests.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.rss import parse_feed, poll_feed
from connectors.web import FetchError, HttpClient, parse_retry_after
from pipelines.cli import main
from pipelines.config import FeedConfig, FetchConfig
from tests.localserver import LocalServer, Request, Route
from tests.newssite import NewsSite
from transforms.extract import build_article
from transforms.records import EXTRACTION_FEED_FALLBACK, EXTRACTION_PAGE, Article, FeedEntry, article_id

FETCHED = datetime(2024, 10, 18, 3, 0, tzinfo=UTC)
NOW = FETCHED.timestamp()


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def feed_cfg(url: str = "https://kabar.example/rss.xml", fid: str = "kabar") -> FeedConfig:
    return FeedConfig(url=url, id=fid, name="Kabar")


def client(**kw: object) -> HttpClient:
    base: dict[str, object] = dict(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0,
                                   connect_timeout=2.0, robots=False)
    base.update(kw)
    return HttpClient(FetchConfig(**base))  # type: ignore[arg-type]


PARAGRAPHS = [
    "Pemerintah kota meresmikan taman baru di pusat kota pada Sabtu pagi. Warga menyambut gembira.",
    "Taman seluas dua hektare itu dilengkapi jalur pejalan kaki, bangku dan lampu tenaga surya.",
    "Wali kota berharap taman tersebut menjadi ruang berkumpul warga dari semua kalangan.",
]


def quick_config(tmp_path: Path, **fetch: object) -> Path:
    cfg = tmp_path / "newsmon.yaml"
    lines = ["fetch:"] + [f"  {k}: {v}" for k, v in {"per_host_min_spacing": 0, "timeout": 5, **fetch}.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


# --------------------------------------------------------------------------- item 1


def test_deadline_starts_when_the_request_starts_not_while_queued_for_politeness() -> None:
    """Eight pages from one host, 0.3 s apart, 0.8 s deadline: the last ones wait ~2 s for their
    slot. They used to time out without ever being requested."""
    with LocalServer() as server:
        server.route("/a", Route(body=b"<html>ok</html>", headers={"Content-Type": "text/html"}))
        http = client(per_host_min_spacing=0.3, timeout=0.8, per_host_concurrency=2)
        results: list[object] = []
        lock = threading.Lock()

        def work() -> None:
            try:
                r: object = http.get(server.url("/a"))
            except FetchError as exc:
                r = exc
            with lock:
                results.append(r)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    errors = [r for r in results if isinstance(r, FetchError)]
    assert errors == []
    assert len(server.requests) == 8
    # elapsed is the request alone, not the ~2 s some of them spent queued
    assert max(r.elapsed for r in results) < 0.6  # type: ignore[union-attr]


def test_a_trickling_server_still_times_out_at_the_deadline() -> None:
    with LocalServer() as server:
        server.route("/slow", Route(body=b"x" * 10_000, trickle=(10, 0.1)))
        with pytest.raises(FetchError) as info:
            client(timeout=0.5).get(server.url("/slow"))
    assert info.value.kind == "timeout"
    assert info.value.elapsed is not None and 0.4 < info.value.elapsed < 2.0


def test_backfill_fetches_every_item_from_one_busy_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """12 items, 0.2 s spacing, 1 s deadline: items late in the batch used to time out while
    waiting for their slot, stay pending, and backfill still said success."""
    store = tmp_path / "store"
    cfg = quick_config(tmp_path, per_host_min_spacing=0.2, timeout=1)
    with LocalServer() as server:
        site = NewsSite(server)
        for i in range(12):
            site.publish(f"Taman kota nomor {i} diresmikan wali kota", PARAGRAPHS, slug=f"taman-{i}")
        code = main(["backfill", "--config", str(cfg), "--store", str(store), "--feed", site.feed_url,
                     "--allow-host", "127.0.0.1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "12 new" in err and "12 stored" in err and "0 fetch failures" in err
    assert "not finished" not in err


def test_backfill_with_work_left_says_what_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry: CollectorRegistry
) -> None:
    store = tmp_path / "store"
    cfg = quick_config(tmp_path)
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Taman kota diresmikan wali kota", PARAGRAPHS, slug="taman")
        broken = site.publish("Banjir surut di bantaran sungai", PARAGRAPHS, slug="banjir")
        server.route(f"/berita/{broken.slug}", Route(status=503, headers={"Retry-After": "120"}))
        code = main(["backfill", "--config", str(cfg), "--store", str(store), "--feed", site.feed_url,
                     "--allow-host", "127.0.0.1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "2 new" in err and "1 stored" in err
    assert "1 fetch failures (http_error 1)" in err
    assert "1 articles not finished: 1 waiting to retry a fetch" in err
    assert site.url_of(broken) in err and "HTTP 503" in err


def test_backfill_counts_entries_rejected_at_intake_and_does_not_promise_a_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    cfg = quick_config(tmp_path)
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Taman kota diresmikan wali kota", PARAGRAPHS, slug="taman")
        body = server.routes["/rss.xml"](Request("GET", "/rss.xml", {})).body  # type: ignore[operator]
        body = body.replace(b"<item>", b"<item><title>Tanpa tautan</title><guid>right</guid></item><item>", 1)
        server.route("/with-orphan.xml", Route(body=body, headers={"Content-Type": "application/rss+xml"}))
        server.route("/gone.xml", Route(status=404))
        with caplog.at_level(logging.WARNING):
            code = main(["backfill", "--config", str(cfg), "--store", str(store), "--feed",
                         server.url("/with-orphan.xml"), "--feed", server.url("/gone.xml"),
                         "--allow-host", "127.0.0.1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1  # one feed failed
    assert "1 entries rejected at intake (no_link 1)" in err
    assert "1 stored" in err and "1 feed errors" in err
    failures = [r.getMessage() for r in caplog.records if "poll failed" in r.getMessage()]
    assert failures and all("next try" not in msg for msg in failures)


# --------------------------------------------------------------------------- item 3

LINKLESS = b"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Kabar</title>
<item><title>Satu</title><guid>right</guid></item>
<item><title>Dua</title><guid isPermaLink="false">1</guid></item>
<item><title>Tiga</title><guid>Correct Value</guid></item>
<item><title>Empat</title><guid>https://kabar.example/berita/empat</guid></item>
<item><title>Lima</title><link>/berita/lima</link><guid>lima-guid</guid></item>
<item><title>Enam</title><link>https://kabar.example/berita/enam</link></item>
</channel></rss>"""


def test_non_url_guids_never_become_links_on_the_feed_host() -> None:
    entries, _ = parse_feed(LINKLESS, feed=feed_cfg(), fetched_at=FETCHED)
    links = {e.title: e.link for e in entries}
    assert links == {
        "Empat": "https://kabar.example/berita/empat",  # a guid that is itself an absolute URL
        "Lima": "https://kabar.example/berita/lima",  # the entry's own (root-relative) link
        "Enam": "https://kabar.example/berita/enam",
    }


def test_link_less_entries_are_counted_and_logged_once(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalServer() as server:
        server.route("/rss.xml", Route(body=LINKLESS, headers={"Content-Type": "application/rss+xml"}))
        feed = feed_cfg(server.url("/rss.xml"))
        with caplog.at_level(logging.WARNING):
            first = poll_feed(client(), feed, None, now=NOW)
            # the feed changes (a new item) but the three orphans are the same ones: not counted again
            server.route("/rss.xml", Route(body=LINKLESS.replace(
                b"</channel>", b"<item><title>Tujuh</title><link>https://kabar.example/7</link></item></channel>"),
                headers={"Content-Type": "application/rss+xml"}))
            second = poll_feed(client(), feed, first.state, now=NOW + 60)
    assert first.outcome == "ok" and len(first.entries) == 3 and first.rejected == 3
    assert second.outcome == "ok" and [e.title for e in second.entries] == ["Tujuh"] and second.rejected == 0
    assert sample(registry, "newsmon_feed_entries_rejected_total", feed="kabar", reason="no_link") == 3
    skipped = [r.getMessage() for r in caplog.records if "entry skipped" in r.getMessage()]
    assert len(skipped) == 3 and any("'Satu'" in m for m in skipped)


# --------------------------------------------------------------------------- item 4

SCHEDULE = [
    ("Jumat, 18 Oktober 2024", ["15.30 WIB: Persita Tangerang vs PSM Makassar", "19.00 WIB: Bali United vs Madura United"]),
    ("Sabtu, 19 Oktober 2024", ["15.30 WIB: Barito Putera vs PSIS Semarang", "19.00 WIB: Persib Bandung vs Persija Jakarta"]),
    ("Minggu, 20 Oktober 2024", ["15.30 WIB: Arema FC vs Dewa United", "19.00 WIB: Borneo FC vs Persebaya Surabaya"]),
    ("Senin, 21 Oktober 2024", ["15.30 WIB: PSBS Biak vs Malut United", "19.00 WIB: Semen Padang vs Persis Solo"]),
]
LEAD = "Berikut jadwal lengkap pertandingan Liga 1 pekan ke-12 yang digelar mulai Jumat hingga Senin"


def schedule_page() -> str:
    blocks = "\n".join(
        f"<h3>{html.escape(day)}</h3><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in matches) + "</ul>"
        for day, matches in SCHEDULE
    )
    return f"""<!DOCTYPE html><html lang="id"><head><meta charset="utf-8">
<title>Jadwal Liga 1 Pekan Ke-12: Persib Tantang Persija - Bola Kita</title></head>
<body><nav><a href="/">Beranda</a> <a href="/liga-1">Liga 1</a></nav>
<article><h1>Jadwal Liga 1 Pekan Ke-12: Persib Tantang Persija</h1>
<p>{LEAD}:</p>
{blocks}
<p>Siaran langsung tersedia di televisi nasional</p>
</article><footer>Hak cipta Bola Kita</footer></body></html>"""


def schedule_entry(summary: str) -> FeedEntry:
    return FeedEntry(
        feed_url="https://bolakita.example/rss", feed_id="bolakita", source="Bola Kita",
        entry_id="https://bolakita.example/jadwal-liga-1-pekan-12", link="https://bolakita.example/jadwal-liga-1-pekan-12",
        title="Jadwal Liga 1 Pekan Ke-12: Persib Tantang Persija", summary=summary, published=FETCHED,
        published_raw="Fri, 18 Oct 2024 10:00:00 +0700", fetched_at=FETCHED,
    )


def build(page_html: str | None, entry: FeedEntry) -> Article:
    return build_article(entry=entry, article_id=article_id(entry.link), canonical_url=entry.link,
                         final_url=entry.link, html=page_html, first_seen=FETCHED)


def test_list_like_article_body_is_kept_over_the_feed_summary() -> None:
    summary = (LEAD + ": Jumat, 18 Oktober 2024 15.30 WIB: Persita Tangerang vs PSM Makassar, 19.00 WIB: Bali United vs ...")[:200]
    article = build(schedule_page(), schedule_entry(summary))
    assert article.extraction == EXTRACTION_PAGE, article.extraction_note
    assert "Persib Bandung vs Persija Jakarta" in article.text
    assert "Semen Padang vs Persis Solo" in article.text
    assert len(article.text) > len(summary)
    assert "list-like" in article.extraction_note  # the record says why this page text was kept
    assert Article.from_dict(article.to_dict()).extraction_note == article.extraction_note


def test_a_different_story_falls_back_and_says_why() -> None:
    other = schedule_entry(
        "Pemerintah kota meresmikan taman baru di pusat kota pada Sabtu pagi dengan jalur pejalan kaki dan lampu surya."
    )
    other = FeedEntry(**{**other.to_dict(), "title": "Taman kota diresmikan", "published": FETCHED,
                         "fetched_at": FETCHED})
    article = build(schedule_page(), other)
    assert article.extraction == EXTRACTION_FEED_FALLBACK
    assert article.text.startswith("Pemerintah kota meresmikan taman")
    assert "different story" in article.extraction_note


def test_boilerplate_and_empty_pages_fall_back_with_a_note() -> None:
    entry = schedule_entry(LEAD)
    wall = ("<html><body><div class='consent'><p>We use cookies to improve your experience. Accept all cookies "
            "to continue reading Jadwal Liga 1 pekan ke-12 Persib Persija jadwal lengkap pertandingan.</p>"
            "</div></body></html>")
    walled = build(wall, entry)
    assert walled.extraction == EXTRACTION_FEED_FALLBACK and "boilerplate" in walled.extraction_note
    empty = build("<html><body></body></html>", entry)
    assert empty.extraction == EXTRACTION_FEED_FALLBACK and empty.extraction_note.startswith("feed fallback:")
    assert build(None, entry).extraction_note == "feed fallback: no html"


# --------------------------------------------------------------------------- item 6


def _feed_with_ttl(ttl: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Kabar</title>'
        f"<ttl>{ttl}</ttl><item><title>Satu</title><link>https://kabar.example/1</link></item>"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize("ttl", ["²", "١٥", "15 minutes", "-5", "99999999999999999999"])
def test_odd_ttl_is_ignored_and_items_kept(ttl: str) -> None:
    entries, parsed_ttl = parse_feed(_feed_with_ttl(ttl), feed=feed_cfg(), fetched_at=FETCHED)
    assert [e.link for e in entries] == ["https://kabar.example/1"]
    assert parsed_ttl is None


def test_feeds_check_on_a_non_ascii_ttl_prints_no_traceback(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with LocalServer() as server:
        server.route("/rss.xml", Route(body=_feed_with_ttl("²"), headers={"Content-Type": "application/rss+xml"}))
        with caplog.at_level(logging.DEBUG, logger="connectors"):
            code = main(["feeds", "check", "--feed", server.url("/rss.xml"), "--allow-host", "127.0.0.1"])
    out = capsys.readouterr().out
    assert code == 0
    assert " ok " in out and "    1 " in out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_non_ascii_digits_in_headers_do_not_raise() -> None:
    assert parse_retry_after("²") is None
    with LocalServer() as server:
        server.route("/a", Route(body=b"<html>ok</html>", headers={"Content-Type": "text/html", "X-Len": "1"}))
        server.route("/cl", lambda req: Route(body=b"abc", headers={"Content-Type": "text/html", "Content-Length": "³"},
                                              content_length=False))
        assert client().get(server.url("/a")).body == b"<html>ok</html>"
        try:
            client(timeout=2).get(server.url("/cl"))
        except FetchError:
            pass  # a clear fetch failure is fine; a ValueError is not


# --------------------------------------------------------------------------- item 18


def test_a_well_formed_feed_without_content_type_is_not_called_malformed(caplog: pytest.LogCaptureFixture) -> None:
    with LocalServer() as server:
        server.route("/rss.xml", Route(body=_feed_with_ttl("15")))
        with caplog.at_level(logging.INFO, logger="connectors.rss"):
            result = poll_feed(client(), feed_cfg(server.url("/rss.xml")), None, now=NOW)
    assert result.outcome == "ok" and result.warning is None and len(result.entries) == 1
    assert not [r for r in caplog.records if "malformed" in r.getMessage()]


def test_feeds_check_times_the_request_only_and_keeps_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_id = "kabar-nusantara-rubrik-internasional-dan-dunia-edisi-khusus"
    cfg = tmp_path / "newsmon.yaml"
    with LocalServer() as server:
        for path in ("/a.xml", "/b.xml"):
            server.route(path, Route(body=_feed_with_ttl("15"), headers={"Content-Type": "application/rss+xml",
                                                                          "ETag": '"v1"'}))
        cfg.write_text(
            "fetch: {per_host_min_spacing: 1.0, allow_hosts: ['127.0.0.1']}\n"
            f"feeds:\n  - {{url: '{server.url('/a.xml')}', id: {long_id}}}\n  - {{url: '{server.url('/b.xml')}', id: b}}\n"
        )
        started = time.monotonic()
        code = main(["feeds", "check", "--config", str(cfg)])
        took = time.monotonic() - started
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert took >= 2.0  # four requests to one host, 1 s apart: the politeness wait happened...
    header, row_a, row_b = out[0], out[1], out[2]
    for row in (row_a, row_b):
        assert float(row.split()[3].rstrip("s")) < 0.5  # ...but is not in the time column
        assert row.index(row.split()[1]) == header.index("status")  # columns line up under the header
    assert row_a.startswith(long_id + " ")
