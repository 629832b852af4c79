"""Static checks of the shipped Prometheus and Alertmanager configuration.

Runs the real tools from the Debian packages: ``promtool check config``, ``promtool
check rules``, ``promtool test rules`` (deploy/prometheus/tests/*.yml) and ``amtool
check-config`` / ``amtool config routes test``. Also checks that every alerting rule
has unit tests that expect it both firing and not firing, that a broken rule makes
those unit tests fail, and that the harness' derived test configurations are valid.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promstack import (
    PROMETHEUS_DIR,
    REPO,
    SHIPPED_ALERTMANAGER,
    SHIPPED_PROMETHEUS,
    SHIPPED_RULES,
    WebhookReceiver,
    alertmanager_test_config,
    prometheus_test_config,
    require_binaries,
)

RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
SHIPPED_TOPICS = ("russia-dprk", "nato-reaction")
EXPECTED_ALERTS = {
    "NewCoverage",
    "FeedFailing",
    "FeedSilent",
    "PipelineDown",
    "IndexingErrors",
    "DeadLetters",
    "AlertDeliveryFailing",
}


def run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, cwd=cwd, capture_output=True, text=True, timeout=120)


def alerting_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binaries("promtool")["promtool"]


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binaries("amtool")["amtool"]


def test_promtool_check_config(promtool: str) -> None:
    result = run([promtool, "check", "config", str(SHIPPED_PROMETHEUS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout


def test_promtool_check_rules(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(SHIPPED_RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = run([promtool, "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_unit_tests_fail_when_a_rule_is_broken(promtool: str, tmp_path: Path) -> None:
    """Proves the unit tests can fail: NewCoverage never firing must be caught."""
    rules = SHIPPED_RULES.read_text(encoding="utf-8")
    broken = rules.replace(
        "(increase(newsmon_articles_tagged_total[10m])) > 0",
        "(increase(newsmon_articles_tagged_total[10m])) > 1e9",
    )
    assert broken != rules
    (tmp_path / "rules.yml").write_text(broken, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    for test in RULE_TESTS:
        shutil.copy(test, tmp_path / "tests" / test.name)
    result = run([promtool, "test", "rules", "tests/coverage_test.yml"], cwd=tmp_path)
    assert result.returncode != 0
    assert "NewCoverage" in result.stdout + result.stderr


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alerting_rules()}
    assert EXPECTED_ALERTS <= names
    assert names - firing == set(), "alerts without a firing unit test"
    assert names - quiet == set(), "alerts without a not-firing unit test"


def test_every_alert_is_documented_and_classified() -> None:
    for rule in alerting_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["labels"]["category"] in {"coverage", "health"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_new_coverage_links_to_kibana_discover_for_the_topic() -> None:
    (rule,) = [r for r in alerting_rules() if r["alert"] == "NewCoverage"]
    link = rule["annotations"]["kibana_url"]
    assert link.startswith("{{ $externalLabels.kibana_url }}/app/discover#/")
    assert "_g=(time:(from:" in link and "$labels.topic" in link
    shipped = yaml.safe_load(SHIPPED_PROMETHEUS.read_text(encoding="utf-8"))
    assert shipped["global"]["external_labels"]["kibana_url"].startswith("http")


def test_amtool_check_config(amtool: str) -> None:
    result = run([amtool, "check-config", str(SHIPPED_ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr


def _route(amtool: str, config: Path, *labels: str) -> str:
    result = run([amtool, "config", "routes", "test", f"--config.file={config}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("topic", SHIPPED_TOPICS)
def test_each_topic_has_its_own_coverage_route(amtool: str, topic: str) -> None:
    assert (
        _route(amtool, SHIPPED_ALERTMANAGER, "alertname=NewCoverage", f"topic={topic}") == f"coverage-{topic}"
    )


def test_unknown_topic_and_health_alerts_routes(amtool: str) -> None:
    assert (
        _route(amtool, SHIPPED_ALERTMANAGER, "alertname=NewCoverage", "topic=some-new-topic")
        == "coverage-default"
    )
    assert _route(amtool, SHIPPED_ALERTMANAGER, "alertname=FeedFailing", "feed=antara-dunia") == "ops"
    assert _route(amtool, SHIPPED_ALERTMANAGER, "alertname=PipelineDown") == "ops"


def test_coverage_routes_group_by_topic_and_skip_resolved() -> None:
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
    coverage_routes = [r for r in config["route"]["routes"] if 'alertname="NewCoverage"' in r["matchers"]]
    assert len(coverage_routes) == len(SHIPPED_TOPICS) + 1
    receivers = {r["name"]: r for r in config["receivers"]}
    for route in coverage_routes:
        assert route["group_by"] == ["alertname", "topic"]
        for key, integrations in receivers[route["receiver"]].items():
            if key.endswith("_configs"):
                assert all(i.get("send_resolved") is False for i in integrations), route["receiver"]
    kinds = {k for r in receivers.values() for k in r if k.endswith("_configs")}
    assert {"webhook_configs", "email_configs", "slack_configs"} <= kinds


def test_install_script_is_idempotent_when_installed() -> None:
    require_binaries("prometheus", "promtool", "alertmanager", "amtool")
    result = run(["sh", str(REPO / ".ci" / "install-prometheus.sh")])
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout


def test_harness_configs_are_valid(promtool: str, amtool: str, tmp_path: Path) -> None:
    webhook = WebhookReceiver()
    try:
        am = alertmanager_test_config(webhook=webhook)
        prom = prometheus_test_config(scrape_targets=["127.0.0.1:1"], alertmanager_target="127.0.0.1:2")
    finally:
        webhook._server.server_close()
    (tmp_path / "am.yml").write_text(yaml.safe_dump(am), encoding="utf-8")
    (tmp_path / "prom.yml").write_text(yaml.safe_dump(prom), encoding="utf-8")
    result = run([amtool, "check-config", str(tmp_path / "am.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([promtool, "check", "config", str(tmp_path / "prom.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    # Same route tree as shipped, receivers now the local webhook.
    for topic in SHIPPED_TOPICS:
        assert (
            _route(amtool, tmp_path / "am.yml", "alertname=NewCoverage", f"topic={topic}")
            == f"coverage-{topic}"
        )
    assert all(list(r) == ["name", "webhook_configs"] for r in am["receivers"])
    assert prom["global"]["evaluation_interval"] == "1s"
