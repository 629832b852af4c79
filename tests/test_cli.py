"""The commands around `run`: backfill, search, feeds check, status (in-process, local servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipelines.cli import main
from tests.localserver import LocalServer, Route
from tests.newssite import NewsSite
from tests.test_local_driver import BANJIR, RUSIA_KORUT


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


def test_backfill_then_search_json(tmp_path: Path, quick_fetch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        extra = site.publish("Banjir rendam ratusan rumah di Bandung", BANJIR)
        site.stories.remove(extra)  # not in the feed: given to backfill as a URL
        args = ["backfill", "--config", str(quick_fetch), "--store", str(store), "--feed", site.feed_url,
                "--url", site.url_of(extra), "--allow-host", "127.0.0.1", "--quiet"]
        assert main(args) == 0
        assert "2 new, 0 already known, 2 stored" in capsys.readouterr().err
        assert main(args) == 0  # idempotent: nothing new the second time
        assert "0 new, 1 already known, 0 stored" in capsys.readouterr().err
    assert main(["search", "banjir", "--store", str(store), "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["url"] for h in hits] == [site.url_of(extra)]
    assert {"id", "url", "title", "source", "published"} <= set(hits[0])
    assert main(["search", "putin pyongyang", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "1. Putin dan Kim Jong Un teken perjanjian di Pyongyang  [russia-dprk]" in out
    assert main(["search", "***", "--store", str(store)]) == 2


def test_feeds_check_reports_conditional_get(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        server.route("/no-etag.xml", Route(body=server.routes["/rss.xml"](  # type: ignore[operator]
            __import__("tests.localserver", fromlist=["Request"]).Request("GET", "/rss.xml", {})).body,
            headers={"Content-Type": "application/rss+xml"}))
        server.route("/broken.xml", Route(status=500))
        code = main(["feeds", "check", "--feed", site.feed_url, "--feed", server.url("/no-etag.xml"),
                     "--feed", server.url("/broken.xml"), "--allow-host", "127.0.0.1"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith(" ")}
    assert code == 1  # one feed failed
    rss = next(v for k, v in lines.items() if "rss-xml" in k)
    assert " ok " in rss and "honoured" in rss and " 1 " in rss
    assert "no ETag/Last-Modified" in next(v for k, v in lines.items() if "no-etag" in k)
    assert "http_error" in next(v for k, v in lines.items() if "broken" in k)


def test_status_reads_the_store(tmp_path: Path, quick_fetch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert main(["status", "--store", str(store)]) == 1
    assert capsys.readouterr().err == f"newsmon: no store at {store}\n"
    store.mkdir()
    assert main(["status", "--store", str(store)]) == 2
    assert "no state" in capsys.readouterr().err
    store.rmdir()
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        assert main(["backfill", "--config", str(quick_fetch), "--store", str(store), "--feed", site.feed_url,
                     "--allow-host", "127.0.0.1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", "--store", str(store), "--metrics-url", "http://127.0.0.1:9/metrics"]) == 0
    out = capsys.readouterr().out
    assert "127.0.0.1-rss-xml" in out and "ago" in out
    assert "backlog: 0 pending, 0 awaiting the sink, 0 quarantined" in out
    assert "metrics endpoint did not answer" in out
