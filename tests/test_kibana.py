"""Kibana saved objects: offline checks of deploy/kibana/*.ndjson and the import client.

The import runs against a small fake of ``POST /api/saved_objects/_import`` here, and
against a real Kibana when ``NEWSMON_TEST_KIBANA_URL`` is set (``pytest -m live``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.kibana import (
    DEFAULT_TOPICS,
    KibanaError,
    import_ndjson,
    import_saved_objects,
    saved_objects,
    to_ndjson,
)
from pipelines.cli import main
from pipelines.config import ElasticsearchConfig

ROOT = Path(__file__).resolve().parents[1]
NDJSON_FILES = sorted((ROOT / "deploy" / "kibana").glob("*.ndjson"))
NESTED_JSON = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON")


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_files_exist_and_match_generator() -> None:
    assert [p.name for p in NDJSON_FILES] == ["newsmon.ndjson"]
    assert NDJSON_FILES[0].read_text(encoding="utf-8") == to_ndjson(saved_objects(DEFAULT_TOPICS)), (
        "regenerate: python -m connectors.kibana > deploy/kibana/newsmon.ndjson"
    )


@pytest.mark.parametrize("path", NDJSON_FILES, ids=lambda p: p.name)
def test_every_line_nested_json_and_reference_resolves(path: Path) -> None:
    objects = load(path)
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects), "duplicate saved object ids"
    kinds = [o["type"] for o in objects]
    assert kinds.count("index-pattern") == 1 and kinds.count("dashboard") == 1
    topic_searches = {o["id"] for o in objects if o["type"] == "search" and "-topic-" in o["id"]}
    assert topic_searches == {f"newsmon-topic-{t}" for t in DEFAULT_TOPICS}
    for o in objects:
        attrs = o["attributes"]
        ref_names = {r["name"] for r in o["references"]}
        for r in o["references"]:
            assert (r["type"], r["id"]) in ids, f"{o['id']}: dangling reference {r}"
        for key in NESTED_JSON:
            if key in attrs:
                json.loads(attrs[key])
        source = json.loads(attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in ref_names
        if o["type"] == "dashboard":
            panels = json.loads(attrs["panelsJSON"])
            assert len(panels) == 4
            assert {p["panelRefName"] for p in panels} == ref_names
        if o["type"] == "visualization":
            vis = json.loads(attrs["visState"])
            assert vis["aggs"] and all("type" in a for a in vis["aggs"])


def test_user_topics_get_saved_searches() -> None:
    objs = saved_objects(["ekonomi", "russia-dprk"], prefix="berita")
    assert {o["id"] for o in objs if o["type"] == "search"} == {
        "berita-topic-ekonomi",
        "berita-topic-russia-dprk",
        "berita-latest",
    }
    assert objs[0]["attributes"]["title"] == "berita-articles-*"


# --------------------------------------------------------------------------- fake Kibana


class FakeKibana:
    """Accepts ``POST /api/saved_objects/_import`` like Kibana: kbn-xsrf required, multipart file."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_ids: set[str] = set()
        self.default_requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if "kbn-xsrf" not in {k.lower() for k in self.headers}:
                    return self._send(
                        400,
                        {
                            "statusCode": 400,
                            "error": "Bad Request",
                            "message": "Request must contain a kbn-xsrf header.",
                        },
                    )
                if self.path == "/api/data_views/default":
                    fake.default_requests.append(json.loads(body))
                    return self._send(200, {"acknowledged": True})
                if not self.path.startswith("/api/saved_objects/_import"):
                    return self._send(404, {"statusCode": 404, "message": "Not Found"})
                msg = BytesParser(policy=email_policy).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                parts = [
                    p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "file"
                ]
                objs = [
                    json.loads(line)
                    for line in parts[0].get_payload(decode=True).decode().splitlines()
                    if line.strip()
                ]
                fake.received.extend(objs)
                errors = [
                    {
                        "id": o["id"],
                        "type": o["type"],
                        "title": o["attributes"].get("title", ""),
                        "error": {"type": "unknown", "message": "injected"},
                    }
                    for o in objs
                    if o["id"] in fake.fail_ids
                ]
                self._send(
                    200, {"success": not errors, "successCount": len(objs) - len(errors), "errors": errors}
                )

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    k = FakeKibana()
    yield k
    k.close()


def test_import_sends_xsrf_auth_and_reports_per_object_errors(kibana: FakeKibana) -> None:
    cfg = ElasticsearchConfig(kibana_url=kibana.url, api_key="KIBANA-SECRET-KEY")
    report = import_saved_objects(cfg, NDJSON_FILES)
    assert report.ok and report.success_count == len(load(NDJSON_FILES[0])) and not report.errors
    assert kibana.headers[0]["kbn-xsrf"] and kibana.headers[0]["authorization"] == "ApiKey KIBANA-SECRET-KEY"
    assert kibana.received == load(NDJSON_FILES[0])
    kibana.fail_ids = {"newsmon-overview"}
    report = import_saved_objects(cfg, NDJSON_FILES)
    assert not report.ok and [e["id"] for e in report.errors] == ["newsmon-overview"]
    assert any("newsmon-overview" in line for line in report.describe())


def test_import_errors_hide_secrets(kibana: FakeKibana) -> None:
    cfg = ElasticsearchConfig(
        kibana_url=kibana.url + "/nothing-here", username="elastic", password="PW-SECRET-9"
    )
    with pytest.raises(KibanaError) as err:
        import_ndjson(cfg, b"{}\n")
    assert "404" in str(err.value) and "PW-SECRET-9" not in str(err.value)


def test_setup_kibana_command(
    kibana: FakeKibana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSMON_KIBANA_URL", kibana.url)
    monkeypatch.setenv("NEWSMON_ES_INDEX", "pantau")
    assert main(["setup", "kibana"]) == 0
    assert "imported" in capsys.readouterr().out
    titles = {o["attributes"].get("title") for o in kibana.received}
    assert "pantau-articles-*" in titles
    kibana.fail_ids = {"pantau-latest"}
    assert main(["setup", "kibana"]) == 1
    assert "pantau-latest" in capsys.readouterr().out


@pytest.mark.live
def test_live_kibana_import() -> None:
    url = os.environ.get("NEWSMON_TEST_KIBANA_URL")
    if not url:
        pytest.skip("NEWSMON_TEST_KIBANA_URL not set: the import ran against the fake Kibana only")
    cfg = ElasticsearchConfig(
        kibana_url=url,
        api_key=os.environ.get("NEWSMON_TEST_ES_API_KEY"),
        username=os.environ.get("NEWSMON_TEST_ES_USERNAME"),
        password=os.environ.get("NEWSMON_TEST_ES_PASSWORD"),
        ca_cert=os.environ.get("NEWSMON_TEST_ES_CA_CERT"),
    )
    report = import_saved_objects(cfg, NDJSON_FILES)
    assert report.ok, report.describe()


def test_setup_kibana_imports_then_sets_the_default_data_view(kibana: FakeKibana, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli import main

    monkeypatch.setenv("NEWSMON_KIBANA_URL", kibana.url)
    monkeypatch.setenv("NEWSMON_ES_API_KEY", "a2liYW5hLWtleS1zZWNyZXQ=")
    assert main(["setup", "kibana"]) == 0
    out = capsys.readouterr().out
    assert {o["id"] for o in kibana.received} >= {"newsmon-articles", "newsmon-topic-russia-dprk", "newsmon-overview"}
    assert kibana.default_requests == [{"data_view_id": "newsmon-articles", "force": False}]
    assert all("kbn-xsrf" in h for h in kibana.headers)
    assert "default data view: newsmon-articles" in out and "a2liYW5hLWtleS1zZWNyZXQ=" not in out
