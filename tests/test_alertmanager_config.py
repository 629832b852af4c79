"""The shipped Alertmanager configuration for NewArticle alerts, checked with the real amtool:
routes per topic, grouping, and the notification templates rendered (``amtool template
render``) from alerts built by ``connectors.alertmanager.build_alert``.

Run with ``-s`` to see a rendered example message. The article texts are invented.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.alertmanager import build_alert
from pipelines.config import AlertsConfig
from tests.promstack import SHIPPED_ALERTMANAGER, require_binaries
from tests.test_alertmanager import article

AM_DIR = SHIPPED_ALERTMANAGER.parent
SHIPPED_TOPICS = ("russia-dprk", "nato-reaction")
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binaries("amtool")["amtool"]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, cwd=AM_DIR, capture_output=True, text=True, timeout=60)


def routes() -> list[dict[str, Any]]:
    return list(yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))["route"]["routes"])


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))


def test_check_config_loads_the_templates(amtool: str) -> None:
    result = run([amtool, "check-config", str(SHIPPED_ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout


@pytest.mark.parametrize("topic", [*SHIPPED_TOPICS, "some-new-topic"])
def test_new_article_routes_per_topic(amtool: str, topic: str) -> None:
    result = run([amtool, "config", "routes", "test", f"--config.file={SHIPPED_ALERTMANAGER}",
                  "alertname=NewArticle", f"topic={topic}", "story_id=abc", "source=Kabar Uji"])
    assert result.returncode == 0, result.stderr
    expected = f"articles-{topic}" if topic in SHIPPED_TOPICS else "articles-default"
    assert result.stdout.strip() == expected


def test_article_routes_group_a_burst_per_topic_and_each_headline_is_sent_once() -> None:
    article_routes = [r for r in routes() if 'alertname="NewArticle"' in r["matchers"]]
    assert len(article_routes) == len(SHIPPED_TOPICS) + 1
    receivers = {r["name"]: r for r in yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())["receivers"]}
    resolve_after = AlertsConfig().resolve_after
    for route in article_routes:
        assert route["group_by"] == ["alertname", "topic"]
        # an alert ends before the group's next message, so no headline is listed twice
        assert resolve_after < _duration(route["group_interval"]), route
        assert _duration(route["repeat_interval"]) > resolve_after
        integrations = [c for k, cs in receivers[route["receiver"]].items() if k.endswith("_configs") for c in cs]
        assert integrations and all(c.get("send_resolved") is False for c in integrations)
    kinds = {k for r in article_routes for k in receivers[r["receiver"]] if k.endswith("_configs")}
    assert kinds == {"email_configs", "slack_configs", "webhook_configs"}


def template_data(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Alertmanager's notification data for two article alerts of one topic (a burst)."""
    first = article(1, published=NOW - timedelta(minutes=3))
    second = article(2, story="story-2", source="Warta <Uji> & Co", published=NOW - timedelta(minutes=1))
    alerts = [
        build_alert(first, "russia-dprk", kibana_url="https://kibana.example:5601", outlets=1, now=NOW),
        build_alert(second, "russia-dprk", kibana_url=None, outlets=3, now=NOW),
    ]
    data = {
        "receiver": "articles-russia-dprk",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": a["labels"], "annotations": a["annotations"], "startsAt": a["startsAt"],
             "endsAt": "2026-03-04T05:10:07Z", "generatorURL": a["generatorURL"], "fingerprint": str(i)}
            for i, a in enumerate(alerts)
        ],
        "groupLabels": {"alertname": "NewArticle", "topic": "russia-dprk"},
        "commonLabels": {"alertname": "NewArticle", "topic": "russia-dprk", "severity": "info", "category": "coverage"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path, alerts


def render(amtool: str, data: Path, name: str, kind: str = "text") -> str:
    result = run([amtool, "template", "render", "--template.glob=templates/*.tmpl", f"--template.data={data}",
                  f"--template.type={kind}", f'--template.text={{{{ template "{name}" . }}}}'])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_templates_render_the_headlines_bilingually(amtool: str, tmp_path: Path) -> None:
    data, alerts = template_data(tmp_path)
    subject = render(amtool, data, "newsmon.articles.subject").strip()
    assert subject == "[newsmon] 2 berita baru / new articles: russia-dprk"
    text = render(amtool, data, "newsmon.articles.text")
    print("\n--- email subject\n" + subject + "\n--- email text\n" + text)
    assert "Berita baru untuk topik" in text and "New articles for topic" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("* ")]
    assert len(lines) == 2
    for line, alert in zip(lines, alerts, strict=True):
        ann = alert["annotations"]
        assert line == (f"* {ann['headline']} — {ann['outlet']} — {ann['published_wib']} "
                        f"({ann['published_utc']}) — {ann['url']}")
    assert text.count("Kutipan / Evidence: Putin dan Kim Jong Un meneken") == 2
    assert "Dimuat / Carried by: 3 media / outlet(s)" in text
    assert text.count("Kibana: https://kibana.example:5601/app/discover") == 1  # only where there is a link

    html = render(amtool, data, "newsmon.articles.html", "html")
    assert html.count("<li>") == 2 and "Warta &lt;Uji&gt; &amp; Co" in html and "<Uji>" not in html
    assert f'<a href="{alerts[0]["annotations"]["url"]}">' in html

    slack = render(amtool, data, "newsmon.articles.slack.text")
    print("--- slack\n" + slack)
    assert f"*<{alerts[0]['annotations']['url']}|{alerts[0]['annotations']['headline']}>*" in slack
    assert "Warta &lt;Uji&gt; &amp; Co" in slack
    assert render(amtool, data, "newsmon.articles.slack.title").strip() == "2 berita baru / new articles: russia-dprk"


def test_receivers_use_the_templates() -> None:
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
    assert config["templates"] == ["templates/*.tmpl"]
    for receiver in config["receivers"]:
        if not receiver["name"].startswith("articles-"):
            continue
        for email in receiver.get("email_configs", []):
            assert "newsmon.articles.text" in email["text"] and "newsmon.articles.html" in email["html"]
            assert "newsmon.articles.subject" in email["headers"]["Subject"]
        for slack in receiver.get("slack_configs", []):
            assert "newsmon.articles.slack.text" in slack["text"]
