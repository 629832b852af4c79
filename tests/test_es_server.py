"""Tests of the fault proxy itself (tests/faultserver.py), in front of the real test node."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from tests.faultserver import FaultProxy


def call(url: str, method: str = "GET", body: bytes | None = None, ctype: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def bulk(n: int, index: str) -> bytes:
    lines = []
    for i in range(n):
        lines += [json.dumps({"index": {"_index": index, "_id": str(i)}}), json.dumps({"n": i})]
    return ("\n".join(lines) + "\n").encode()


def test_item_rejections_are_spliced_in_place_and_not_applied(opensearch_url: str) -> None:
    index = f"proxy-{uuid.uuid4().hex[:8]}"
    with FaultProxy(opensearch_url, elasticsearch=False) as p:
        p.faults.reject_items(2)
        status, resp = call(f"{p.url}/_bulk?refresh=true", "POST", bulk(4, index), "application/x-ndjson")
        assert status == 200 and resp["errors"] is True
        assert [(it["index"]["_id"], it["index"]["status"]) for it in resp["items"]] == [
            ("0", 429), ("1", 429), ("2", 201), ("3", 201)]
        _, found = call(f"{opensearch_url}/{index}/_search", "POST", b'{"query":{"match_all":{}}}')
        assert sorted(h["_id"] for h in found["hits"]["hits"]) == ["2", "3"]  # the node saw only those
        call(f"{opensearch_url}/{index}", "DELETE")


def test_faults_are_consumed_in_order_and_by_path(opensearch_url: str) -> None:
    with FaultProxy(opensearch_url, elasticsearch=False) as p:
        p.faults.fail_requests(503, times=2, path="_cluster")
        p.faults.fail_requests(429, times=1, path="_cluster", after=0)
        assert call(f"{p.url}/")[0] == 200  # another path: untouched
        codes = [call(f"{p.url}/_cluster/health")[0] for _ in range(4)]
        assert codes == [503, 503, 429, 200]
        assert [r.path for r in p.requests_to("_cluster")] == ["/_cluster/health"] * 4


def test_short_items_and_the_product_header(opensearch_url: str) -> None:
    index = f"proxy-{uuid.uuid4().hex[:8]}"
    with FaultProxy(opensearch_url, elasticsearch=True) as p:
        p.faults.truncate_items(drop=1)
        _, resp = call(f"{p.url}/_bulk", "POST", bulk(3, index), "application/vnd.elasticsearch+x-ndjson; compatible-with=9")
        assert len(resp["items"]) == 2
        with urllib.request.urlopen(p.url, timeout=10) as r:
            assert r.headers["X-Elastic-Product"] == "Elasticsearch"
            assert json.loads(r.read())["version"]["distribution"] == "opensearch"  # the body is untouched
        p.faults.product_header = False
        with urllib.request.urlopen(p.url, timeout=10) as r:
            assert r.headers.get("X-Elastic-Product") is None
    call(f"{opensearch_url}/{index}", "DELETE")
