"""Article alerts (connectors/alertmanager.py): alert shape, decisions, the on-disk queue and
the sender against a local stand-in Alertmanager, plus the hook in ``write_batch``.

The real Alertmanager is exercised in tests/test_alerts_articles_e2e.py; the templates and
routes with amtool in tests/test_alertmanager_config.py. Article texts here are invented.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors import metrics
from connectors.alertmanager import (
    ALERTNAME,
    AlertNotifier,
    AlertSender,
    AlertStore,
    build_alert,
    discover_link,
    evidence_sentence,
    format_times,
)
from connectors.sink import WriteResult
from pipelines.config import AlertsConfig, ConfigError, default_config, from_environment, parse_config
from pipelines.process import Resources, write_batch
from transforms.records import Article, MatchedTerm, Syndication, TopicEvidence

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
TITLE_SENTENCE = "Putin dan Kim bertemu lagi"
WEAK = "Cuaca di Pyongyang cerah pada pagi itu."
STRONG = "Putin dan Kim Jong Un meneken pakta pertahanan Rusia dan Korea Utara."


def article(
    n: int = 1,
    *,
    story: str | None = "story-1",
    source: str = "Kabar Uji",
    topics: tuple[str, ...] = ("russia-dprk",),
    duplicate_of: str | None = None,
    published: datetime | None = None,
    also: tuple[Syndication, ...] = (),
) -> Article:
    matched = (
        MatchedTerm("putin", "Putin", "title", 0, 5, TITLE_SENTENCE, 2.0, "russia"),
        MatchedTerm("pyongyang", "Pyongyang", "text", 9, 18, WEAK, 1.0, "dprk"),
        MatchedTerm("putin", "Putin", "text", 50, 55, STRONG, 2.0, "russia"),
        MatchedTerm("kim jong un", "Kim Jong Un", "text", 64, 75, STRONG, 2.0, "dprk"),
        MatchedTerm("pakta", "pakta", "text", 84, 89, STRONG, 1.5, ""),
    )
    evidence = tuple(TopicEvidence(t, 7.5, 4.0, "1", matched) for t in topics)
    return Article(
        id=f"{n:064x}",
        url=f"https://kabar.example/berita/{n}",
        canonical_url=f"https://kabar.example/berita/{n}",
        source=source,
        title=f"{TITLE_SENTENCE} ({n})",
        text=f"{WEAK} {STRONG}",
        published=published or NOW - timedelta(minutes=5),
        first_seen=NOW - timedelta(minutes=1),
        feed_id="kabar-uji",
        topics=topics,
        topic_evidence=evidence,
        duplicate_of=duplicate_of,
        duplicate_kind="near" if duplicate_of else None,
        story_id=story,
        also_published_at=also,
    )


CFG = AlertsConfig(urls=("http://127.0.0.1:9",), max_age=6 * 3600)


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[metrics.Metrics]:
    m = metrics.Metrics(CollectorRegistry())
    m.init_series(feeds=[], topics=["russia-dprk"], sink="localindex")
    metrics.set_default(m)
    yield m
    metrics.set_default(metrics.Metrics(CollectorRegistry()))


def outcome(m: metrics.Metrics, name: str) -> float:
    return m.registry.get_sample_value("newsmon_alerts_sent_total", {"outcome": name}) or 0.0


# --------------------------------------------------------------------------- the alert itself


def test_alert_has_the_labels_and_annotations_an_analyst_needs() -> None:
    a = article()
    alert = build_alert(a, "russia-dprk", kibana_url="https://kibana.example:5601", outlets=2, now=NOW)
    assert alert["labels"] == {
        "alertname": ALERTNAME,
        "topic": "russia-dprk",
        "source": "Kabar Uji",
        "story_id": "story-1",
        "severity": "info",
        "category": "coverage",
    }
    ann = alert["annotations"]
    assert ann["headline"] == a.title and ann["outlet"] == "Kabar Uji" and ann["url"] == a.url
    assert ann["published_wib"] == "2026-03-04 12:01 WIB"  # 05:01 UTC + 7 h
    assert ann["published_utc"] == "2026-03-04 05:01 UTC"
    assert ann["evidence"] == STRONG
    assert ann["outlets"] == "2"
    assert ann["kibana_url"].startswith("https://kibana.example:5601/app/discover#/?_g=(time:(from:'2026-03-03T05:01:07Z'")
    assert f"_id%3A%22{a.id}%22" in ann["kibana_url"]
    assert ann["description"] == f"{a.title} — Kabar Uji — 2026-03-04 12:01 WIB (2026-03-04 05:01 UTC) — {a.url}"
    assert alert["startsAt"] == "2026-03-04T05:06:07Z" and alert["generatorURL"] == a.url
    json.dumps(alert)  # postable as is


def test_evidence_is_the_heaviest_body_sentence_else_the_title() -> None:
    assert evidence_sentence(article(), "russia-dprk") == STRONG
    title_only = article()
    title_only = Article(**{**{f: getattr(title_only, f) for f in title_only.__slots__}, "topic_evidence": (
        TopicEvidence("russia-dprk", 5, 4, "1", (MatchedTerm("putin", "Putin", "title", 0, 5, TITLE_SENTENCE, 2.0),)),
    )})
    assert evidence_sentence(title_only, "russia-dprk") == TITLE_SENTENCE
    assert evidence_sentence(article(), "nato-reaction") == ""


def test_times_and_links_without_kibana() -> None:
    assert format_times(datetime(2024, 6, 19, 20, 30, tzinfo=timezone.utc)) == (
        "2024-06-20 03:30 WIB",
        "2024-06-19 20:30 UTC",
    )
    assert discover_link(None, article()) == ""
    alert = build_alert(article(), "russia-dprk", kibana_url=None, outlets=1, now=NOW)
    assert "kibana_url" not in alert["annotations"]


# --------------------------------------------------------------------------- decisions


def test_one_story_one_alert_copies_count_outlets_and_memory_survives_restart(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite")
    first = article(1)
    copy = article(2, source="Warta Salinan", duplicate_of=first.id)
    same_story = article(3, source="Harian Lain")
    counts = store.offer([first, copy], CFG, kibana_url=None, now=NOW)
    assert counts == {"queued": 1, "too_old": 0, "repeat": 0, "dropped": 0}
    (queued,) = store.due(NOW.timestamp())
    assert queued.alert["annotations"]["headline"] == first.title
    assert queued.alert["annotations"]["outlets"] == "2"  # the copy's outlet counts
    assert store.offer([same_story, first], CFG, kibana_url=None, now=NOW)["repeat"] == 2
    store.close()
    reopened = AlertStore(tmp_path / "alerts.sqlite")  # a restart of newsmon
    assert reopened.offer([first], CFG, kibana_url=None, now=NOW + timedelta(hours=1))["repeat"] == 1
    assert reopened.size() == 1 and reopened.outlet_count("story-1") == 3
    # the same story is a new announcement for another topic
    nato = article(4, topics=("nato-reaction",))
    assert reopened.offer([nato], CFG, kibana_url=None, now=NOW)["queued"] == 1


def test_old_articles_unwatched_topics_and_record_only_send_nothing(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite")
    old = article(1, story="old", published=NOW - timedelta(hours=7))
    assert store.offer([old], CFG, kibana_url=None, now=NOW)["too_old"] == 1
    watched = AlertsConfig(urls=CFG.urls, topics=("nato-reaction",))
    assert store.offer([article(2, story="s2")], watched, kibana_url=None, now=NOW)["queued"] == 0
    assert store.offer([article(3, story="s3")], CFG, kibana_url=None, now=NOW, record_only=True)["queued"] == 0
    assert store.size() == 0
    # the backfill remembered s3: a later run does not announce it
    assert store.offer([article(4, story="s3")], CFG, kibana_url=None, now=NOW)["repeat"] == 1
    # an article without story_id is its own story
    assert store.offer([article(5, story=None)], CFG, kibana_url=None, now=NOW)["queued"] == 1


def test_queue_is_bounded_dropping_the_oldest(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite")
    small = AlertsConfig(urls=CFG.urls, queue_max=3)
    counts = store.offer([article(i, story=f"s{i}") for i in range(5)], small, kibana_url=None, now=NOW)
    assert counts["queued"] == 5 and counts["dropped"] == 2
    assert [q.story for q in store.due(NOW.timestamp())] == ["s2", "s3", "s4"]


# --------------------------------------------------------------------------- a stand-in Alertmanager


class FakeAlertmanager:
    """Records POST /api/v2/alerts bodies; status and delay are settable while running."""

    def __init__(self) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.status = 200
        self.delay = 0.0
        self.reject_url: str | None = None  # answer 400 to any post carrying this article URL
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(owner.delay)
                alerts = json.loads(body)
                status = owner.status if self.path == "/api/v2/alerts" else 404
                if owner.reject_url and any(a["annotations"].get("url") == owner.reject_url for a in alerts):
                    status = 400
                if status == 200:
                    owner.posts.append(alerts)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_am() -> Iterator[FakeAlertmanager]:
    am = FakeAlertmanager()
    yield am
    am.close()


def _queue(tmp_path: Path, cfg: AlertsConfig, *arts: Article) -> None:
    notifier = AlertNotifier(cfg, tmp_path, clock=lambda: NOW)
    notifier(list(arts))
    notifier.close()


def test_sender_posts_v2_alerts_with_ends_at_and_empties_the_queue(
    tmp_path: Path, fake_am: FakeAlertmanager, fresh_metrics: metrics.Metrics
) -> None:
    cfg = AlertsConfig(urls=(fake_am.url,), resolve_after=240)
    _queue(tmp_path, cfg, article(1))
    clock = NOW.timestamp() + 1
    sender = AlertSender(cfg, tmp_path, clock=lambda: clock)
    sender.send_due()
    (posted,) = fake_am.posts
    (alert,) = posted
    assert alert["labels"]["alertname"] == "NewArticle" and alert["annotations"]["outlet"] == "Kabar Uji"
    assert alert["endsAt"] == "2026-03-04T05:10:08Z"  # post time + resolve_after
    assert sender.store.size() == 0 and outcome(fresh_metrics, "sent") == 1
    sender.send_due()
    assert len(fake_am.posts) == 1  # delivered once


def test_down_alertmanager_retries_with_backoff_then_delivers(
    tmp_path: Path, fake_am: FakeAlertmanager, fresh_metrics: metrics.Metrics
) -> None:
    cfg = AlertsConfig(urls=(fake_am.url,))
    _queue(tmp_path, cfg, article(1))
    now = [NOW.timestamp()]
    sender = AlertSender(cfg, tmp_path, clock=lambda: now[0])
    fake_am.status = 503
    sender.send_due()
    assert outcome(fresh_metrics, "failed") == 1 and sender.store.size() == 1
    sender.send_due()  # not due yet: backoff
    assert outcome(fresh_metrics, "failed") == 1
    nxt = sender.store.next_due()
    assert nxt is not None and now[0] + 0.5 <= nxt <= now[0] + 1.0
    fake_am.status = 200
    now[0] = nxt
    sender.send_due()
    assert len(fake_am.posts) == 1 and outcome(fresh_metrics, "sent") == 1 and sender.store.size() == 0


def test_undelivered_alerts_expire(tmp_path: Path, fresh_metrics: metrics.Metrics) -> None:
    cfg = AlertsConfig(urls=("http://127.0.0.1:9",), expire_after=600)
    _queue(tmp_path, cfg, article(1))
    sender = AlertSender(cfg, tmp_path, clock=lambda: NOW.timestamp() + 601)
    sender.send_due()
    assert sender.store.size() == 0 and outcome(fresh_metrics, "expired") == 1 and outcome(fresh_metrics, "sent") == 0


def test_one_of_two_alertmanagers_down_still_delivers(tmp_path: Path, fake_am: FakeAlertmanager) -> None:
    cfg = AlertsConfig(urls=("http://127.0.0.1:9", fake_am.url))
    _queue(tmp_path, cfg, article(1))
    sender = AlertSender(cfg, tmp_path, clock=lambda: NOW.timestamp())
    sender.send_due()
    assert len(fake_am.posts) == 1 and sender.store.size() == 0


def test_an_alert_alertmanager_rejects_is_dropped_and_the_rest_delivered(
    tmp_path: Path, fake_am: FakeAlertmanager, fresh_metrics: metrics.Metrics
) -> None:
    cfg = AlertsConfig(urls=(fake_am.url,))
    arts = [article(i, story=f"s{i}") for i in range(3)]
    _queue(tmp_path, cfg, *arts)
    fake_am.reject_url = arts[1].url
    sender = AlertSender(cfg, tmp_path, clock=lambda: NOW.timestamp())
    sender.send_due()
    delivered = [a["annotations"]["url"] for post in fake_am.posts for a in post]
    assert delivered == [arts[0].url, arts[2].url]
    assert outcome(fresh_metrics, "dropped") == 1 and outcome(fresh_metrics, "sent") == 2
    assert outcome(fresh_metrics, "failed") == 0 and sender.store.size() == 0


def test_sender_thread_wakes_on_new_alerts_and_stops_while_alertmanager_hangs(
    tmp_path: Path, fake_am: FakeAlertmanager
) -> None:
    cfg = AlertsConfig(urls=(fake_am.url,), timeout=1.0)
    sender = AlertSender(cfg, tmp_path).start()
    try:
        notifier = AlertNotifier(cfg, tmp_path)
        t0 = time.monotonic()
        notifier([article(1, published=datetime.now(timezone.utc))])
        while not fake_am.posts and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert fake_am.posts, "the sender did not post"
        print(f"\nqueued -> posted {time.monotonic() - t0:.3f} s")
        assert time.monotonic() - t0 < 1.0
        fake_am.delay = 30.0  # Alertmanager hangs: queueing stays instant
        t1 = time.monotonic()
        notifier([article(2, story="s2", published=datetime.now(timezone.utc))])
        assert time.monotonic() - t1 < 0.5
        notifier.close()
        time.sleep(0.2)
    finally:
        t2 = time.monotonic()
        sender.stop(timeout=3.0)
        assert time.monotonic() - t2 < 3.5


# --------------------------------------------------------------------------- the hook in write_batch


class StubSink:
    name = "localindex"

    def __init__(self, ack: int) -> None:
        self.ack = ack

    def write(self, articles: list[Article]) -> WriteResult:
        return WriteResult(acknowledged=tuple(a.id for a in articles[: self.ack]),
                           retry=tuple(a.id for a in articles[self.ack:]))

    def close(self) -> None:
        pass


def test_write_batch_hands_only_acknowledged_articles_to_the_hook() -> None:
    seen: list[list[str]] = []
    batch = [article(i, story=f"s{i}") for i in range(3)]
    done = write_batch(StubSink(ack=2), batch, None, on_acknowledged=lambda arts: seen.append([a.id for a in arts]))
    assert done == [batch[0].id, batch[1].id]
    assert seen == [[batch[0].id, batch[1].id]]


def test_resources_open_the_hook_only_when_configured(tmp_path: Path) -> None:
    base = default_config().replace(store_dir=tmp_path)
    assert Resources.from_config(base).open_alert_hook() is None
    cfg = base.replace(alerts=AlertsConfig(urls=("http://am:9093",)))
    hook = Resources.from_config(cfg).open_alert_hook()
    assert isinstance(hook, AlertNotifier) and hook.record_only  # until `run` starts the sender
    hook.close()
    assert Resources.from_config(cfg, use_outbox=False).open_alert_hook() is None  # distributed runners


def test_a_broken_alert_store_never_breaks_indexing(tmp_path: Path, fresh_metrics: metrics.Metrics) -> None:
    notifier = AlertNotifier(CFG, tmp_path)
    notifier.store.close()  # any SQLite failure
    batch = [article(1)]
    assert write_batch(StubSink(ack=1), batch, None, on_acknowledged=notifier) == [batch[0].id]
    assert outcome(fresh_metrics, "dropped") == 1


# --------------------------------------------------------------------------- configuration


def test_alerts_configuration_from_yaml_and_environment() -> None:
    cfg = parse_config(
        {"alerts": {"urls": "http://am:9093", "topics": ["russia-dprk"], "max_age": 3600}}, source="x.yaml"
    )
    assert cfg.alerts.urls == ("http://am:9093",) and cfg.alerts.topics == ("russia-dprk",)
    assert cfg.alerts.max_age == 3600.0 and cfg.alerts.enabled
    env = from_environment(cfg, {"NEWSMON_ALERTMANAGER_URL": "http://a:9093, http://b:9093"})
    assert env.alerts.urls == ("http://a:9093", "http://b:9093") and env.alerts.max_age == 3600.0
    with pytest.raises(ConfigError, match=r"x.yaml: alerts.urls\[0\]: 'ftp://x' is not an http\(s\) URL"):
        parse_config({"alerts": {"urls": ["ftp://x"]}}, source="x.yaml")
    with pytest.raises(ConfigError, match="alerts.bogus: unknown key"):
        parse_config({"alerts": {"bogus": 1}}, source="x.yaml")
    with pytest.raises(ConfigError, match="NEWSMON_ALERTMANAGER_URL"):
        from_environment(cfg, {"NEWSMON_ALERTMANAGER_URL": "not a url"})
    assert not default_config().alerts.enabled


def test_alert_outcome_series_exist_at_zero(fresh_metrics: metrics.Metrics) -> None:
    for name in ("sent", "failed", "expired", "dropped", "too_old", "repeat"):
        assert fresh_metrics.registry.get_sample_value("newsmon_alerts_sent_total", {"outcome": name}) == 0.0


# --------------------------------------------------------------------------- the local driver


def _driver(tmp_path: Path, feed_url: str, am_url: str) -> Any:
    import dataclasses

    from pipelines.config import Config, FeedConfig, FetchConfig
    from pipelines.local import LocalDriver

    cfg = Config(
        feeds=(FeedConfig(url=feed_url, id="uji", name="Kabar Uji", min_interval=1, max_interval=1),),
        store_dir=tmp_path / "store",
        fetch=dataclasses.replace(FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, timeout=5.0)),
        metrics_port=0,
        alerts=AlertsConfig(urls=(am_url,)),
    )
    return LocalDriver(cfg)


def test_driver_backfill_remembers_and_run_sends_including_outbox_resends(
    tmp_path: Path, fake_am: FakeAlertmanager, fresh_metrics: metrics.Metrics
) -> None:
    from pipelines.local import CycleReport
    from tests.localserver import LocalServer
    from tests.newssite import NewsSite
    from tests.test_alerts_e2e import NATO_TEXT, NATO_TITLE, RUSSIA_DPRK_TEXT, RUSSIA_DPRK_TITLE

    with LocalServer() as server:
        site = NewsSite(server)
        site.publish(RUSSIA_DPRK_TITLE, RUSSIA_DPRK_TEXT)
        driver = _driver(tmp_path, site.feed_url, fake_am.url)
        try:
            assert driver.cycle(force_all=True).acknowledged == 1  # like a backfill: no sender
            memory = AlertStore.in_store(tmp_path / "store")
            assert [t for t, _, _ in memory.announced()] == ["russia-dprk"] and memory.size() == 0
            driver.start_alerts()
            assert fresh_metrics.registry.get_sample_value("newsmon_article_alerts_enabled") == 1
            site.publish(NATO_TITLE, NATO_TEXT)
            assert driver.cycle(force_all=True).acknowledged == 1
            # an article acknowledged later, from the outbox (e.g. after an Elasticsearch outage)
            late = article(9, story="outbox-story", published=datetime.now(timezone.utc))
            driver.state.to_outbox([late])
            report = CycleReport()
            driver.resend_outbox(report)
            assert report.resent == 1
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and memory.size():  # the sender empties the queue
                time.sleep(0.05)
            headlines = sorted(a["annotations"]["headline"] for post in fake_am.posts for a in post)
            assert RUSSIA_DPRK_TITLE not in headlines  # remembered during the backfill
            assert NATO_TITLE in headlines and late.title in headlines
            memory.close()
        finally:
            driver.close()
