"""The test node itself: a real OpenSearch with the modules newsmon relies on."""

from __future__ import annotations

import json
import urllib.request

from tests.opensearchnode import OpenSearchNode


def call(url: str, method: str = "GET", body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read().decode())


def test_node_is_opensearch_2_19_with_the_needed_modules(opensearch_url: str) -> None:
    info = call(opensearch_url)
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"].startswith("2.19.")
    modules = {p["name"] for p in call(f"{opensearch_url}/_nodes/plugins")["nodes"].popitem()[1]["plugins"]}
    for needed in ("org.opensearch.painless.PainlessPlugin", "org.opensearch.analysis.common.CommonAnalysisPlugin",
                   "org.opensearch.transport.Netty4Plugin", "org.opensearch.index.mapper.MapperExtrasPlugin",
                   "org.opensearch.index.reindex.ReindexPlugin"):
        assert needed in modules, modules


def test_indonesian_analyzer_stems(opensearch_url: str) -> None:
    tokens = call(f"{opensearch_url}/_analyze", "POST", {"analyzer": "indonesian", "text": "Kunjungan para pertemuan"})
    assert [t["token"] for t in tokens["tokens"]] == ["kunjung", "temu"]


def test_painless_runs(opensearch_url: str) -> None:
    res = call(f"{opensearch_url}/_scripts/painless/_execute", "POST",
               {"script": {"source": "params.a.size() + params.b", "params": {"a": [1, 2, 3], "b": 4}}})
    assert res["result"] == "7"


def test_restart_keeps_indices(opensearch_live: OpenSearchNode) -> None:
    url = opensearch_live.url
    call(f"{url}/node-restart-check/_doc/1?refresh=true", "PUT", {"v": 1})
    opensearch_live.restart()
    assert opensearch_live.url == url
    assert call(f"{url}/node-restart-check/_doc/1")["_source"] == {"v": 1}
