"""The streaming driver's graph for Prism, Flink and Dataflow, and the pieces the real Prism run (test_streaming_e2e.py) showed."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

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
    for step in ("Read feeds", "Spread work", "Process/Fetch pages", "Process/Extract",
                 "Process/Deduplicate", "Process/Tag topics", "Process/Write"):
        assert step in labels, sorted(labels)
    if runner == "PrismRunner":  # worker in this process: the durable pending queue of the state store
        assert {"Read feeds/Poll, accept and queue", "Forget written"} <= labels, sorted(labels)
        assert "Accept new URLs" not in labels
    else:  # workers elsewhere: poll and accept (at most once)
        assert "Accept new URLs" in labels and "Forget written" not in labels, sorted(labels)
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


# -- what the real runner showed (tests/test_streaming_e2e.py runs it on Prism) -----------------
def test_poll_interval_pins_every_feed_and_sets_the_tick(tmp_path: Path) -> None:
    from pipelines.streaming import effective_feeds, tick_for

    cfg = config(tmp_path)
    assert tick_for(effective_feeds(cfg)) == 10.0  # shipped bounds (60 s and more): tick capped at 10 s
    pinned = effective_feeds(cfg.replace(poll_interval=1.0))
    assert [(f.min_interval, f.max_interval) for f in pinned] == [(1.0, 1.0)]
    assert tick_for(pinned) == 1.0
    assert tick_for(effective_feeds(cfg.replace(poll_interval=0.2))) == 1.0  # never busier than 1 s


def test_no_feeds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no feeds configured"):
        build_streaming_pipeline(config(tmp_path).replace(feeds=()), ["--runner=PrismRunner"])


def test_prism_loopback_keeps_dedup_on_disk_and_other_workers_share_it(tmp_path: Path) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from connectors.elasticsearch.dedupstore import ElasticsearchDedupStoreFactory
    from pipelines.streaming import streaming_resources, worker_runs_in_this_process

    cfg = config(tmp_path)
    prism = PipelineOptions(["--runner=PrismRunner"])
    assert worker_runs_in_this_process(prism)
    assert not isinstance(streaming_resources(cfg, prism).dedup_store_factory(), ElasticsearchDedupStoreFactory)
    assert streaming_resources(cfg, prism).sink_patience == 600.0  # Prism fails the job on a failed bundle
    for args in (["--runner=PrismRunner", "--environment_type=PROCESS"], ["--runner=FlinkRunner"]):
        opts = PipelineOptions(args)
        assert not worker_runs_in_this_process(opts)
        assert isinstance(streaming_resources(cfg, opts).dedup_store_factory(), ElasticsearchDedupStoreFactory)
    assert worker_runs_in_this_process(PipelineOptions(["--runner=FlinkRunner", "--environment_type=LOOPBACK"]))


def test_opensearch_with_workers_elsewhere_shares_dedup_in_the_cluster(tmp_path: Path) -> None:
    import dataclasses

    from apache_beam.options.pipeline_options import PipelineOptions

    from connectors.elasticsearch.dedupstore import ElasticsearchDedupStoreFactory
    from pipelines.streaming import streaming_resources

    cfg = config(tmp_path)
    cfg = cfg.replace(elasticsearch=dataclasses.replace(cfg.elasticsearch, engine="opensearch"))
    flink = ["--runner=FlinkRunner", "--flink_master=localhost:8081"]
    factory = streaming_resources(cfg, PipelineOptions(flink)).dedup_store_factory()
    assert isinstance(factory, ElasticsearchDedupStoreFactory) and factory.config.engine == "opensearch"
    build_streaming_pipeline(cfg, flink)
    build_streaming_pipeline(cfg, ["--runner=PrismRunner"])  # one process: the SQLite store is shared


BEAM_FAILURE = """Pipeline job-001 failed in state FAILED: bundle inst016 stage-005 failed:Traceback (most recent call last):
  File "apache_beam/runners/common.py", line 1498, in apache_beam.runners.common.DoFnRunner.process
  File "/srv/newsmon/pipelines/process.py", line 331, in _flush
    raise SinkUnavailable(
connectors.sink.SinkUnavailable: 2 of 2 articles not acknowledged after 600s; the bundle will be retried

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
RuntimeError: connectors.sink.SinkUnavailable: 2 of 2 articles not acknowledged after 600s [while running 'Process/Write']
"""


def test_a_failed_job_is_told_in_one_line() -> None:
    from pipelines.streaming import _one_line

    line = _one_line(RuntimeError(BEAM_FAILURE))
    assert "\n" not in line
    assert line.startswith("RuntimeError: connectors.sink.SinkUnavailable: 2 of 2 articles not acknowledged"), line
    assert _one_line(RuntimeError("Pipeline failed.")) == "Pipeline failed."


def test_worker_tracebacks_are_cut_to_their_cause() -> None:
    import logging

    from pipelines.streaming import ShortTracebacks

    record = logging.LogRecord("root", logging.ERROR, __file__, 1, "bundle inst016 failed:%s", (BEAM_FAILURE,), None)
    assert ShortTracebacks().filter(record)
    text = record.getMessage()
    assert "Traceback" not in text and "\n" not in text
    assert "SinkUnavailable: 2 of 2 articles" in text
    ours = logging.LogRecord("newsmon", logging.ERROR, __file__, 1, "%s", ("Traceback (most recent call last)",), None)
    ShortTracebacks().filter(ours)
    assert ours.getMessage() == "Traceback (most recent call last)"  # our own records are left alone


def test_write_emits_acknowledged_ids_in_their_articles_windows(tmp_path: Path) -> None:
    """On a streaming runner the articles are in fixed windows; ids emitted in the GlobalWindow broke
    the window coder at the end of the first bundle on Prism. Checked here on the local runner."""
    from datetime import datetime, timezone

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms import window

    from pipelines.config import ElasticsearchConfig
    from pipelines.process import Resources, WriteToSinkFn
    from transforms.records import Article

    cfg = config(tmp_path).replace(elasticsearch=ElasticsearchConfig())
    res = Resources.from_config(cfg, use_outbox=False)
    now = datetime(2024, 6, 19, 12, tzinfo=timezone.utc)
    articles = [
        Article(id=f"{i:064x}", url=f"https://kabar.example/{i}", canonical_url=f"https://kabar.example/{i}",
                source="Kabar", title=f"Judul {i}", text="Isi berita.", published=now, first_seen=now)
        for i in range(3)
    ]

    def with_window(article_id: str, w: Any = beam.DoFn.WindowParam) -> tuple[str, float]:
        return article_id, float(w.start)

    with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions()) as p:
        ids = (
            p
            | beam.Create([(a, 15.0 * i) for i, a in enumerate(articles)])
            | beam.Map(lambda pair: window.TimestampedValue(pair[0], pair[1]))
            | beam.WindowInto(window.FixedWindows(10))
            | beam.ParDo(WriteToSinkFn(res))
            | beam.Map(with_window)
        )
        assert_that(ids, equal_to([(a.id, 10.0 * (15 * i // 10)) for i, a in enumerate(articles)]))


def test_the_stop_watchdog_kills_only_its_own_children() -> None:
    """Before a hard exit newsmon SIGKILLs its direct children (Prism), by pid, so none is orphaned."""
    import subprocess
    import sys

    from tests.e2e import REPO

    code = (
        "import subprocess, sys\n"
        "from pipelines.streaming import kill_own_children\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "kill_own_children()\n"
        "print(child.wait(timeout=10))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "-9"
