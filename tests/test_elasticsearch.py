"""Contract and fault tests of the search-engine sink, on a real OpenSearch 2.19 node.

Every contract test runs twice against the same real node (tests/opensearchnode.py):
``opensearch`` through the opensearch-py client, and ``elasticsearch`` through the
elasticsearch client and the test-only shim in tests/faultserver.py (product header and
media-type mapping only; it is not Elasticsearch). Fault tests put the fault proxy of
tests/faultserver.py between the client and the node, so the engine's answers stay real and
only the injected faults are made up. Each test uses its own index prefix.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connectors.deadletter import PENDING, REPLAYED, DeadLetterStore
from connectors.elasticsearch import (
    ClusterRefused,
    ElasticsearchSink,
    article_document,
    backoff_delay,
    classify_item,
    index_for,
    make_client,
    plan_actions,
    redact,
    setup_elasticsearch,
    units_for,
)
from connectors.sink import SinkUnavailable
from pipelines.config import ElasticsearchConfig
from pipelines.process import write_batch
from tests.eslive import LIVE_URL, live_config
from tests.faultserver import FaultProxy
from tests.opensearchnode import OpenSearchNode
from transforms.records import Article, TopicEvidence, article_id

ENGINES = ("opensearch", "elasticsearch")

# --------------------------------------------------------------------------- helpers and fixtures


def node_call(url: str, method: str = "GET", body: Any = None) -> Any:
    """Straight to the node (no client under test): for setup, cleanup and assertions."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"null")


def documents(node_url: str, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    node_call(f"{node_url}/{prefix}-articles-*/_refresh?allow_no_indices=true", "POST")
    resp = node_call(f"{node_url}/{prefix}-articles-*/_search?allow_no_indices=true&size=1000", "POST",
                     {"query": {"match_all": {}}})
    hits = (resp or {}).get("hits", {}).get("hits", [])
    return {(h["_index"], h["_id"]): h["_source"] for h in hits}


@pytest.fixture(scope="module")
def shim(opensearch_url: str) -> Iterator[FaultProxy]:
    """The Elasticsearch-client shim in front of the real node (no faults configured)."""
    with FaultProxy(opensearch_url, elasticsearch=True) as proxy:
        yield proxy



@pytest.fixture
def prefix(opensearch_url: str) -> Iterator[str]:
    name = f"nmtest-{uuid.uuid4().hex[:10]}"
    yield name
    node_call(f"{opensearch_url}/{name}-articles-*?allow_no_indices=true&ignore_unavailable=true", "DELETE")
    node_call(f"{opensearch_url}/_index_template/{name}-articles", "DELETE")


@pytest.fixture(params=ENGINES)
def es_config(request: pytest.FixtureRequest, opensearch_url: str, prefix: str) -> ElasticsearchConfig:
    if request.param == "opensearch":
        return ElasticsearchConfig(urls=(opensearch_url,), index_prefix=prefix, engine="opensearch")
    shim_proxy: FaultProxy = request.getfixturevalue("shim")
    return ElasticsearchConfig(urls=(shim_proxy.url,), index_prefix=prefix, engine="elasticsearch")


@pytest.fixture(params=ENGINES)
def proxy(request: pytest.FixtureRequest, opensearch_url: str) -> Iterator[FaultProxy]:
    """A fresh fault proxy in front of the node; ``elasticsearch`` mode for that client."""
    with FaultProxy(opensearch_url, elasticsearch=request.param == "elasticsearch") as p:
        yield p


def proxied(proxy: FaultProxy, prefix: str, **kw: Any) -> ElasticsearchConfig:
    engine = "elasticsearch" if proxy.elasticsearch else "opensearch"
    cfg = ElasticsearchConfig(urls=(proxy.url,), index_prefix=prefix, engine=engine, **kw)
    setup_elasticsearch(cfg)
    proxy.requests.clear()
    return cfg


def make_sink(
    cfg: ElasticsearchConfig, tmp_path: Path, sleeps: list[float] | None = None, **kw: Any
) -> ElasticsearchSink:
    record = sleeps if sleeps is not None else []
    return ElasticsearchSink(cfg, deadletter_dir=tmp_path / "dl", sleep=record.append, backoff=0.01, **kw)


def art(n: int, *, month: int = 5, dup_of: Article | None = None, **changes: Any) -> Article:
    url = f"https://berita.example.id/{month}/{n}"
    when = datetime(2024, month, 3, 8, n % 60, tzinfo=UTC)
    a = Article(
        id=article_id(url),
        url=url,
        canonical_url=url,
        source="berita.example.id",
        title=f"Putin dan Kim Jong Un bertemu di Pyongyang ({n})",
        text=f"Presiden Rusia Vladimir Putin tiba di Pyongyang untuk kunjungan kenegaraan nomor {n}. "
        "Kedua pemimpin menandatangani perjanjian kemitraan strategis.",
        published=when,
        first_seen=when,
        language="id",
        language_confidence=0.99,
        topics=("russia-dprk",),
        topic_evidence=(TopicEvidence(topic="russia-dprk", score=3.0, threshold=2.0, rule_version="1"),),
        story_id="story-1",
    )
    if dup_of is not None:
        a = replace(a, duplicate_of=dup_of.id, duplicate_kind="near", similarity=0.9, story_id=dup_of.story_id)
    return replace(a, **changes) if changes else a


# --------------------------------------------------------------------------- pure logic


def test_index_is_a_function_of_the_article() -> None:
    a = art(1, month=5)
    assert index_for("nm", a) == "nm-articles-2024.05"
    assert index_for("nm", replace(a, published=None, first_seen=datetime(2023, 12, 31, tzinfo=UTC))) == "nm-articles-2023.12"
    doc = article_document(a)
    assert doc["@timestamp"] == doc["published"] == "2024-05-03T08:01:00Z"
    assert doc["is_duplicate"] is False


def test_plan_groups_one_action_per_target() -> None:
    orig = art(1)
    d1, d2 = art(2, dup_of=orig), art(3, dup_of=orig)
    actions, unplaced = plan_actions(units_for([orig, d1, d2]), prefix="nm", locations={})
    by_id = {a.id: a for a in actions}
    assert set(by_id) == {orig.id, d1.id, d2.id} and not unplaced
    assert by_id[orig.id].doc is not None and [s["id"] for s in by_id[orig.id].add] == [d1.id, d2.id]
    actions, unplaced = plan_actions(units_for([d1]), prefix="nm", locations={orig.id: "nm-articles-2020.01"})
    assert {(a.id, a.index) for a in actions} == {(d1.id, "nm-articles-2024.05"), (orig.id, "nm-articles-2020.01")}
    _, unplaced = plan_actions(units_for([d1]), prefix="nm", locations={})
    assert [(u.article.id, u.kind) for u in unplaced] == [(d1.id, "add")]


@pytest.mark.parametrize(
    ("status", "etype", "add_only", "want"),
    [
        (201, None, False, "ok"),
        (429, "es_rejected_execution_exception", False, "retry"),
        (503, "unavailable_shards_exception", False, "retry"),
        (409, "version_conflict_engine_exception", False, "retry"),
        (400, "document_parsing_exception", False, "reject"),
        (400, "mapper_parsing_exception", False, "reject"),
        (404, "document_missing_exception", True, "missing"),
        (404, "document_missing_exception", False, "reject"),
    ],
)
def test_classify_item(status: int, etype: str | None, add_only: bool, want: str) -> None:
    assert classify_item(status, etype, add_only=add_only) == want


def test_backoff_is_bounded_and_grows() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, base=0.5, cap=4.0, rng=rng) for n in range(1, 9)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert delays[0] <= 0.5 and max(delays[4:]) > 1.0


def test_redact_hides_every_secret() -> None:
    cfg = ElasticsearchConfig(urls=("https://bob:pw-in-url@es:9200",), api_key="SEKRIT-KEY", username="u", password="hunter22")
    out = redact("key SEKRIT-KEY pw hunter22 url https://bob:pw-in-url@es:9200 basic dTpodW50ZXIyMg==", cfg)
    for secret in ("SEKRIT-KEY", "hunter22", "pw-in-url", "dTpodW50ZXIyMg=="):
        assert secret not in out
    assert "es:9200" in out


def test_engine_selection_from_environment_and_file(tmp_path: Path) -> None:
    from pipelines.config import ConfigError, load_config

    cfg = load_config(None, {"NEWSMON_OPENSEARCH_URL": "https://os1:9200, https://os2:9200"})
    assert cfg.elasticsearch.engine == "opensearch" and cfg.elasticsearch.urls == ("https://os1:9200", "https://os2:9200")
    assert load_config(None, {"NEWSMON_ES_URL": "https://es:9200"}).elasticsearch.engine == "elasticsearch"
    f = tmp_path / "n.yaml"
    f.write_text("elasticsearch: {urls: ['https://os:9200'], engine: opensearch}\n")
    assert load_config(str(f), {}).elasticsearch.engine == "opensearch"
    f.write_text("elasticsearch: {engine: solr}\n")
    with pytest.raises(ConfigError, match="elasticsearch.engine"):
        load_config(str(f), {})


# --------------------------------------------------------------------------- contract, real node, both clients


def test_setup_is_idempotent_and_installs_the_template(es_config: ElasticsearchConfig, opensearch_url: str) -> None:
    first = setup_elasticsearch(es_config)
    second = setup_elasticsearch(es_config)
    assert any("runs OpenSearch 2.19" in line for line in first), first
    assert any("installed" in line for line in first)
    assert any("up to date" in line for line in second)
    stored = node_call(f"{opensearch_url}/_index_template/{es_config.index_prefix}-articles")["index_templates"][0]
    props = stored["index_template"]["template"]["mappings"]["properties"]
    assert props["title"]["analyzer"] == "newsmon_indonesian"
    assert props["title"]["fields"]["std"]["analyzer"] == "newsmon_folded"
    assert props["topics"]["type"] == "keyword"


def test_title_and_text_are_stemmed_in_indonesian(
    es_config: ElasticsearchConfig, tmp_path: Path, opensearch_url: str, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    a = art(1)
    make_sink(es_config, tmp_path).write([a])
    index = index_for(es_config.index_prefix, a)
    for field in ("title", "text"):
        tokens = node_call(f"{opensearch_url}/{index}/_analyze", "POST", {"field": field, "text": "Kunjungan kenegaraan"})
        assert [t["token"] for t in tokens["tokens"]] == ["kunjung", "negara"], field
        std = node_call(f"{opensearch_url}/{index}/_analyze", "POST", {"field": f"{field}.std", "text": "Kunjungan"})
        assert [t["token"] for t in std["tokens"]] == ["kunjungan"]
        folded = node_call(f"{opensearch_url}/{index}/_analyze", "POST", {"field": field, "text": "Pyöngyang Séoul"})
        assert [t["token"] for t in folded["tokens"]] == ["pyongyang", "seoul"]


def test_write_is_idempotent_monthly_and_searchable(
    es_config: ElasticsearchConfig, tmp_path: Path, opensearch_url: str, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    batch = [art(n) for n in range(12)] + [art(50, month=6)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch} and not result.retry and not result.dead_lettered
    sink.refresh()
    assert sink.count() == len(batch)
    p = es_config.index_prefix
    assert {idx for idx, _ in documents(opensearch_url, p)} == {f"{p}-articles-2024.05", f"{p}-articles-2024.06"}
    # re-sending, even with a corrected timestamp in another month, never adds a document
    moved = replace(batch[3], published=datetime(2024, 9, 1, tzinfo=UTC))
    fresh = make_sink(es_config, tmp_path / "other")  # another process: finds it with the ids query
    again = fresh.write(batch[:3] + [moved])
    assert len(again.acknowledged) == 4 and set(again.updated) == {a.id for a in batch[:3] + [moved]}
    docs = documents(opensearch_url, p)
    assert len(docs) == len(batch)
    assert docs[(f"{p}-articles-2024.05", moved.id)]["published"] == "2024-09-01T00:00:00Z"
    stored = sink.get(batch[3].id)
    assert stored is not None and stored.published == datetime(2024, 9, 1, tzinfo=UTC)
    hits = sink.search("putin pyongyang", limit=5)
    assert len(hits) == 5 and all("Putin" in h.title for h in hits)
    assert sink.search("perjanjian kemitraan", limit=50)[0].topics == ("russia-dprk",)
    assert sink.search("kunjung*", limit=50)  # prefix query over the stemmed field
    assert sink.search("tidakadakatasemacamini") == []
    sink.close()
    fresh.close()


def test_merge_script_runs_for_real(
    es_config: ElasticsearchConfig, tmp_path: Path, opensearch_url: str, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    orig = art(1)
    d_same_batch = art(2, dup_of=orig)
    assert sink.write([d_same_batch, orig]).acknowledged  # duplicate listed first on purpose
    d_later = art(3, month=7, dup_of=orig)
    assert set(sink.write([d_later]).acknowledged) == {d_later.id}
    sink.write([d_later])  # the same syndication twice adds once
    sink.write([orig])  # re-sending the original keeps its syndications
    stored = sink.get(orig.id)
    assert stored is not None
    assert [s.id for s in stored.also_published_at] == [d_same_batch.id, d_later.id]
    dup = sink.get(d_later.id)
    assert dup is not None and dup.duplicate_of == orig.id
    sink.refresh()
    assert sink.count() == 3
    assert [h.id for h in sink.search("putin")] == [orig.id]  # duplicates hidden by default
    assert len(sink.search("putin", include_duplicates=True)) == 3
    sink.close()


def test_syndication_before_refresh_uses_the_cache(
    es_config: ElasticsearchConfig, tmp_path: Path, opensearch_url: str, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    p = es_config.index_prefix
    sink = make_sink(es_config, tmp_path)
    orig = art(1, month=3)
    sink.write([orig])
    node_call(f"{opensearch_url}/{p}-articles-2024.03/_settings", "PUT", {"index": {"refresh_interval": "-1"}})
    orig2 = art(9, month=3)
    sink.write([orig2])  # not searchable until a refresh
    dup = art(2, month=8, dup_of=orig2)
    assert sink.write([dup]).acknowledged == (dup.id,)
    # another process (empty cache) cannot see the unrefreshed original: syndication skipped, dup stored
    other = make_sink(es_config, tmp_path / "other")
    dup2 = art(3, month=8, dup_of=orig2)
    assert other.write([dup2]).acknowledged == (dup2.id,)
    docs = documents(opensearch_url, p)
    assert [s["id"] for s in docs[(f"{p}-articles-2024.03", orig2.id)]["also_published_at"]] == [dup.id]
    assert (f"{p}-articles-2024.08", dup2.id) in docs


def test_mapping_violation_goes_to_dead_letters(
    es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    good = art(1)
    bad = art(2, similarity="sangat mirip")  # a float field
    result = sink.write([good, bad])
    assert result.acknowledged == (good.id,)
    assert result.dead_lettered == (bad.id,)
    assert "mapper_parsing_exception" in result.errors[bad.id] and "similarity" in result.errors[bad.id]
    assert registry.get_sample_value("newsmon_dead_letters_total", {"sink": es_config.engine}) == 1
    store = DeadLetterStore(tmp_path / "dl")
    [entry] = list(store.entries())
    assert entry.article == bad and entry.status == PENDING
    report = store.replay(sink.write, sink=sink.name)  # still rejected: same entry, one more attempt
    assert report.still_rejected == (bad.id,) and not report.replayed
    [entry] = list(store.entries())
    assert entry.attempts == 2
    sink.close()


def test_indexed_metric_has_one_owner(es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    labels = {"sink": es_config.engine}

    def count(outcome: str) -> float:
        return registry.get_sample_value("newsmon_articles_indexed_total", {**labels, "outcome": outcome}) or 0.0

    batch = [art(n) for n in range(3)]
    assert sorted(write_batch(sink, batch, None)) == sorted(a.id for a in batch)
    assert count("indexed") == 3 and count("updated") == 0
    write_batch(sink, batch, None)
    assert count("indexed") == 3 and count("updated") == 3
    sink.close()


def test_newsmon_search_against_the_real_engine(
    es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.cli import main

    var = "NEWSMON_OPENSEARCH_URL" if es_config.engine == "opensearch" else "NEWSMON_ES_URL"
    monkeypatch.delenv("NEWSMON_OPENSEARCH_URL", raising=False)
    monkeypatch.setenv(var, es_config.urls[0])
    monkeypatch.setenv("NEWSMON_ES_INDEX", es_config.index_prefix)
    monkeypatch.setenv("NEWSMON_STORE", str(tmp_path / "store"))
    assert main(["setup", "elasticsearch"]) == 0
    capsys.readouterr()
    orig = art(1)
    other = art(2, title="Banjir melanda Jakarta", text="Hujan deras menyebabkan banjir di Jakarta Utara.", topics=())
    sink = make_sink(es_config, tmp_path)
    sink.write([orig, other, art(3, dup_of=orig)])
    sink.refresh()
    assert main(["search", "kunjungan putin", "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["id"] for h in hits] == [orig.id] and hits[0]["topics"] == ["russia-dprk"]
    assert main(["search", "banjir"]) == 0
    assert "Banjir melanda Jakarta" in capsys.readouterr().out
    assert main(["search", "putin", "--all", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    sink.write([art(3, dup_of=orig)])  # the merge script records the copy on its original
    sink.refresh()
    assert main(["search", "kunjungan putin", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.splitlines()[0])
    assert [c["id"] for c in shown["also_published_at"]] == [art(3, dup_of=orig).id]
    assert "story_id" in shown and "duplicate_kind" in shown
    sink.close()


@pytest.mark.hostile
@pytest.mark.parametrize("engine", ENGINES)
def test_node_stopped_mid_stream_backlog_drains_after_restart(
    engine: str, opensearch_live: OpenSearchNode, shim: FaultProxy, prefix: str, tmp_path: Path,
    registry: CollectorRegistry,
) -> None:
    url = opensearch_live.url if engine == "opensearch" else shim.url
    cfg = ElasticsearchConfig(urls=(url,), index_prefix=prefix, engine=engine)
    setup_elasticsearch(cfg)
    sink = make_sink(cfg, tmp_path, max_retries=2, request_timeout=5)
    first = [art(n) for n in range(5)]
    assert len(sink.write(first).acknowledged) == 5
    backlog = [art(n) for n in range(5, 25)]
    opensearch_live.stop()
    try:
        for _ in range(2):  # driver cycles while the node is down
            with pytest.raises(SinkUnavailable):
                sink.write(backlog)
    finally:
        opensearch_live.start()
    result = sink.write(first[:2] + backlog)  # the outbox re-sends some already-stored ones too
    assert set(result.acknowledged) == {a.id for a in first[:2] + backlog} and not result.retry
    docs = documents(opensearch_live.url, prefix)
    assert sorted(i for _, i in docs) == sorted(a.id for a in first + backlog)  # nothing lost, nothing twice
    sink.close()


# --------------------------------------------------------------------------- faults (proxy in front of the node)


def test_per_item_429_is_retried_with_backoff(
    proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    proxy.faults.reject_items(7)  # a 429 storm over two rounds
    batch = [art(n) for n in range(5)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(documents(opensearch_url, prefix)) == 5
    assert len(sleeps) == 2 and all(0 < s <= 0.02 * 2 for s in sleeps)
    assert registry.get_sample_value("newsmon_bulk_retries_total", {"sink": cfg.engine}) == 5 + 2
    second = proxy.requests_to("_bulk")[-2].bulk_actions()
    assert len(second) == 5 and {m["_id"] for _, m in second} == {a.id for a in batch}


def test_429_storm_beyond_retries_reports_retry_not_dead_letter(
    proxy: FaultProxy, prefix: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sink = make_sink(cfg, tmp_path, max_retries=2)
    proxy.faults.reject_items(10_000)
    batch = [art(n) for n in range(3)]
    result = sink.write(batch)
    assert set(result.retry) == {a.id for a in batch} and not result.dead_lettered
    assert "429" in result.errors[batch[0].id]
    assert DeadLetterStore(tmp_path / "dl").count() == 0
    proxy.faults.clear()
    assert set(sink.write(batch).acknowledged) == {a.id for a in batch}


@pytest.mark.parametrize("status", [429, 503])
def test_whole_request_failures_are_retried(
    status: int, proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    proxy.faults.fail_requests(status, times=2, path="_bulk")
    batch = [art(n) for n in range(4)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(sleeps) == 2 and len(documents(opensearch_url, prefix)) == 4


@pytest.mark.parametrize("after_processing", [False, True])
def test_connection_reset_is_retried_without_duplicates(
    after_processing: bool, proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path,
    registry: CollectorRegistry,
) -> None:
    cfg = proxied(proxy, prefix)
    sink = make_sink(cfg, tmp_path)
    proxy.faults.reset_connections(times=1, path="_bulk", after_processing=after_processing)
    batch = [art(n) for n in range(6)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(documents(opensearch_url, prefix)) == 6
    assert len(proxy.requests_to("_bulk")) == 2


def test_slow_reply_times_out_and_retries_idempotently(
    proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sink = make_sink(cfg, tmp_path, request_timeout=0.5)
    proxy.faults.delay_replies(1.5, times=1, path="_bulk")  # processed, answered too late
    batch = [art(n) for n in range(3)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(documents(opensearch_url, prefix)) == 3


def test_short_items_array_is_detected(
    proxy: FaultProxy, prefix: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    proxy.faults.truncate_items(drop=2)
    batch = [art(n) for n in range(5)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(sleeps) == 1
    resent = proxy.requests_to("_bulk")[-1].bulk_actions()
    assert {m["_id"] for _, m in resent} == {a.id for a in batch[-2:]}


def test_partial_ack_then_failure_reports_retry(
    proxy: FaultProxy, prefix: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    # one action per bulk request (byte limit); the engine goes away after two requests
    sink = make_sink(cfg, tmp_path, max_retries=2, max_chunk_bytes=1024)
    proxy.faults.reset_connections(times=10_000, path="_bulk", after=2)
    batch = [art(n) for n in range(4)]
    result = write_batch(sink, batch, None)  # something was stored, so no exception: a precise report
    assert result == [batch[0].id, batch[1].id]
    labels = {"sink": cfg.engine}
    assert registry.get_sample_value("newsmon_articles_indexed_total", {**labels, "outcome": "failed"}) == 2
    assert registry.get_sample_value("newsmon_articles_indexed_total", {**labels, "outcome": "indexed"}) == 2


def test_item_rejected_then_replayed(
    proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = proxied(proxy, prefix)
    sink = make_sink(cfg, tmp_path)
    proxy.faults.reject_items(1, status=400)
    a, b = art(1), art(2)
    result = sink.write([a, b])
    assert result.dead_lettered == (a.id,) and result.acknowledged == (b.id,)
    store = DeadLetterStore(tmp_path / "dl")
    report = store.replay(sink.write, sink=sink.name)
    assert report.replayed == (a.id,)
    assert store.count() == 0 and store.count(status=REPLAYED) == 1
    assert len(documents(opensearch_url, prefix)) == 2


def test_missing_product_header_is_refused(
    opensearch_url: str, prefix: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    with FaultProxy(opensearch_url, elasticsearch=True) as p:
        cfg = ElasticsearchConfig(urls=(p.url,), index_prefix=prefix)
        p.faults.product_header = False
        with pytest.raises(ClusterRefused, match="not Elasticsearch"):
            setup_elasticsearch(cfg)
        with pytest.raises(ClusterRefused):
            make_sink(cfg, tmp_path).write([art(1)])
    assert DeadLetterStore(tmp_path / "dl").count() == 0


def test_the_shim_enforces_elasticsearch_media_types(opensearch_url: str) -> None:
    with FaultProxy(opensearch_url, elasticsearch=True) as p:
        def status(accept: str) -> int:
            req = urllib.request.Request(p.url, headers={"Accept": accept})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status("application/vnd.elasticsearch+json; compatible-with=9") == 200
        assert status("application/json") == 200
        assert status("application/vnd.elasticsearch+json; compatible-with=6") == 400
        assert status("application/vnd.elasticsearch+json") == 400


def test_secrets_never_leak(
    proxy: FaultProxy, prefix: str, tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    key, password = "APIKEY-TOPSECRET-123", "hunter2-password"
    proxy.auth = lambda h: h.get("authorization") == f"ApiKey {key}"
    caplog.set_level(logging.DEBUG)
    good = proxied(proxy, prefix, api_key=key)
    sink = make_sink(good, tmp_path, max_retries=1)
    proxy.faults.fail_requests(503, times=1, path="_bulk")
    proxy.faults.reject_items(1, status=400)
    assert len(sink.write([art(1), art(2)]).dead_lettered) == 1
    assert proxy.requests_to("_bulk")[0].headers["authorization"] == f"ApiKey {key}"
    wrong = replace(good, urls=(proxy.url.replace("http://", f"http://user:{password}@"),), api_key="WRONG-" + key)
    messages = []
    with pytest.raises(ClusterRefused) as err:
        setup_elasticsearch(wrong)
    messages.append(str(err.value))
    with pytest.raises(SinkUnavailable) as err2:
        make_sink(wrong, tmp_path / "w").write([art(3)])
    messages.append(str(err2.value))
    dl_text = b"".join(p.read_bytes() for p in (tmp_path / "dl").iterdir())
    everything = "\n".join(messages) + caplog.text + generate_latest(registry).decode() + dl_text.decode("utf-8", "replace")
    assert "401" in "\n".join(messages)
    for secret in (key, password):
        assert secret not in everything


def test_write_to_elasticsearch_transform(
    es_config: ElasticsearchConfig, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry
) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.eswrite import WriteToElasticsearch

    setup_elasticsearch(es_config)
    batch = [art(n) for n in range(7)] + [art(40, month=2, similarity="x")]
    with TestPipeline(runner="FnApiRunner") as p:
        ids = p | beam.Create(batch) | WriteToElasticsearch(es_config, store_dir=tmp_path, batch_size=3)
        # dead-lettered ids are done too (kept for replay), so all eight come out
        assert_that(ids, equal_to([a.id for a in batch]))
    assert len(documents(opensearch_url, es_config.index_prefix)) == 7
    assert DeadLetterStore(tmp_path / "deadletter").count() == 1


# --------------------------------------------------------------------------- commands


def test_commands_setup_list_replay(
    proxy: FaultProxy, prefix: str, opensearch_url: str, tmp_path: Path, registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.cli import main

    engine = "elasticsearch" if proxy.elasticsearch else "opensearch"
    monkeypatch.delenv("NEWSMON_OPENSEARCH_URL", raising=False)
    monkeypatch.setenv("NEWSMON_OPENSEARCH_URL" if engine == "opensearch" else "NEWSMON_ES_URL", proxy.url)
    monkeypatch.setenv("NEWSMON_ES_INDEX", prefix)
    monkeypatch.setenv("NEWSMON_STORE", str(tmp_path / "store"))
    assert main(["setup", engine]) == 0
    assert "installed" in capsys.readouterr().out
    assert main(["setup", engine]) == 0
    assert "up to date" in capsys.readouterr().out
    cfg = ElasticsearchConfig(urls=(proxy.url,), index_prefix=prefix, engine=engine)
    sink = ElasticsearchSink(cfg, deadletter_dir=tmp_path / "store" / "deadletter", sleep=lambda s: None)
    proxy.faults.reject_items(1, status=400)
    rejected = art(1)
    assert sink.write([rejected]).dead_lettered == (rejected.id,)
    assert main(["deadletter", "list", "--json"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["article_id"] == rejected.id
    assert main(["deadletter", "replay"]) == 0
    assert json.loads(capsys.readouterr().out) == {"replayed": 1, "still_rejected": 0, "retry_later": 0}
    assert (f"{prefix}-articles-2024.05", rejected.id) in documents(opensearch_url, prefix)
    assert main(["deadletter", "list"]) == 0
    assert "0 pending entries" in capsys.readouterr().out


# --------------------------------------------------------------------------- the engine down: one line, not a traceback


def run_newsmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


@pytest.mark.parametrize("var", ["NEWSMON_ES_URL", "NEWSMON_OPENSEARCH_URL"])
def test_setup_and_search_against_a_closed_port_print_one_line(var: str, tmp_path: Path) -> None:
    from tests.opensearchnode import free_port

    env = {var: f"http://127.0.0.1:{free_port()}", "NEWSMON_STORE": str(tmp_path)}
    for args in (("setup", "elasticsearch"), ("search", "putin")):
        done = run_newsmon(*args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert lines[0].startswith("newsmon: cannot reach") and "127.0.0.1" in lines[0], lines


@pytest.mark.parametrize("engine", ENGINES)
def test_search_against_an_engine_answering_503_prints_one_line(engine: str, opensearch_url: str, tmp_path: Path) -> None:
    with FaultProxy(opensearch_url, elasticsearch=engine == "elasticsearch") as p:
        p.faults.fail_requests(503, times=100, path="_search")
        var = "NEWSMON_ES_URL" if engine == "elasticsearch" else "NEWSMON_OPENSEARCH_URL"
        done = run_newsmon("search", "putin", env={var: p.url, "NEWSMON_STORE": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "503" in lines[0]


def test_search_syntax_on_the_real_engine(es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry) -> None:
    """What README promises of `newsmon search`: all words, "phrases", prefix*, -exclusions, case and accents."""
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    a = art(1, title="Kunjungan Putin ke Pyöngyang", text="Putin bertemu Kim Jong Un di Pyöngyang membahas kerja sama militer.")
    b = art(2, title="Menlu Rusia ke Seoul", text="Menteri luar negeri Rusia berkunjung ke Seoul membahas kerja sama ekonomi.")
    sink.write([a, b])
    sink.refresh()

    def ids(q: str) -> set[str]:
        return {h.id for h in sink.search(q, limit=10)}

    assert ids("KUNJUNGAN putin") == {a.id}
    assert ids("pyongyang") == {a.id}  # accent-insensitive
    assert ids('"kerja sama militer"') == {a.id}
    assert ids('"sama kerja militer"') == set()
    assert ids("kunjung*") == {a.id, b.id}  # Kunjungan, berkunjung (stemmed to kunjung)
    assert ids("rusia -militer") == {b.id}
    assert ids("pyongyang OR seoul") == {a.id, b.id}  # the embedded index's OR, in the engine's terms
    assert ids('"kerja sama militer" OR seoul') == {a.id, b.id}
    sink.close()


@pytest.mark.live
def test_live_cluster_contract(tmp_path: Path, registry: CollectorRegistry) -> None:
    """The core contract through the sink's own API only, against NEWSMON_TEST_ES_URL (make test-live)."""
    if not LIVE_URL:
        pytest.skip("NEWSMON_TEST_ES_URL not set: the contract ran against the OpenSearch test node above")
    cfg = live_config(f"nmtest-{uuid.uuid4().hex[:10]}")
    setup_elasticsearch(cfg)
    sink = make_sink(cfg, tmp_path)
    try:
        orig, bad = art(1), art(2, similarity="sangat mirip")
        dup = art(3, month=7, dup_of=orig)
        result = sink.write([orig, bad, dup])
        assert set(result.acknowledged) == {orig.id, dup.id} and result.dead_lettered == (bad.id,)
        sink.write([dup])
        stored = sink.get(orig.id)
        assert stored is not None and [s.id for s in stored.also_published_at] == [dup.id]
        sink.refresh()
        assert [h.id for h in sink.search("kunjungan putin")] == [orig.id]
    finally:
        sink.close()
        es = make_client(cfg)
        es.options(ignore_status=404).indices.delete(index=f"{cfg.index_prefix}-articles-*", allow_no_indices=True)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{cfg.index_prefix}-articles")
        es.close()


def test_dedup_store_on_opensearch_reports_faults_like_on_elasticsearch(opensearch_url: str, prefix: str) -> None:
    """connectors.elasticsearch.compat: the ES dedup store over opensearch-py keeps its error contract."""
    from connectors.elasticsearch.dedupstore import ElasticsearchDedupStore
    from tests.opensearchnode import free_port
    from transforms.dedupstate import DedupStoreError

    with FaultProxy(opensearch_url, elasticsearch=False) as p:
        store = ElasticsearchDedupStore(ElasticsearchConfig(urls=(p.url,), index_prefix=prefix, engine="opensearch"))
        try:
            assert store.ensure_index() is True and store.ensure_index() is False
            p.faults.fail_requests(503, times=20, path="_search")
            with pytest.raises(DedupStoreError) as info:
                store.candidates(text_hash="", bands=(1,), exclude_id="n")
            assert info.value.transient is True
        finally:
            store.close()
    down = ElasticsearchDedupStore(ElasticsearchConfig(urls=(f"http://127.0.0.1:{free_port()}",), index_prefix=prefix,
                                                       engine="opensearch"))
    with pytest.raises(DedupStoreError) as info:
        down.lookup("a")
    assert info.value.transient is True
    down.close()
    node_call(f"{opensearch_url}/{prefix}-dedup", "DELETE")
