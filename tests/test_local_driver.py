"""The local driver's cycle: poll -> accept -> bounded Beam pipeline -> sink, with failures."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.localindex import LocalIndex
from pipelines.config import Config, FeedConfig, FetchConfig
from pipelines.local import LocalDriver
from tests.localserver import LocalServer, Route
from tests.newssite import NewsSite

RUSIA_KORUT = [
    "Presiden Rusia Vladimir Putin tiba di Pyongyang pada Rabu dini hari untuk kunjungan kenegaraan ke Korea Utara.",
    "Pemimpin Korea Utara Kim Jong Un menyambut Putin di bandara, dan kedua pemimpin menandatangani perjanjian "
    "kemitraan strategis komprehensif yang mencakup kerja sama militer dan bantuan timbal balik.",
    "Amerika Serikat menuduh Pyongyang mengirim amunisi artileri dan rudal balistik ke Moskow untuk perang di Ukraina, "
    "tuduhan yang dibantah kedua negara.",
]
BANJIR = [
    "Banjir merendam ratusan rumah di Kabupaten Bandung setelah hujan deras mengguyur sejak Senin malam.",
    "Badan Penanggulangan Bencana Daerah mengerahkan perahu karet untuk mengevakuasi warga lanjut usia dan anak-anak.",
    "Warga berharap pemerintah segera memperbaiki tanggul Sungai Citarum yang jebol di beberapa titik.",
]



RETRY_LATER = 24 * 3600.0  # past any fetch retry's backoff


class Clock:
    """The driver's injectable clock, moved on by the test instead of rewriting the store."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_driver(tmp_path: Path, feed_url: str, *, clock: Clock | None = None, **fetch: object) -> LocalDriver:
    cfg = Config(
        feeds=(FeedConfig(url=feed_url, id="uji", name="Kabar Uji", min_interval=1, max_interval=1),),
        store_dir=tmp_path / "store",
        fetch=dataclasses.replace(
            FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0), **fetch
        ),
        metrics_port=0,
        max_attempts=2,
    )
    return LocalDriver(cfg, clock=clock or Clock())


def test_cycle_indexes_new_articles_once_and_counts(tmp_path: Path, registry: CollectorRegistry) -> None:
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        site.publish("Banjir rendam ratusan rumah di Bandung", BANJIR)
        driver = make_driver(tmp_path, site.feed_url)
        try:
            report = driver.cycle(force_all=True)
            assert (report.polled, report.accepted, report.processed, report.acknowledged) == (1, 2, 2, 2)
            report = driver.cycle(force_all=True)  # same feed again: nothing new
            assert report.accepted == 0
        finally:
            driver.close()
    index = LocalIndex.in_store(tmp_path / "store")
    assert index.count() == 2
    hits = index.search("putin")
    assert len(hits) == 1 and hits[0].topics == ("russia-dprk",)
    assert index.search("banjir")[0].topics == ()
    get = registry.get_sample_value
    assert get("newsmon_articles_tagged_total", {"topic": "russia-dprk"}) == 1
    assert get("newsmon_articles_indexed_total", {"sink": "localindex", "outcome": "indexed"}) == 2
    assert get("newsmon_feed_polls_total", {"feed": "uji", "outcome": "ok"}) == 1
    assert get("newsmon_articles_fetched_total", {"outcome": "ok"}) == 2
    assert get("newsmon_index_backlog") == 0
    assert get("newsmon_article_latency_seconds_count") == 2
    for stage in ("fetch", "extract", "dedup", "topics"):
        assert get("newsmon_stage_duration_seconds_count", {"stage": stage}) == 2, stage
    for stage in ("poll", "sink"):
        assert get("newsmon_stage_duration_seconds_count", {"stage": stage}) >= 1, stage


def test_transient_fetch_failure_is_retried_and_permanent_one_falls_back(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    with LocalServer() as server:
        site = NewsSite(server)
        flaky = site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        gone = site.publish("Banjir rendam ratusan rumah di Bandung", BANJIR)
        server.route(f"/berita/{flaky.slug}", Route(status=503, headers={"Retry-After": "0"}))
        server.route(f"/berita/{gone.slug}", Route(status=404))
        clock = Clock()
        driver = make_driver(tmp_path, site.feed_url, clock=clock)
        try:
            report = driver.cycle(force_all=True)
            assert report.acknowledged == 1  # the 404 falls back to the feed's text
            assert driver.state.counts()["pending"] == 1  # the 503 waits for a retry
            index = LocalIndex.in_store(tmp_path / "store")
            fallback = index.search("banjir")[0]
            assert index.get(fallback.id).extraction == "feed_fallback"
            # the retry is due later; make it due now and let the page recover
            clock.advance(RETRY_LATER)
            site.server.routes.pop(f"/berita/{flaky.slug}")
            site.publish(flaky.title, flaky.paragraphs, slug=flaky.slug)
            site.stories.pop()  # same story, page restored: not a new feed item
            report = driver.cycle()
            assert report.acknowledged == 1 and driver.state.backlog() == 0
            assert index.get(index.search("pyongyang")[0].id).extraction == "page"
        finally:
            driver.close()


def test_a_poisonous_entry_is_isolated_and_quarantined(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ExtractArticles tolerates extraction errors, so poison a later stage: the topic tagger
    import pipelines.topicsbeam

    real_tag = pipelines.topicsbeam.tag_article

    def poisonous_tag(article, topics):  # type: ignore[no-untyped-def]
        if "Banjir" in article.title:
            raise RuntimeError("simulated bug in the tagger")
        return real_tag(article, topics)

    monkeypatch.setattr(pipelines.topicsbeam, "tag_article", poisonous_tag)
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        site.publish("Banjir rendam ratusan rumah di Bandung", BANJIR)
        clock = Clock()
        driver = make_driver(tmp_path, site.feed_url, clock=clock)
        try:
            report = driver.cycle(force_all=True)
            assert report.acknowledged == 1
            assert driver.state.counts() == {"pending": 1, "outbox": 0, "failed": 0}
            clock.advance(RETRY_LATER)
            driver.cycle()
            assert driver.state.counts() == {"pending": 0, "outbox": 0, "failed": 1}
        finally:
            driver.close()
    assert (
        registry.get_sample_value(
            "newsmon_articles_failed_total", {"stage": "pipeline", "reason": "RuntimeError"}
        )
        == 2
    )


def test_a_trickling_feed_does_not_hold_up_the_others(tmp_path: Path, registry: CollectorRegistry) -> None:
    import time

    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        server.route("/slow.xml", Route(body=b"<rss>" + b" " * 10_000, trickle=(1, 0.2)))
        cfg = Config(
            feeds=(
                FeedConfig(url=server.url("/slow.xml"), id="lambat", name="Lambat", min_interval=1, max_interval=1),
                FeedConfig(url=site.feed_url, id="uji", name="Kabar Uji", min_interval=1, max_interval=1),
            ),
            store_dir=tmp_path / "store",
            fetch=FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=6.0),
            metrics_port=0,
        )
        driver = LocalDriver(cfg)
        try:
            start = time.monotonic()
            acknowledged = 0
            while acknowledged == 0 and time.monotonic() - start < 10:
                acknowledged += driver.cycle().acknowledged
                time.sleep(0.1)
            assert acknowledged == 1, "the good feed's article was not stored while the slow feed trickled"
            assert time.monotonic() - start < 10
            assert "lambat" in driver._polling  # still in flight
            slow = driver._polling["lambat"][1].result(timeout=15)
            assert slow.outcome == "timeout"
        finally:
            driver.close()


def test_without_an_outbox_an_unacknowledged_batch_fails_the_bundle(tmp_path: Path, registry: CollectorRegistry) -> None:
    """Streaming runners have no outbox: the bundle must fail so the runner retries it."""
    from connectors.sink import SinkUnavailable, WriteResult
    from pipelines.process import Resources, WriteToSinkFn
    from transforms.records import Article, utcnow

    class HalfSink:
        name = "localindex"

        def write(self, articles):  # type: ignore[no-untyped-def]
            return WriteResult(acknowledged=(articles[0].id,), retry=tuple(a.id for a in articles[1:]))

        def close(self) -> None:
            pass

    fn = WriteToSinkFn(Resources.from_config(Config(feeds=(), store_dir=tmp_path), use_outbox=False))
    fn._sink = HalfSink()
    arts = [Article(id=f"id{i}", url=f"https://contoh.id/{i}", canonical_url=f"https://contoh.id/{i}", source="x",
                    title="t", text="x", published=None, first_seen=utcnow())
            for i in range(2)]
    fn.start_bundle()
    for a in arts:
        list(fn.process(a))
    with pytest.raises(SinkUnavailable, match="1 of 2 articles not acknowledged"):
        list(fn.finish_bundle())
