"""End to end: ``newsmon run`` -> real Debian Alertmanager (127.0.0.1) -> a local webhook,
for article alerts (NewArticle) built from the seeds in ``../shared/seeds``.

One test, in steps, with the shipped route tree (tests/promstack.py swaps the receivers for
the local webhook and sets group_wait to 1 s):

1. after a warm-up article, a seed appears in a local feed (poll interval 2 s) -> exactly one notification, on the
   topic's route, whose body carries the seed's headline, outlet and URL; the time from
   publication to the webhook is printed (run with ``-s``) - the README's figure;
2. a syndicated copy of it appears in another outlet's feed -> no second notification;
3. newsmon restarts -> no repeat;
4. Alertmanager stops, a second seed appears (newsmon keeps indexing it), Alertmanager
   starts again -> the alert for the second seed arrives.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from connectors.alertmanager import AlertStore
from tests.e2e import env, search, start_run, stop, wait_for
from tests.localserver import LocalServer
from tests.newssite import NewsSite, seed_stories
from tests.promstack import AlertmanagerStack, Notification, free_port, require_binaries

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLL = 2.0
QUIET = 4.0
WARM_UP_TITLE = "Harga cabai rawit di pasar induk naik menjelang akhir pekan"
WARM_UP_TEXT = [
    "Harga cabai rawit merah di sejumlah pasar induk naik tajam menjelang akhir pekan karena pasokan dari "
    "sentra produksi berkurang akibat hujan.",
    "Pedagang berharap pasokan kembali normal pekan depan sehingga harga cabai turun.",
]  # group_wait 1 s + a poll + a cycle: a second notification would have come by then


def _articles(n: Notification) -> list[dict]:
    return [a for a in n.alerts if a["labels"].get("alertname") == "NewArticle"]


def _new_article_notifications(stack: AlertmanagerStack) -> list[Notification]:
    return [n for n in stack.webhook.notifications() if _articles(n)]


def _metric(port: int, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:  # 127.0.0.1 only
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_article_alerts_end_to_end(tmp_path: Path) -> None:
    seeds = seed_stories()
    if len(seeds) < 5:
        pytest.skip("../shared/seeds absent: the article-alert test publishes the seed articles")
    require_binaries("alertmanager")
    store = tmp_path / "store"
    log_path = tmp_path / "newsmon.log"
    metrics_port = free_port()
    with LocalServer() as server, AlertmanagerStack(tmp_path / "am") as stack:
        site = NewsSite(server, "/rss.xml", name="Kabar Uji")
        copies = NewsSite(server, "/salinan.xml", name="Warta Salinan")
        config = tmp_path / "newsmon.yaml"
        config.write_text(yaml.safe_dump({"feeds": [
            {"url": site.feed_url, "id": "kabar-uji", "name": "Kabar Uji"},
            {"url": copies.feed_url, "id": "warta-salinan", "name": "Warta Salinan"},
        ]}), encoding="utf-8")
        environ = env(NEWSMON_ALERTMANAGER_URL=stack.url)
        args = ("--config", str(config), "--poll-interval", str(POLL), "--metrics-port", str(metrics_port))

        def newsmon_log() -> str:
            return log_path.read_text(errors="replace")[-3000:]

        def polls() -> int:
            return sum(1 for r in server.requests if r.path == "/rss.xml")

        proc = start_run(store, [], *args, log_path=log_path, environ=environ)
        try:
            # warm-up (the first pipeline of a process imports and builds everything): an
            # unrelated article, so the figure below is the steady-state latency
            warm = site.publish(WARM_UP_TITLE, WARM_UP_TEXT)
            wait_for(lambda: any(h["url"] == site.url_of(warm) for h in search(store, "cabai", environ=environ)),
                     timeout=90, what="the warm-up article to be indexed")
            time.sleep(1.0)

            # 1. a seed appears -> one notification with its headline, outlet and URL
            title, paras = seeds[1]
            t_pub = time.time()
            story = site.publish(title, paras)
            first = stack.webhook.wait_for(lambda n: n.has_alert("NewArticle", topic="russia-dprk"), 60)
            assert first is not None, f"no NewArticle notification\n{stack.logs()}\n--- newsmon\n{newsmon_log()}"
            latency = first.received_at - t_pub
            assert first.receiver == "articles-russia-dprk"
            body = json.dumps(first.payload, ensure_ascii=False)
            assert title in body and "Kabar Uji" in body and site.url_of(story) in body
            (alert,) = _articles(first)
            ann = alert["annotations"]
            assert ann["headline"] == title and ann["outlet"] == "Kabar Uji" and ann["url"] == site.url_of(story)
            assert ann["published_wib"].endswith(" WIB") and ann["published_utc"].endswith(" UTC")
            assert ann["evidence"] and ann["evidence"] in " ".join(" ".join(paras).split()) + " " + title
            assert ann["outlets"] == "1"
            assert alert["labels"]["story_id"] and alert["labels"]["source"] == "Kabar Uji"
            print(f"\npublication -> NewArticle at webhook: {latency:.2f} s (poll {POLL:.0f} s, group_wait 1 s)")

            # 2. a syndicated copy in another outlet -> indexed as a duplicate, no notification
            copies.publish(title, paras, slug="salinan-1")  # same server: a distinct URL
            wait_for(lambda: len([h for h in search(store, "putin", environ=environ, all_=True)
                                  if h["duplicate_of"]]) >= 1, timeout=60, what="the copy to be indexed")
            time.sleep(QUIET)
            assert len(_new_article_notifications(stack)) == 1, stack.webhook.notifications()

            # 3. restart newsmon -> no repeat
            stop(proc, signal.SIGTERM, timeout=15)
            before = polls()
            proc = start_run(store, [], *args, log_path=log_path, environ=environ)
            wait_for(lambda: polls() >= before + 2, timeout=60, what="polls after the restart")
            time.sleep(QUIET)
            assert len(_new_article_notifications(stack)) == 1, stack.webhook.notifications()
            memory = AlertStore.in_store(store)
            try:  # what newsmon remembers having announced, across the restart
                assert ("russia-dprk", alert["labels"]["story_id"]) in {(t, s) for t, s, _ in memory.announced()}
                assert memory.size() == 0  # nothing left to send
            finally:
                memory.close()

            # 4. Alertmanager down: newsmon keeps indexing, the alert waits and arrives later
            stack.stop_alertmanager()
            title4, paras4 = seeds[4]
            story4 = site.publish(title4, paras4)
            wait_for(lambda: any(h["url"] == site.url_of(story4) for h in search(store, "Stoltenberg", environ=environ)),
                     timeout=60, what="the second seed to be indexed while Alertmanager is down")
            wait_for(lambda: _metric(metrics_port, "newsmon_alerts_sent_total", outcome="failed") >= 1,
                     timeout=30, what="a failed delivery attempt")
            stack.start_alertmanager()
            t_up = time.time()
            late = stack.webhook.wait_for(
                lambda n: any(a["annotations"].get("url") == site.url_of(story4) for a in _articles(n)), 90
            )
            assert late is not None, f"the queued alert never arrived\n{stack.logs()}\n--- newsmon\n{newsmon_log()}"
            print(f"after the outage: delivered {late.received_at - t_up:.2f} s after Alertmanager came back")
            nato = stack.webhook.wait_for(lambda n: n.has_alert("NewArticle", topic="nato-reaction"), 30)
            assert nato is not None and nato.receiver == "articles-nato-reaction", stack.webhook.notifications()
            for n in (late, nato):
                for a in _articles(n):
                    assert a["annotations"]["headline"] == title4 and a["annotations"]["url"] == site.url_of(story4)
            # the first seed was never announced again (restart, outage, copies)
            again = [n for n in _new_article_notifications(stack) if site.url_of(story) in json.dumps(n.payload)]
            assert again == [first]
            assert proc.poll() is None, "newsmon exited on its own"
        finally:
            if proc.poll() is None:
                stop(proc, signal.SIGTERM, timeout=15)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
