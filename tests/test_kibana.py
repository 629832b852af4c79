"""Kibana saved objects: offline checks of deploy/kibana/*.ndjson and the import client.

The import runs against a small fake of ``POST /api/saved_objects/_import`` here, and
against a real Kibana when ``NEWSMON_TEST_KIBANA_URL`` is set (``pytest -m live``).
"""

from __future__ import annotations

import json
import os
import re
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


# --------------------------------------------------------------------------- saved-object shapes (Kibana 8/9)
#
# What Kibana's import needs of each type we ship, as its saved-object documentation describes
# it: the top-level keys; per type, the attributes Kibana reads; JSON-in-string attributes that
# parse to the right kind of value; dashboard panels on the 48-column grid; and every field the
# objects name (time field, columns, sort, aggregation fields, KQL fields) present in our index
# mapping with a type that can do what the object asks of it. Not verified here: Kibana's own
# migrations and rendering (no Kibana runs on this machine).

REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "index-pattern": {"title": str, "timeFieldName": str},
    "search": {"title": str, "columns": list, "sort": list, "kibanaSavedObjectMeta": dict},
    "visualization": {"title": str, "visState": str, "uiStateJSON": str, "description": str,
                      "kibanaSavedObjectMeta": dict},
    "dashboard": {"title": str, "panelsJSON": str, "optionsJSON": str, "timeRestore": bool,
                  "kibanaSavedObjectMeta": dict},
}
AGGREGATABLE = {"keyword", "date", "boolean", "float", "long", "integer", "double"}
KQL_TERM = re.compile(r'^(not\s+)?([\w@.]+):("?)([^"]*)\3$')


def mapped_type(field: str) -> str | None:
    from connectors.es_schema import MAPPINGS

    node: dict[str, Any] = {"properties": MAPPINGS["properties"]}
    for part in field.split("."):
        props = node.get("properties") or {}
        if part not in props:
            return None
        node = props[part]
    return str(node.get("type", "object"))


def kql_clauses(query: str) -> list[tuple[bool, str, str]]:
    """(negated, field, value) of a KQL query made of ``field:value`` terms joined by ``and``."""
    if not query.strip():
        return []
    out = []
    for part in re.split(r"\s+and\s+", query.strip()):
        m = KQL_TERM.match(part.strip())
        assert m, f"KQL beyond field:value and 'and'/'not' (extend the check): {part!r}"
        out.append((bool(m.group(1)), m.group(2), m.group(4)))
    return out


@pytest.mark.parametrize("path", NDJSON_FILES, ids=lambda p: p.name)
def test_saved_objects_have_the_shapes_kibana_reads(path: Path) -> None:
    for o in load(path):
        assert set(o) >= {"id", "type", "attributes", "references"}, o.get("id")
        assert all(set(r) == {"name", "type", "id"} for r in o["references"]), o["id"]
        for key, kind in REQUIRED[o["type"]].items():
            assert isinstance(o["attributes"].get(key), kind), f"{o['id']}: attributes.{key} must be {kind}"
        attrs = o["attributes"]
        if "kibanaSavedObjectMeta" in attrs:
            source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert isinstance(source, dict) and isinstance(source.get("filter", []), list)
            assert source["query"]["language"] in ("kuery", "lucene") and isinstance(source["query"]["query"], str)
        if o["type"] == "search":
            assert all(isinstance(c, str) for c in attrs["columns"])
            assert all(len(s) == 2 and s[1] in ("asc", "desc") for s in attrs["sort"])
        if o["type"] == "visualization":
            vis = json.loads(attrs["visState"])
            assert isinstance(vis["type"], str) and isinstance(vis["params"], dict) and isinstance(vis["aggs"], list)
            assert isinstance(json.loads(attrs["uiStateJSON"]), dict)
            assert sorted(a["id"] for a in vis["aggs"]) == sorted({a["id"] for a in vis["aggs"]})
        if o["type"] == "dashboard":
            assert isinstance(json.loads(attrs["optionsJSON"]), dict)
            if attrs["timeRestore"]:
                assert isinstance(attrs.get("timeFrom"), str) and isinstance(attrs.get("timeTo"), str)
            for panel in json.loads(attrs["panelsJSON"]):
                grid = panel["gridData"]
                assert set(grid) >= {"x", "y", "w", "h", "i"} and grid["i"] == panel["panelIndex"]
                assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 48 and grid["w"] > 0 and grid["h"] > 0
                assert isinstance(panel["embeddableConfig"], dict)


@pytest.mark.parametrize("path", NDJSON_FILES, ids=lambda p: p.name)
def test_every_field_the_objects_name_is_in_the_index_mapping(path: Path) -> None:
    for o in load(path):
        attrs = o["attributes"]
        if o["type"] == "index-pattern":
            assert mapped_type(attrs["timeFieldName"]) == "date"
        if o["type"] == "search":
            for col in attrs["columns"]:
                assert mapped_type(col) is not None, f"{o['id']}: column {col} is not mapped"
            for field, _ in attrs["sort"]:
                assert mapped_type(field) in AGGREGATABLE, f"{o['id']}: cannot sort on {field}"
        if o["type"] == "visualization":
            for agg in json.loads(attrs["visState"])["aggs"]:
                field = agg["params"].get("field")
                if field is not None:
                    assert mapped_type(field) in AGGREGATABLE, f"{o['id']}: cannot aggregate {field}"
        if "kibanaSavedObjectMeta" in attrs:
            query = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
            for _, field, _ in kql_clauses(query):
                assert mapped_type(field) in AGGREGATABLE, f"{o['id']}: KQL field {field} is not a keyword-like field"


def test_saved_queries_and_aggregations_run_on_the_real_engine(opensearch_url: str, tmp_path: Path) -> None:
    """The searches' KQL (as the equivalent query) and every visualization's aggregation, on real data."""
    import urllib.request
    import uuid
    from dataclasses import replace as dc_replace
    from datetime import UTC, datetime

    from connectors.elasticsearch import ElasticsearchSink, setup_elasticsearch
    from transforms.records import Article, article_id

    prefix = f"kbn-{uuid.uuid4().hex[:8]}"
    cfg = ElasticsearchConfig(urls=(opensearch_url,), index_prefix=prefix, engine="opensearch")
    setup_elasticsearch(cfg)
    when = datetime(2024, 6, 19, tzinfo=UTC)

    def article(n: int, topics: tuple[str, ...], dup_of: str | None = None) -> Article:
        url = f"https://kabar.example.id/{n}"
        a = Article(id=article_id(url), url=url, canonical_url=url, source=f"outlet-{n % 2}", title=f"Berita {n}",
                    text="Isi berita.", published=when, first_seen=when, topics=topics)
        return dc_replace(a, duplicate_of=dup_of, duplicate_kind="exact") if dup_of else a

    first = article(1, ("russia-dprk",))
    batch = [first, article(2, ("nato-reaction",)), article(3, ("russia-dprk",), dup_of=first.id), article(4, ())]
    sink = ElasticsearchSink(cfg, deadletter_dir=tmp_path / "dl")
    assert len(sink.write(batch).acknowledged) == 4
    sink.refresh()

    def search(body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"{opensearch_url}/{prefix}-articles-*/_search", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    objects = saved_objects(DEFAULT_TOPICS, prefix=prefix)
    try:
        for o in objects:
            attrs = o["attributes"]
            if o["type"] == "search":
                query = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
                clauses = kql_clauses(query)
                body = {"query": {"bool": {
                    "filter": [{"term": {f: v}} for neg, f, v in clauses if not neg],
                    "must_not": [{"term": {f: v}} for neg, f, v in clauses if neg]}},
                    "sort": [{f: d} for f, d in attrs["sort"]], "_source": attrs["columns"]}
                got = {h["_id"] for h in search(body)["hits"]["hits"]}
                if o["id"].endswith("topic-russia-dprk"):
                    assert got == {first.id}  # the duplicate is hidden, as the search's description says
                elif o["id"].endswith("-latest"):
                    assert len(got) == 4
            if o["type"] == "visualization":
                for agg in json.loads(attrs["visState"])["aggs"]:
                    field = agg["params"].get("field")
                    if agg["type"] == "terms":
                        spec = {"terms": {"field": field, "size": agg["params"]["size"]}}
                    elif agg["type"] == "date_histogram":
                        spec = {"date_histogram": {"field": field, "calendar_interval": "day"}}
                    else:
                        continue
                    buckets = search({"size": 0, "aggs": {"a": spec}})["aggregations"]["a"]["buckets"]
                    assert buckets, f"{o['id']}: {agg['type']} on {field} found nothing"
    finally:
        sink.close()
        urllib.request.urlopen(urllib.request.Request(f"{opensearch_url}/{prefix}-articles-*", method="DELETE"), timeout=30)
