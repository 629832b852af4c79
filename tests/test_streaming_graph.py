"""The streaming driver's graph: built (not run: no streaming runner works offline here)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipelines.config import Config, ElasticsearchConfig, FeedConfig
from pipelines.streaming import build_streaming_pipeline


def config(tmp_path: Path) -> Config:
    return Config(
        feeds=(FeedConfig(url="https://www.antaranews.com/rss/dunia.xml", id="antara-dunia", name="ANTARA"),),
        store_dir=tmp_path,
        elasticsearch=ElasticsearchConfig(urls=("https://es.example:9200",), api_key="c2VjcmV0LWFwaS1rZXk=",
                                          password="pa55-w0rd"),
    )


@pytest.mark.parametrize("runner", ["PrismRunner", "FlinkRunner", "DataflowRunner"])
def test_streaming_graph_wraps_the_same_composite(tmp_path: Path, runner: str) -> None:
    extra = ["--flink_master=localhost:8081"] if runner == "FlinkRunner" else []
    if runner == "DataflowRunner":
        extra = ["--project=newsmon-prod-123", "--region=asia-southeast2", "--temp_location=gs://newsmon-bucket/tmp",
                 "--staging_location=gs://newsmon-bucket/staging"]
    pipeline = build_streaming_pipeline(config(tmp_path), [f"--runner={runner}", *extra])
    proto = pipeline.to_runner_api()
    labels = {t.unique_name for t in proto.components.transforms.values()}
    for step in ("Read feeds", "Accept new URLs", "Spread work", "Process/Fetch pages", "Process/Extract",
                 "Process/Deduplicate", "Process/Tag topics", "Process/Write"):
        assert step in labels, sorted(labels)
    assert any("PeriodicImpulse" in name or "Impulse" in name for name in labels)
    from apache_beam.options.pipeline_options import StandardOptions

    assert pipeline.options.view_as(StandardOptions).streaming


def test_streaming_graph_carries_no_secrets(tmp_path: Path) -> None:
    pipeline = build_streaming_pipeline(config(tmp_path), ["--runner=PrismRunner"])
    blob = pipeline.to_runner_api().SerializeToString()
    assert b"c2VjcmV0LWFwaS1rZXk=" not in blob and b"pa55-w0rd" not in blob
    assert b"es.example" in blob or b"es.example" in pickle.dumps(config(tmp_path))


def test_non_streaming_runner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a streaming runner"):
        build_streaming_pipeline(config(tmp_path), ["--runner=DirectRunner"])


def test_distributed_runs_share_the_elasticsearch_dedup_store(tmp_path: Path) -> None:
    from connectors.elasticsearch.dedupstore import ElasticsearchDedupStoreFactory
    from pipelines.process import Resources

    shared = Resources.from_config(config(tmp_path), use_outbox=False).dedup_store_factory()
    assert isinstance(shared, ElasticsearchDedupStoreFactory)
    blob = pickle.dumps(shared)
    assert b"c2VjcmV0LWFwaS1rZXk=" not in blob and b"pa55-w0rd" not in blob
    local = Resources.from_config(config(tmp_path)).dedup_store_factory()
    assert not isinstance(local, ElasticsearchDedupStoreFactory)
