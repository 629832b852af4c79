"""Each metric moves by exactly the number of events that happened (issue 15, item 2).

One cycle of the real local driver (``pipelines.local.LocalDriver``) over a local news site
whose feed carries a designed mix of events, then exact values on the test's fresh registry
(one test runs a second, unchanged cycle; another feeds the streaming driver's ``AcceptEntries``
three entries on the store the cycle filled):

- ``GOOD`` distinct articles, ``TAGGED`` of them about Russia and North Korea,
- ``EXACT`` exact copies and ``NEAR`` near copies of other articles (different URLs),
- one article page answering 404 and one disallowed by robots.txt (both fall back to the feed's text),
- one article listed a second time with a tracking parameter in its link (a URL duplicate: same
  canonical URL) and one entry without a link (rejected at intake).

Metrics only one connector moves are covered by focused tests elsewhere, each asserting an
exact delta:

- ``bulk_retries``: tests/test_elasticsearch.py::test_per_item_429_is_retried_with_backoff
- ``dead_letters``: tests/test_elasticsearch.py::test_mapping_violation_goes_to_dead_letters
- ``articles_indexed`` on the search-engine sink (``indexed`` and ``failed``, each exactly once per
  article through ``write_batch``; issue 15 found them counted twice there):
  tests/test_elasticsearch.py::test_partial_ack_then_failure_reports_retry
- ``alerts_sent``: tests/test_alertmanager.py, ``sent`` in
  ``test_sender_posts_v2_alerts_with_ends_at_and_empties_the_queue``, ``failed`` in
  ``test_down_alertmanager_retries_with_backoff_then_delivers``, ``expired`` in ``test_undelivered_alerts_expire``
- ``article_alerts_enabled``: tests/test_alertmanager.py::test_driver_backfill_remembers_and_run_sends_including_outbox_resends
- ``articles_failed{stage="pipeline"}``: tests/test_local_driver.py::test_a_poisonous_entry_is_isolated_and_quarantined
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.metrics import FEED_POLL_OUTCOMES
from pipelines.config import Config, FeedConfig, FetchConfig
from pipelines.local import LocalDriver
from tests.localserver import LocalServer, Request, Route
from tests.newssite import NewsSite, rss
from transforms.records import FeedEntry

RUSIA_KORUT = [
    [
        "Rusia dan Korea Utara menandatangani perjanjian kerja sama militer di Pyongyang pada Rabu.",
        "Presiden Vladimir Putin dan Kim Jong Un sepakat saling membantu bila salah satu negara diserang.",
        "Kementerian Luar Negeri Korea Selatan menyatakan keprihatinan atas kesepakatan pertahanan itu.",
    ],
    [
        "Korea Utara mengirim ribuan tentara ke Rusia untuk membantu Moskow di wilayah Kursk, kata badan intelijen Seoul.",
        "Pejabat intelijen menyebut pasukan Pyongyang dilatih menggunakan persenjataan buatan Rusia sebelum dikirim.",
        "Kremlin menolak menanggapi laporan tentang kehadiran tentara Korea Utara di garis depan.",
    ],
]
OTHER = [
    [
        "Banjir merendam ratusan rumah di Kabupaten Bandung setelah hujan deras mengguyur sejak Senin malam.",
        "Petugas penanggulangan bencana mengerahkan perahu karet untuk mengevakuasi warga lanjut usia.",
        "Warga meminta pemerintah segera memperbaiki tanggul Sungai Citarum yang jebol di beberapa titik.",
    ],
    [
        "Harga cabai rawit di pasar tradisional Surabaya naik dua kali lipat dalam sepekan terakhir.",
        "Pedagang menyebut pasokan dari petani di Kediri berkurang karena gagal panen akibat cuaca.",
        "Dinas perdagangan berencana menggelar operasi pasar untuk menahan lonjakan harga menjelang hari raya.",
    ],
    [
        "Tim nasional sepak bola putri Indonesia menang tiga gol tanpa balas atas Singapura di Stadion Manahan.",
        "Pelatih memuji disiplin para pemain bertahan yang nyaris tidak memberi peluang kepada lawan.",
        "Kemenangan itu membawa Indonesia ke babak semifinal turnamen regional bulan depan.",
    ],
]
NOT_FOUND = [
    "Pemerintah provinsi membuka pendaftaran beasiswa kuliah bagi pelajar dari keluarga kurang mampu tahun ini.",
    "Pendaftaran dibuka hingga akhir bulan melalui laman resmi dinas pendidikan.",
]
DISALLOWED = [
    "Sebuah kapal nelayan tenggelam di perairan Selat Sunda, seluruh awak berhasil diselamatkan tim SAR gabungan.",
    "Kapal itu diduga kelebihan muatan ketika diterjang gelombang tinggi pada dini hari.",
]

GOOD = len(RUSIA_KORUT) + len(OTHER)
TAGGED = len(RUSIA_KORUT)
EXACT = 2  # exact copies of OTHER[0] and OTHER[1]
NEAR = 1  # a near copy of OTHER[2]: the same text with one more sentence
PAGES = GOOD + EXACT + NEAR + 2  # + the 404 page and the disallowed page
FEED_ID = "campur"


class MixedFeed:
    """The site's RSS document plus the first article again (tracking parameter) and an item without a link."""

    def __init__(self, site: NewsSite) -> None:
        self.site = site

    def __call__(self, request: Request) -> Route:
        doc = rss(self.site, self.site.stories)
        repeated = self.site.stories[0]
        extra = (
            f"<item><title>{html.escape(repeated.title)}</title><link>{self.site.url_of(repeated)}?utm_source=rss</link>"
            "<description>Diulang.</description></item>\n"
            "<item><title>Tanpa tautan</title><description>Entri ini tidak punya tautan.</description></item>\n"
        )
        body = doc.replace("  </channel>", extra + "  </channel>")
        return Route(body=body.encode("utf-8"), headers={"Content-Type": "application/rss+xml; charset=utf-8"})


@dataclass(frozen=True)
class Run:
    registry: CollectorRegistry
    now: float  # the driver's (fixed) clock
    cfg: Config
    known_link: str  # an article the run accepted


def drive(tmp_path: Path, registry: CollectorRegistry, cycles: int) -> Run:
    """``cycles`` cycles of a local driver over the designed site, on a fixed clock."""
    now = time.time()
    with LocalServer() as server:
        site = NewsSite(server, "/site.xml")
        for i, paras in enumerate(RUSIA_KORUT + OTHER):
            site.publish(paras[0][:60], paras, slug=f"asli-{i}")
        for i in range(EXACT):
            site.publish(OTHER[i][0][:60], OTHER[i], slug=f"salinan-{i}")
        site.publish(OTHER[2][0][:60], OTHER[2] + ["Laga berikutnya digelar di Jakarta pekan depan."], slug="mirip-0")
        site.publish("Beasiswa kuliah dibuka", NOT_FOUND, slug="hilang")
        site.publish("Kapal nelayan tenggelam", DISALLOWED, slug="rahasia")
        server.route("/berita/hilang", Route(status=404))
        server.route("/robots.txt", Route(body=b"User-agent: *\nDisallow: /berita/rahasia\n",
                                          headers={"Content-Type": "text/plain"}))
        server.route("/mixed.xml", MixedFeed(site))
        cfg = Config(
            feeds=(FeedConfig(url=server.url("/mixed.xml"), id=FEED_ID, name="Campur", min_interval=60,
                              max_interval=60),),
            store_dir=tmp_path / "store",
            fetch=FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0),
            metrics_port=0,
            max_attempts=1,
        )
        known_link = site.url_of(site.stories[0])
        driver = LocalDriver(cfg, clock=lambda: now)
        try:
            for _ in range(cycles):
                report = driver.cycle(force_all=True)
                assert not report.errors, report.errors
        finally:
            driver.close()
    return Run(registry, now, cfg, known_link)


@pytest.fixture
def run(tmp_path: Path, registry: CollectorRegistry) -> Run:
    return drive(tmp_path, registry, cycles=1)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_the_designed_texts_are_what_the_rules_tag() -> None:
    from transforms.topicrules import load_topics
    from transforms.topics import evaluate

    topics = load_topics(None)

    def tags(paras: list[str]) -> tuple[str, ...]:
        return tuple(e.topic for e in evaluate(topics, title=paras[0][:60], text="\n\n".join(paras)))

    assert [tags(p) for p in RUSIA_KORUT] == [("russia-dprk",)] * TAGGED
    assert [tags(p) for p in OTHER + [NOT_FOUND, DISALLOWED]] == [()] * (len(OTHER) + 2)


def test_intake_counts(run: Run) -> None:
    reg = run.registry
    assert value(reg, "newsmon_feed_items_total", feed=FEED_ID) == PAGES + 2  # every <item>, usable or not
    assert value(reg, "newsmon_feed_entries_rejected_total", feed=FEED_ID, reason="no_link") == 1
    assert value(reg, "newsmon_feed_entries_rejected_total", feed=FEED_ID, reason="unreadable") in (None, 0)
    assert value(reg, "newsmon_articles_seen_total", feed=FEED_ID) == PAGES
    assert value(reg, "newsmon_duplicates_total", kind="url") == 1
    assert value(reg, "newsmon_articles_failed_total", stage="accept", reason="bad_url") in (None, 0)


def test_fetch_and_extract_counts(run: Run) -> None:
    reg = run.registry
    assert value(reg, "newsmon_robots_total", outcome="allowed") == PAGES - 1
    assert value(reg, "newsmon_robots_total", outcome="disallowed") == 1
    assert value(reg, "newsmon_articles_fetched_total", outcome="ok") == PAGES - 2
    assert value(reg, "newsmon_articles_fetched_total", outcome="http_error") == 1
    assert value(reg, "newsmon_articles_fetched_total", outcome="robots_disallowed") == 1
    assert value(reg, "newsmon_articles_failed_total", stage="fetch", reason="http_error") == 1
    assert value(reg, "newsmon_articles_failed_total", stage="fetch", reason="robots_disallowed") == 1
    assert value(reg, "newsmon_articles_extracted_total", outcome="ok") == PAGES - 2
    assert value(reg, "newsmon_articles_extracted_total", outcome="feed_fallback") == 2
    assert value(reg, "newsmon_articles_extracted_total", outcome="error") in (None, 0)


def test_dedup_topics_and_sink_counts(run: Run) -> None:
    reg = run.registry
    assert value(reg, "newsmon_duplicates_total", kind="exact") == EXACT
    assert value(reg, "newsmon_duplicates_total", kind="near") == NEAR
    assert value(reg, "newsmon_articles_tagged_total", topic="russia-dprk") == TAGGED
    assert value(reg, "newsmon_articles_indexed_total", sink="localindex", outcome="indexed") == PAGES
    assert value(reg, "newsmon_articles_indexed_total", sink="localindex", outcome="failed") in (None, 0)
    assert value(reg, "newsmon_article_latency_seconds_count") == PAGES
    assert value(reg, "newsmon_index_backlog") == 0


def test_feed_cycle_gauges_and_stage_observations(run: Run) -> None:
    reg, now = run.registry, run.now
    assert value(reg, "newsmon_feed_polls_total", feed=FEED_ID, outcome="ok") == 1
    assert value(reg, "newsmon_feed_last_success_timestamp_seconds", feed=FEED_ID) == now
    assert value(reg, "newsmon_feed_last_new_item_timestamp_seconds", feed=FEED_ID) == now
    assert value(reg, "newsmon_feed_poll_interval_seconds", feed=FEED_ID) == 60
    assert value(reg, "newsmon_cycles_total", outcome="ok") == 1
    assert value(reg, "newsmon_cycles_total", outcome="error") in (None, 0)
    assert value(reg, "newsmon_last_cycle_timestamp_seconds") == now
    assert value(reg, "newsmon_stage_duration_seconds_count", stage="poll") == 1
    for stage in ("fetch", "extract", "dedup", "topics"):
        assert value(reg, "newsmon_stage_duration_seconds_count", stage=stage) == PAGES, stage
    assert value(reg, "newsmon_stage_duration_seconds_count", stage="sink") == 1  # one batch
    assert value(reg, "newsmon_article_alerts_enabled") == 0  # no Alertmanager configured


def test_streaming_intake_counts_like_the_local_driver(run: Run) -> None:
    """The streaming driver's AcceptEntries, over the dedup store the run filled: one new entry,
    one whose URL the store knows, one with a link that has no canonical form."""
    import apache_beam as beam

    from pipelines.process import Resources
    from pipelines.streaming import AcceptEntries

    reg = run.registry
    seen, url_dups = (value(reg, "newsmon_articles_seen_total", feed=FEED_ID),
                      value(reg, "newsmon_duplicates_total", kind="url"))
    assert (seen, url_dups) == (PAGES, 1)

    def entry(link: str) -> FeedEntry:
        return FeedEntry(feed_url="http://127.0.0.1/mixed.xml", feed_id=FEED_ID, source="Campur", entry_id=link,
                         link=link, title="Judul", summary="Ringkasan.", published=None, published_raw="",
                         fetched_at=datetime.now(UTC))

    entries = [entry("http://127.0.0.1/berita/baru-sekali"), entry(run.known_link), entry("http://[::1")]
    with beam.Pipeline() as p:
        _ = p | beam.Create(entries) | beam.ParDo(AcceptEntries(Resources.from_config(run.cfg)))
    assert value(reg, "newsmon_articles_seen_total", feed=FEED_ID) == PAGES + 1
    assert value(reg, "newsmon_duplicates_total", kind="url") == 1 + 1
    assert value(reg, "newsmon_articles_failed_total", stage="accept", reason="bad_url") == 1


def test_a_second_cycle_adds_only_its_poll_and_itself(tmp_path: Path, registry: CollectorRegistry) -> None:
    """Nothing new in the feed: no article, copy, fetch or write is counted again."""
    run = drive(tmp_path, registry, cycles=2)
    reg = run.registry
    assert value(reg, "newsmon_cycles_total", outcome="ok") == 2
    assert value(reg, "newsmon_stage_duration_seconds_count", stage="poll") == 2
    polls = {o: value(reg, "newsmon_feed_polls_total", feed=FEED_ID, outcome=o) for o in FEED_POLL_OUTCOMES}
    # the same document again (no ETag here, so no 304): its content hash says "unchanged"
    assert {o: n for o, n in polls.items() if n} == {"ok": 1, "unchanged": 1}
    assert value(reg, "newsmon_feed_items_total", feed=FEED_ID) == PAGES + 2  # an unchanged document is not parsed
    assert value(reg, "newsmon_duplicates_total", kind="url") == 1
    assert value(reg, "newsmon_articles_seen_total", feed=FEED_ID) == PAGES
    assert value(reg, "newsmon_duplicates_total", kind="exact") == EXACT
    assert value(reg, "newsmon_duplicates_total", kind="near") == NEAR
    assert value(reg, "newsmon_articles_fetched_total", outcome="ok") == PAGES - 2
    assert value(reg, "newsmon_articles_indexed_total", sink="localindex", outcome="indexed") == PAGES
    assert value(reg, "newsmon_articles_tagged_total", topic="russia-dprk") == TAGGED
    assert value(reg, "newsmon_article_latency_seconds_count") == PAGES
