"""Tests of the ES test server itself: the protocol rules the sink's tests rely on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError
from elasticsearch.exceptions import UnsupportedProductError

from tests.esserver import EsTestServer, check_document

JSON9 = "application/vnd.elasticsearch+json; compatible-with=9"
NDJSON9 = "application/vnd.elasticsearch+x-ndjson; compatible-with=9"


@pytest.fixture(scope="module")
def srv() -> Iterator[EsTestServer]:
    with EsTestServer(refresh_interval=0) as s:
        yield s


@pytest.fixture
def server(srv: EsTestServer) -> EsTestServer:
    srv.reset()
    return srv


def raw(
    server: EsTestServer,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    accept: str = JSON9,
    content_type: str = JSON9,
) -> tuple[int, dict[str, str], Any]:
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (JSON9, True),
        ("application/vnd.elasticsearch+json; compatible-with=8", True),
        ("application/vnd.elasticsearch+json; compatible-with=7", False),
        ("application/vnd.elasticsearch+json; compatible-with=10", False),
        ("application/json", False),
    ],
)
def test_compat_media_types(server: EsTestServer, accept: str, ok: bool) -> None:
    status, headers, body = raw(server, "GET", "/", accept=accept)
    if ok:
        assert status == 200 and headers["X-Elastic-Product"] == "Elasticsearch"
        assert body["version"]["number"].startswith("9.")
    else:
        assert status == 400 and body["error"]["type"] == "media_type_header_exception"
        assert "X-Elastic-Product" not in headers


def test_bulk_content_type_and_newline_rules(server: EsTestServer) -> None:
    body = ndjson({"index": {"_index": "i", "_id": "1"}}, {"a": 1})
    status, _, resp = raw(server, "POST", "/_bulk", body, content_type="application/x-ndjson")
    assert status == 400 and resp["error"]["type"] == "media_type_header_exception"
    status, _, resp = raw(server, "POST", "/_bulk", body.rstrip(b"\n"), content_type=NDJSON9)
    assert status == 400 and "terminated by a newline" in resp["error"]["reason"]
    status, _, resp = raw(server, "POST", "/_bulk", body, content_type=NDJSON9)
    assert status == 200 and resp["items"][0]["index"]["status"] == 201


def test_bulk_items_one_per_action_in_order(server: EsTestServer) -> None:
    raw(
        server,
        "PUT",
        "/_index_template/t",
        json.dumps(
            {
                "index_patterns": ["m-*"],
                "template": {"mappings": {"properties": {"n": {"type": "long"}, "d": {"type": "date"}}}},
            }
        ).encode(),
    )
    body = ndjson(
        {"create": {"_id": "a"}},
        {"n": 1},
        {"create": {"_id": "a"}},
        {"n": 2},
        {"index": {"_id": "b"}},
        {"n": "not a number"},
        {"index": {"_id": "c"}},
        {"d": "2024-05-01T10:00:00Z", "n": "7"},
        {"index": {"_id": "c"}},
        {"d": "kemarin"},
        {"update": {"_id": "zz"}},
        {"doc": {"n": 1}},
        {"update": {"_id": "a"}},
        {"doc": {"n": 5}},
        {"delete": {"_id": "c"}},
    )
    status, _, resp = raw(server, "POST", "/m-1/_bulk", body, content_type=NDJSON9)
    assert status == 200 and resp["errors"] is True
    got = [
        (op, it["status"], it.get("error", {}).get("type"))
        for item in resp["items"]
        for op, it in item.items()
    ]
    assert got == [
        ("create", 201, None),
        ("create", 409, "version_conflict_engine_exception"),
        ("index", 400, "document_parsing_exception"),
        ("index", 201, None),
        ("index", 400, "document_parsing_exception"),
        ("update", 404, "document_missing_exception"),
        ("update", 200, None),
        ("delete", 200, None),
    ]
    assert server.documents() == {("m-1", "a"): {"n": 5}}


def test_check_document_rules() -> None:
    mappings = {
        "dynamic": False,
        "properties": {
            "o": {"properties": {"x": {"type": "keyword"}}},
            "off": {"type": "object", "enabled": False},
            "b": {"type": "boolean"},
            "f": {"type": "float"},
        },
    }
    assert (
        check_document({"o": {"x": 1}, "off": {"anything": [1, {"y": 2}]}, "extra": {"z": 1}}, mappings, "1")
        is None
    )
    assert "as object" in (check_document({"o": "flat"}, mappings, "1") or "")
    assert "[b]" in (check_document({"b": "ya"}, mappings, "1") or "")
    assert "[f]" in (check_document({"f": True}, mappings, "1") or "")
    assert check_document({"f": [1, "2.5"]}, mappings, "1") is None
    strict = {"dynamic": "strict", "properties": {}}
    assert "strict" in (check_document({"new": 1}, strict, "1") or "")


def test_client_product_check_and_errors(server: EsTestServer) -> None:
    es = Elasticsearch(server.url)
    assert es.info()["version"]["number"].startswith("9.")
    resp = es.bulk(
        operations=[
            {"index": {"_index": "x", "_id": "1"}},
            {"n": 1},
            {"update": {"_index": "x", "_id": "1"}},
            {"script": {"source": "ctx._source.n += 1"}},
        ]
    )
    assert resp["items"][1]["update"]["status"] == 400  # only the project's script is emulated
    with pytest.raises(BadRequestError):
        es.indices.put_index_template(name="bad", template={})  # no index_patterns
    es.close()
    server.faults.product_header = False
    fresh = Elasticsearch(server.url)
    with pytest.raises(UnsupportedProductError):
        fresh.info()
    fresh.close()


def test_near_real_time_search_and_query_subset(server: EsTestServer) -> None:
    server.state.refresh_interval = 3600
    es = Elasticsearch(server.url)
    docs = [
        {
            "title": "Putin tiba di Pyongyang",
            "text": "Kunjungan kenegaraan",
            "topics": ["russia-dprk"],
            "n": 1,
        },
        {
            "title": "NATO menanggapi",
            "text": "Rutte berbicara tentang Korea Utara",
            "topics": ["nato-reaction"],
            "n": 2,
        },
        {"title": "Harga cabai naik", "text": "Pasar induk ramai", "topics": [], "n": 3},
    ]
    for i, d in enumerate(docs):
        es.index(index="s-1", id=str(i), document=d)
    assert es.count(index="s-*")["count"] == 0  # not refreshed yet
    assert es.get(index="s-1", id="1")["_source"]["n"] == 2  # GET is realtime
    es.indices.refresh(index="s-*")
    assert es.count(index="s-*")["count"] == 3

    def ids(query: dict[str, Any], **kw: Any) -> list[str]:
        return [h["_id"] for h in es.search(index="s-*", query=query, **kw)["hits"]["hits"]]

    sqs = {
        "simple_query_string": {
            "query": "putin pyongyang",
            "fields": ["title^3", "text"],
            "default_operator": "and",
        }
    }
    assert ids(sqs) == ["0"]
    assert ids({"simple_query_string": {"query": "putin rutte", "fields": ["title", "text"]}}) == [
        "0",
        "1",
    ] or ids({"simple_query_string": {"query": "putin rutte", "fields": ["title", "text"]}}) == ["1", "0"]
    assert ids({"simple_query_string": {"query": "kunjung* -harga", "fields": ["text"]}}) == ["0"]
    assert ids({"multi_match": {"query": "korea utara", "fields": ["text"], "operator": "and"}}) == ["1"]
    assert ids({"bool": {"filter": [{"term": {"topics": "nato-reaction"}}]}}) == ["1"]
    assert sorted(ids({"bool": {"must_not": [{"terms": {"topics": ["russia-dprk", "nato-reaction"]}}]}})) == [
        "2"
    ]
    assert ids({"range": {"n": {"gte": 2}}}, sort=[{"n": "desc"}]) == ["2", "1"]
    assert ids({"ids": {"values": ["2", "9"]}}) == ["2"]
    hit = es.search(index="s-*", query={"match_all": {}}, source=False, size=1)["hits"]["hits"][0]
    assert "_source" not in hit
    with pytest.raises(NotFoundError):
        es.search(index="missing", query={"match_all": {}})
    assert es.search(index="missing", query={"match_all": {}}, ignore_unavailable=True)["hits"]["hits"] == []
    es.close()


def test_faults_are_consumed_in_order(server: EsTestServer) -> None:
    server.faults.fail_requests(429, times=1, path="/", after=1)
    assert raw(server, "GET", "/")[0] == 200
    assert raw(server, "GET", "/")[0] == 429
    assert raw(server, "GET", "/")[0] == 200
    server.faults.reset_connections(times=1)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        raw(server, "GET", "/")
    assert raw(server, "GET", "/")[0] == 200
    assert [r.path for r in server.requests] == ["/"] * 5
