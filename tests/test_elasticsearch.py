"""Contract and fault tests of the Elasticsearch sink, driving the real client over real HTTP.

Tests marked ``live`` run against the ES test server (tests/esserver.py) in the normal run,
and unchanged against a real cluster when ``NEWSMON_TEST_ES_URL`` is set (credentials from
``NEWSMON_TEST_ES_API_KEY`` or ``NEWSMON_TEST_ES_USERNAME``/``NEWSMON_TEST_ES_PASSWORD``,
``NEWSMON_TEST_ES_CA_CERT``). Each test uses its own index prefix and deletes its indices.
Fault-injection tests need the test server and are not marked ``live``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, helpers
from prometheus_client import CollectorRegistry, generate_latest

from connectors.deadletter import PENDING, REPLAYED, DeadLetterStore
from connectors.elasticsearch import (
    MERGE_SCRIPT,
    ClusterRefused,
    ElasticsearchSink,
    WriteToElasticsearch,
    article_document,
    backoff_delay,
    classify_item,
    index_for,
    index_pattern,
    make_client,
    plan_actions,
    redact,
    setup_elasticsearch,
    units_for,
)
from connectors.sink import SinkUnavailable
from pipelines import metrics
from pipelines.config import ElasticsearchConfig
from tests.eslive import LIVE_URL, live_config
from tests.esserver import EsTestServer, run_merge_script
from transforms.records import Article, Syndication, TopicEvidence, article_id

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[EsTestServer]:
    with EsTestServer(refresh_interval=0) as srv:
        yield srv


@pytest.fixture
def test_server(server: EsTestServer) -> Iterator[EsTestServer]:
    """The ES test server with clean state (fault tests)."""
    server.reset()
    server.state.refresh_interval = 0
    yield server
    server.faults.clear()
    server.auth = None


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    metrics.set_default(metrics.Metrics(reg))
    return reg


@pytest.fixture
def es_config(server: EsTestServer) -> Iterator[ElasticsearchConfig]:
    """The live cluster when NEWSMON_TEST_ES_URL is set, else the ES test server; unique prefix."""
    prefix = f"nmtest-{uuid.uuid4().hex[:10]}"
    if LIVE_URL:
        cfg = live_config(prefix)
    else:
        server.reset()
        cfg = ElasticsearchConfig(urls=(server.url,), index_prefix=prefix)
    yield cfg
    es = make_client(cfg)
    try:
        es.options(ignore_status=404).indices.delete(index=index_pattern(prefix), allow_no_indices=True)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-articles")
    finally:
        es.close()


def make_sink(
    cfg: ElasticsearchConfig, tmp_path: Path, sleeps: list[float] | None = None, **kw: object
) -> ElasticsearchSink:
    record = sleeps if sleeps is not None else []
    return ElasticsearchSink(cfg, deadletter_dir=tmp_path / "dl", sleep=record.append, backoff=0.01, **kw)  # type: ignore[arg-type]


def art(n: int, *, month: int = 5, dup_of: Article | None = None, **changes: object) -> Article:
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
        a = replace(
            a, duplicate_of=dup_of.id, duplicate_kind="near", similarity=0.9, story_id=dup_of.story_id
        )
    return replace(a, **changes) if changes else a


# --------------------------------------------------------------------------- pure logic


def test_index_is_a_function_of_the_article() -> None:
    a = art(1, month=5)
    assert index_for("nm", a) == "nm-articles-2024.05"
    assert (
        index_for("nm", replace(a, published=None, first_seen=datetime(2023, 12, 31, tzinfo=UTC)))
        == "nm-articles-2023.12"
    )
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
    # an original that lives elsewhere is addressed where it is; an unknown one is unplaced
    actions, unplaced = plan_actions(units_for([d1]), prefix="nm", locations={orig.id: "nm-articles-2020.01"})
    assert {(a.id, a.index) for a in actions} == {
        (d1.id, "nm-articles-2024.05"),
        (orig.id, "nm-articles-2020.01"),
    }
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


def test_merge_script_semantics() -> None:
    s1 = Syndication("b", "u", "s", datetime(2024, 1, 2, tzinfo=UTC), "near", 0.9).to_dict()
    s0 = Syndication("a", "u", "s", datetime(2024, 1, 1, tzinfo=UTC), "near", 0.9).to_dict()
    op, src = run_merge_script({"title": "x", "also_published_at": [s1]}, {"doc": None, "add": [s0, s1]})
    assert op == "index" and src is not None and [s["id"] for s in src["also_published_at"]] == ["a", "b"]
    assert run_merge_script(src, {"doc": None, "add": [s0]}) == ("noop", None)
    op, src2 = run_merge_script(src, {"doc": {"title": "new", "also_published_at": []}, "add": []})
    assert src2 is not None and src2["title"] == "new" and len(src2["also_published_at"]) == 2
    assert "ctx._source.putAll(params.doc)" in MERGE_SCRIPT  # the script the server emulates


def test_redact_hides_every_secret() -> None:
    cfg = ElasticsearchConfig(
        urls=("https://bob:pw-in-url@es:9200",), api_key="SEKRIT-KEY", username="u", password="hunter22"
    )
    text = "key SEKRIT-KEY pw hunter22 url https://bob:pw-in-url@es:9200 basic dTpodW50ZXIyMg=="
    out = redact(text, cfg)
    for secret in ("SEKRIT-KEY", "hunter22", "pw-in-url", "dTpodW50ZXIyMg=="):
        assert secret not in out
    assert "es:9200" in out


# --------------------------------------------------------------------------- contract (live-capable)


@pytest.mark.live
def test_setup_is_idempotent(es_config: ElasticsearchConfig) -> None:
    first = setup_elasticsearch(es_config)
    second = setup_elasticsearch(es_config)
    assert any("installed" in line for line in first)
    assert any("up to date" in line for line in second)
    es = make_client(es_config)
    stored = es.indices.get_index_template(name=f"{es_config.index_prefix}-articles")["index_templates"][0]
    mappings = stored["index_template"]["template"]["mappings"]
    assert mappings["properties"]["title"]["analyzer"] == "indonesian"
    assert mappings["properties"]["title"]["fields"]["std"]["analyzer"] == "standard"
    assert mappings["properties"]["topics"]["type"] == "keyword"
    es.close()


@pytest.mark.live
def test_write_is_idempotent_and_searchable(
    es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    batch = [art(n) for n in range(12)] + [art(50, month=6)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch} and not result.retry and not result.dead_lettered
    assert registry.get_sample_value(
        "newsmon_articles_indexed_total", {"sink": "elasticsearch", "outcome": "indexed"}
    ) == len(batch)
    sink.refresh()
    assert sink.count() == len(batch)
    # re-sending, even with a corrected timestamp in another month, never adds a document
    again = sink.write(batch[:3] + [replace(batch[3], published=datetime(2024, 9, 1, tzinfo=UTC))])
    assert len(again.acknowledged) == 4
    sink.refresh()
    assert sink.count() == len(batch)
    stored = sink.get(batch[3].id)
    assert stored is not None and stored.published == datetime(2024, 9, 1, tzinfo=UTC)
    hits = sink.search("putin pyongyang", limit=5)
    assert len(hits) == 5 and all("Putin" in h.title for h in hits)
    assert sink.search("perjanjian kemitraan", limit=50)[0].topics == ("russia-dprk",)
    assert sink.search("tidakadakatasemacamini") == []
    sink.close()


@pytest.mark.live
def test_near_duplicate_updates_original(
    es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    orig = art(1)
    d_same_batch = art(2, dup_of=orig)
    assert sink.write([d_same_batch, orig]).acknowledged  # duplicate listed first on purpose
    d_later = art(3, month=7, dup_of=orig)
    assert set(sink.write([d_later]).acknowledged) == {d_later.id}
    sink.write([orig, d_later])  # re-sending the original keeps its syndications; no double entry
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


@pytest.mark.live
def test_mapping_rejection_goes_to_dead_letters(
    es_config: ElasticsearchConfig, tmp_path: Path, registry: CollectorRegistry
) -> None:
    setup_elasticsearch(es_config)
    sink = make_sink(es_config, tmp_path)
    good = art(1)
    bad = art(2, similarity="sangat mirip")  # a float field
    result = sink.write([good, bad])
    assert result.acknowledged == (good.id,)
    assert result.dead_lettered == (bad.id,)
    assert "document_parsing_exception" in result.errors[bad.id] or "parse" in result.errors[bad.id]
    assert registry.get_sample_value("newsmon_dead_letters_total", {"sink": "elasticsearch"}) == 1
    store = DeadLetterStore(tmp_path / "dl")
    [entry] = list(store.entries())
    assert entry.article == bad and entry.status == PENDING
    # replay: still rejected, so the entry stays pending with one more attempt (no second entry)
    report = store.replay(sink.write, sink="elasticsearch")
    assert report.still_rejected == (bad.id,) and not report.replayed
    [entry] = list(store.entries())
    assert entry.attempts == 2
    sink.close()


# --------------------------------------------------------------------------- faults (test server only)


def fault_setup(test_server: EsTestServer, prefix: str = "nm") -> ElasticsearchConfig:
    cfg = ElasticsearchConfig(urls=(test_server.url,), index_prefix=prefix)
    setup_elasticsearch(cfg)
    return cfg


def test_per_item_429_is_retried_with_backoff(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    test_server.faults.reject_items(7)  # a 429 storm over two rounds
    batch = [art(n) for n in range(5)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(test_server.documents()) == 5
    assert len(sleeps) == 2 and all(0 < s <= 0.02 * 2 for s in sleeps)
    assert registry.get_sample_value("newsmon_bulk_retries_total", {"sink": "elasticsearch"}) == 5 + 2
    second = test_server.requests_to("_bulk")[-2].bulk_actions()
    assert len(second) == 5 and {m["_id"] for _, m in second} == {a.id for a in batch}


def test_429_storm_beyond_retries_reports_retry_not_dead_letter(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sink = make_sink(cfg, tmp_path, max_retries=2)
    test_server.faults.reject_items(10_000)
    batch = [art(n) for n in range(3)]
    result = sink.write(batch)
    assert set(result.retry) == {a.id for a in batch} and not result.dead_lettered
    assert "429" in result.errors[batch[0].id]
    assert DeadLetterStore(tmp_path / "dl").count() == 0
    test_server.faults.clear()
    assert set(sink.write(batch).acknowledged) == {a.id for a in batch}


@pytest.mark.parametrize("status", [429, 503])
def test_whole_request_failures_are_retried(
    status: int, test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    test_server.faults.fail_requests(status, times=2, path="_bulk")
    batch = [art(n) for n in range(4)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(sleeps) == 2 and len(test_server.documents()) == 4


@pytest.mark.parametrize("after_processing", [False, True])
def test_connection_reset_is_retried_without_duplicates(
    after_processing: bool, test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sink = make_sink(cfg, tmp_path)
    test_server.faults.reset_connections(times=1, path="_bulk", after_processing=after_processing)
    batch = [art(n) for n in range(6)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(test_server.documents()) == 6
    assert len(test_server.requests_to("_bulk")) == 2


def test_slow_reply_times_out_and_retries_idempotently(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sink = make_sink(cfg, tmp_path, request_timeout=0.3)
    test_server.faults.delay_replies(1.0, times=1, path="_bulk")  # processed, answered too late
    batch = [art(n) for n in range(3)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(test_server.documents()) == 3


def test_short_items_array_is_detected(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    # the helper itself drops unanswered items silently: prove it, then prove we do not
    test_server.faults.truncate_items(drop=2)
    es = Elasticsearch(test_server.url)
    seen = list(
        helpers.streaming_bulk(
            es, [{"_index": "raw", "_id": str(i), "n": i} for i in range(5)], raise_on_error=False
        )
    )
    assert len(seen) == 3
    es.close()
    sleeps: list[float] = []
    sink = make_sink(cfg, tmp_path, sleeps)
    test_server.faults.truncate_items(drop=2)
    batch = [art(n) for n in range(5)]
    result = sink.write(batch)
    assert set(result.acknowledged) == {a.id for a in batch}
    assert len(sleeps) == 1
    resent = test_server.requests_to("_bulk")[-1].bulk_actions()
    assert {m["_id"] for _, m in resent} == {a.id for a in batch[-2:]}


@pytest.mark.hostile
def test_cluster_down_then_back_drains_backlog(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sink = make_sink(cfg, tmp_path, max_retries=3)
    test_server.faults.reset_connections(times=10_000)  # "down": every request is cut
    backlog = [art(n) for n in range(20)]
    for _ in range(3):  # several driver cycles while down
        with pytest.raises(SinkUnavailable):
            sink.write(backlog)
    assert test_server.documents() == {}
    test_server.faults.clear()
    result = sink.write(backlog)
    assert set(result.acknowledged) == {a.id for a in backlog}
    assert len(test_server.documents()) == 20


def test_partial_ack_then_failure_reports_retry(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    # one action per bulk request (byte limit); the cluster goes away after two requests
    sink = make_sink(cfg, tmp_path, max_retries=2, max_chunk_bytes=1024)
    test_server.faults.reset_connections(times=10_000, path="_bulk", after=2)
    batch = [art(n) for n in range(4)]
    result = sink.write(batch)  # something was stored, so no exception: a precise report
    assert result.acknowledged == (batch[0].id, batch[1].id)
    assert result.retry == (batch[2].id, batch[3].id)
    assert "ConnectionError" in result.errors[batch[2].id]
    assert (
        registry.get_sample_value(
            "newsmon_articles_indexed_total", {"sink": "elasticsearch", "outcome": "failed"}
        )
        == 2
    )


def test_missing_product_header_is_refused(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = ElasticsearchConfig(urls=(test_server.url,), index_prefix="nm")
    test_server.faults.product_header = False
    with pytest.raises(ClusterRefused, match="not Elasticsearch"):
        setup_elasticsearch(cfg)
    sink = make_sink(cfg, tmp_path)
    with pytest.raises(ClusterRefused):
        sink.write([art(1)])
    assert DeadLetterStore(tmp_path / "dl").count() == 0


def test_item_rejected_then_replayed(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    sink = make_sink(cfg, tmp_path)
    test_server.faults.reject_items(1, status=400)
    a, b = art(1), art(2)
    result = sink.write([a, b])
    assert result.dead_lettered == (a.id,) and result.acknowledged == (b.id,)
    store = DeadLetterStore(tmp_path / "dl")
    report = store.replay(sink.write, sink="elasticsearch")
    assert report.replayed == (a.id,)
    assert store.count() == 0 and store.count(status=REPLAYED) == 1
    assert len(test_server.documents()) == 2


def test_syndication_within_refresh_interval_uses_cache(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    cfg = fault_setup(test_server)
    test_server.state.refresh_interval = 3600  # nothing becomes searchable on its own
    sink = make_sink(cfg, tmp_path)
    orig = art(1, month=3)
    sink.write([orig])
    dup = art(2, month=8, dup_of=orig)
    sink.write([dup])
    docs = test_server.documents()
    assert [s["id"] for s in docs[("nm-articles-2024.03", orig.id)]["also_published_at"]] == [dup.id]
    # another process (empty cache) cannot see the unrefreshed original: syndication skipped, dup stored
    other = make_sink(cfg, tmp_path / "other")
    dup2 = art(3, month=8, dup_of=orig)
    assert other.write([dup2]).acknowledged == (dup2.id,)
    assert ("nm-articles-2024.08", dup2.id) in test_server.documents()


def test_secrets_never_leak(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    key, password = "APIKEY-TOPSECRET-123", "hunter2-password"
    test_server.auth = lambda h: h.get("authorization") == f"ApiKey {key}"
    caplog.set_level(logging.DEBUG)
    good = ElasticsearchConfig(urls=(test_server.url,), index_prefix="nm", api_key=key)
    setup_elasticsearch(good)
    sink = make_sink(good, tmp_path, max_retries=1)
    test_server.faults.fail_requests(503, times=1, path="_bulk")
    test_server.faults.reject_items(1, status=400)
    assert len(sink.write([art(1), art(2)]).dead_lettered) == 1
    assert test_server.requests_to("_bulk")[0].headers["authorization"] == f"ApiKey {key}"
    wrong = ElasticsearchConfig(
        urls=(test_server.url.replace("http://", f"http://user:{password}@"),),
        index_prefix="nm",
        api_key="WRONG-" + key,
    )
    messages = []
    with pytest.raises(ClusterRefused) as err:
        setup_elasticsearch(wrong)
    messages.append(str(err.value))
    with pytest.raises(SinkUnavailable) as err2:
        make_sink(wrong, tmp_path / "w").write([art(3)])
    messages.append(str(err2.value))
    dl_text = b"".join(p.read_bytes() for p in (tmp_path / "dl").iterdir())
    everything = (
        "\n".join(messages)
        + caplog.text
        + generate_latest(registry).decode()
        + dl_text.decode("utf-8", "replace")
    )
    assert "401" in "\n".join(messages)
    for secret in (key, password):
        assert secret not in everything


def test_write_to_elasticsearch_transform(
    test_server: EsTestServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    cfg = fault_setup(test_server)
    batch = [art(n) for n in range(7)] + [art(40, month=2, similarity="x")]
    with TestPipeline(runner="FnApiRunner") as p:
        ids = (
            p
            | beam.Create(batch)
            | WriteToElasticsearch(cfg, deadletter_dir=str(tmp_path / "dl"), batch_size=3)
        )
        assert_that(ids, equal_to([a.id for a in batch[:7]]))
    assert len(test_server.documents()) == 7
    assert DeadLetterStore(tmp_path / "dl").count() == 1


@pytest.mark.live
def test_live_cluster_is_configured() -> None:
    if not LIVE_URL:
        pytest.skip("NEWSMON_TEST_ES_URL not set: the live contract tests ran against the ES test server")
    es = Elasticsearch(LIVE_URL.split(",")[0])
    assert int(es.info()["version"]["number"].split(".")[0]) in (8, 9)


# --------------------------------------------------------------------------- commands


def test_commands_setup_list_replay(
    test_server: EsTestServer,
    tmp_path: Path,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.cli import main

    monkeypatch.setenv("NEWSMON_ES_URL", test_server.url)
    monkeypatch.setenv("NEWSMON_ES_INDEX", "cli")
    monkeypatch.setenv("NEWSMON_STORE", str(tmp_path / "store"))
    assert main(["setup", "elasticsearch"]) == 0
    assert "installed" in capsys.readouterr().out
    assert main(["setup", "elasticsearch"]) == 0
    assert "up to date" in capsys.readouterr().out
    cfg = ElasticsearchConfig(urls=(test_server.url,), index_prefix="cli")
    sink = ElasticsearchSink(cfg, deadletter_dir=tmp_path / "store" / "deadletter", sleep=lambda s: None)
    test_server.faults.reject_items(1, status=400)
    rejected = art(1)
    assert sink.write([rejected]).dead_lettered == (rejected.id,)
    assert main(["deadletter", "list", "--json"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["article_id"] == rejected.id
    assert main(["deadletter", "replay"]) == 0
    assert json.loads(capsys.readouterr().out) == {"replayed": 1, "still_rejected": 0, "retry_later": 0}
    assert ("cli-articles-2024.05", rejected.id) in test_server.documents()
    assert main(["deadletter", "list"]) == 0
    assert "0 pending entries" in capsys.readouterr().out
    monkeypatch.setenv("NEWSMON_ES_URL", "http://127.0.0.1:9")  # nothing listens: exit 1, message
    assert main(["setup", "elasticsearch"]) == 1
    assert "cannot reach" in capsys.readouterr().err
