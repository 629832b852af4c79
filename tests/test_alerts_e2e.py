"""End to end: metrics -> real Prometheus -> real Alertmanager -> a local webhook.

Two tests, both with the Debian binaries on 127.0.0.1 free ports (tests/promstack.py):

* ``test_stub_exporter_alerts_per_topic`` drives the stack from an in-process exporter
  using the project's own metric definitions; it proves rules, routing and grouping
  without the pipeline.
* ``test_pipeline_publication_to_alert`` runs ``newsmon run`` against a local news site,
  publishes a Russia-DPRK article, expects a NewCoverage alert for ``russia-dprk`` (and
  none for ``nato-reaction``), then publishes a NATO-reaction article and expects the
  second alert. It prints the time from publication (the item appearing in the served
  feed) to the webhook receiving the alert; run with ``-s`` to see it.

The article texts are invented for these tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from connectors.metrics import Metrics
from tests.promstack import Notification, PromStack, free_port, http_get, require_binaries

ALERT_TIMEOUT = 90.0
QUIET_GRACE = 4.0  # seconds (several 1 s evaluations + group_wait) that must stay silent

RUSSIA_DPRK_TITLE = "Putin dan Kim Jong Un Teken Pakta Pertahanan, Rusia Janji Pasok Senjata ke Korea Utara"
RUSSIA_DPRK_TEXT = [
    ("Presiden Rusia Vladimir Putin dan pemimpin Korea Utara Kim Jong Un menandatangani perjanjian "
    "kemitraan strategis menyeluruh di Pyongyang pada Rabu, lengkap dengan pasal saling membantu "
    "jika salah satu negara diserang."),
    ("Dalam kunjungan kenegaraan pertamanya ke Korut dalam 24 tahun, Putin mengatakan Moskow siap "
    "memperluas kerja sama militer dan teknologi dengan Pyongyang. Kremlin menyebut pakta itu "
    "sebagai tonggak baru hubungan Rusia dan Korea Utara."),
    ("Pejabat intelijen Korea Selatan menuding Korea Utara telah mengirim peluru artileri dan rudal "
    "balistik ke Rusia, sementara Moskow disebut membalas dengan bantuan teknologi satelit. "
    "Kim Jong Un menyatakan dukungan penuh bagi operasi militer Rusia."),
    ("Kedua pemimpin juga sepakat membangun jembatan jalan raya di perbatasan Rusia dan Korea Utara "
    "serta meningkatkan perdagangan, meski sanksi PBB melarang jual beli senjata dengan RDRK."),
]

NATO_TITLE = "Sekjen NATO Kecam Pakta Militer Rusia dan Korea Utara, Sekutu Siaga"
NATO_TEXT = [
    ("Sekretaris Jenderal NATO Mark Rutte mengecam perjanjian pertahanan antara Rusia dan Korea Utara, "
    "menyebutnya ancaman bagi keamanan Eropa dan kawasan Indo-Pasifik."),
    ("Dalam konferensi pers di markas NATO di Brussel, Rutte mengatakan aliansi mencermati pasokan "
    "rudal dan amunisi dari Pyongyang ke Moskow serta dukungan teknologi Rusia bagi program senjata "
    "Korea Utara. Menurut dia, NATO akan memperkuat kerja sama dengan mitra di Asia."),
    ("Pakta Pertahanan Atlantik Utara itu menilai hubungan militer Putin dan Kim Jong Un yang makin "
    "erat menunjukkan bahwa keamanan Atlantik dan Pasifik saling terkait. Para menteri pertahanan "
    "NATO dijadwalkan membahas tanggapan sekutu pekan depan."),
]


def _coverage(topic: str):  # type: ignore[no-untyped-def]
    return lambda n: n.has_alert("NewCoverage", topic=topic)


def _topic_notifications(stack: PromStack, topic: str) -> list[Notification]:
    return [n for n in stack.webhook.notifications() if n.has_alert("NewCoverage", topic=topic)]


def _assert_quiet(stack: PromStack, topic: str) -> None:
    """No alert for ``topic`` in Prometheus (pending or firing) nor at the webhook."""
    time.sleep(QUIET_GRACE)
    assert not [a for a in stack.alerts() if a["labels"].get("topic") == topic], stack.alerts()
    assert _topic_notifications(stack, topic) == []


def _wait_scraped(stack: PromStack, topics: tuple[str, ...]) -> None:
    """Prometheus has at least two samples of every topic's series (so increase() can see 0 -> 1)."""
    expr = "count_over_time(newsmon_articles_tagged_total[1m]) >= 2"
    stack.wait_query(
        expr, timeout=60, predicate=lambda r: {s["metric"].get("topic") for s in r} >= set(topics)
    )


@pytest.mark.slow
def test_stub_exporter_alerts_per_topic(tmp_path: Path) -> None:
    require_binaries("prometheus", "alertmanager")
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.init_series(feeds=["uji"], topics=["russia-dprk", "nato-reaction"], sink="localindex")
    metrics.last_cycle.set(time.time())
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PromStack(tmp_path, scrape_targets=[f"127.0.0.1:{port}"]) as stack:
            _wait_scraped(stack, ("russia-dprk", "nato-reaction"))
            t0 = time.time()
            metrics.articles_tagged.labels("russia-dprk").inc()
            first = stack.webhook.wait_for(_coverage("russia-dprk"), ALERT_TIMEOUT)
            assert first is not None, stack.logs()
            print(f"\nstub exporter: counter increment -> webhook {first.received_at - t0:.2f} s")
            assert first.receiver == "coverage-russia-dprk"
            alert = next(a for a in first.alerts if a["labels"]["alertname"] == "NewCoverage")
            assert alert["annotations"]["article_count"] == "1"
            assert "topics%3A%22russia-dprk%22" in alert["annotations"]["kibana_url"]
            _assert_quiet(stack, "nato-reaction")

            # More russia-dprk articles in the same burst: still one notification.
            metrics.articles_tagged.labels("russia-dprk").inc(2)
            metrics.articles_tagged.labels("nato-reaction").inc()
            second = stack.webhook.wait_for(_coverage("nato-reaction"), ALERT_TIMEOUT)
            assert second is not None, stack.logs()
            assert second.receiver == "coverage-nato-reaction"
            time.sleep(QUIET_GRACE)
            assert len(_topic_notifications(stack, "russia-dprk")) == 1
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
@pytest.mark.slow
def test_pipeline_publication_to_alert(tmp_path: Path) -> None:
    require_binaries("prometheus", "alertmanager")
    from tests.e2e import start_run, stop
    from tests.localserver import LocalServer
    from tests.newssite import NewsSite

    metrics_port = free_port()
    with LocalServer() as server:
        site = NewsSite(server, "/rss.xml", name="Kabar Uji")
        store = tmp_path / "store"
        proc = start_run(
            store,
            [site.feed_url],
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
            log_path=tmp_path / "newsmon.log",
        )
        try:
            with PromStack(tmp_path / "stack", scrape_targets=[f"127.0.0.1:{metrics_port}"]) as stack:
                _wait_scraped(stack, ("russia-dprk", "nato-reaction"))
                status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
                assert status == 200 and b'newsmon_articles_tagged_total{topic="russia-dprk"} 0.0' in body

                t_pub = time.time()
                site.publish(RUSSIA_DPRK_TITLE, RUSSIA_DPRK_TEXT)
                first = stack.webhook.wait_for(_coverage("russia-dprk"), ALERT_TIMEOUT)
                log = (tmp_path / "newsmon.log").read_text(errors="replace")[-3000:]
                assert first is not None, f"no russia-dprk alert\n{stack.logs()}\n--- newsmon\n{log}"
                latency1 = first.received_at - t_pub
                assert first.receiver == "coverage-russia-dprk"
                _assert_quiet(stack, "nato-reaction")

                t_pub2 = time.time()
                site.publish(NATO_TITLE, NATO_TEXT)
                second = stack.webhook.wait_for(_coverage("nato-reaction"), ALERT_TIMEOUT)
                log = (tmp_path / "newsmon.log").read_text(errors="replace")[-3000:]
                assert second is not None, f"no nato-reaction alert\n{stack.logs()}\n--- newsmon\n{log}"
                latency2 = second.received_at - t_pub2
                assert second.receiver == "coverage-nato-reaction"
                # The NATO article may also carry russia-dprk: same burst, no second notification.
                assert len(_topic_notifications(stack, "russia-dprk")) == 1
                print(
                    f"\npublication -> alert at webhook: russia-dprk {latency1:.2f} s, "
                    f"nato-reaction {latency2:.2f} s (poll 1 s, scrape/eval 1 s, group_wait 1 s)"
                )
        finally:
            stop(proc, timeout=15.0)
