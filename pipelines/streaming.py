"""The streaming driver: the same ``ProcessArticles`` behind a polling source, for runners with
real streaming (Prism, Flink, Dataflow).

    ReadFromRss (PeriodicImpulse -> poll due feeds) -> 'Accept new URLs' -> Reshuffle
        -> ProcessArticles (fetch, extract, dedup, tag, write)

Entries are put in fixed windows of one tick, so the per-window grouping inside
``DedupArticles`` (copies that arrive together are compared with each other) closes at the end
of each window under the default trigger. Ids are fixed (canonical URL -> ``Article.id``)
*before* the Reshuffle, so a retried bundle
re-writes the same ``_id`` instead of creating a duplicate. There is no outbox here: the
runner's checkpointing retries failed bundles. Dedup and feed state live in the stores of
``Resources`` (a shared store when workers are distributed: see README, "Scale-out").

This cannot run on our offline machines (Prism downloads its binary; Flink/Dataflow need a
cluster): tests build and inspect the graph only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import window

from connectors.statestore import PendingItem
from pipelines.accept import accept_entry
from pipelines.config import Config
from pipelines.process import ProcessArticles, Resources
from transforms.records import FeedEntry

log = logging.getLogger(__name__)

STREAMING_RUNNERS = ("PrismRunner", "FlinkRunner", "DataflowRunner", "PortableRunner")


class AcceptEntries(beam.DoFn):
    """FeedEntry -> PendingItem for URLs the dedup store does not know yet."""

    def __init__(self, resources: Resources) -> None:
        self._res = resources
        self._dedup = None

    def setup(self) -> None:
        self._dedup = self._res.dedup_store_factory()()

    def process(self, entry: FeedEntry) -> Iterator[PendingItem]:
        dedup = self._dedup
        _, item = accept_entry(entry, lambda aid: dedup is not None and dedup.lookup(aid) is not None)
        if item is not None:
            yield item

    def teardown(self) -> None:
        close = getattr(self._dedup, "close", None)
        if close is not None:
            close()


def build_streaming_pipeline(cfg: Config, beam_args: Sequence[str], *, tick_seconds: float = 10.0) -> beam.Pipeline:
    """Build (not run) the streaming pipeline for ``--runner`` given in ``beam_args``."""
    from connectors.rssbeam import ReadFromRss

    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    if runner not in STREAMING_RUNNERS:
        raise ValueError(f"--runner={runner} is not a streaming runner; use one of {', '.join(STREAMING_RUNNERS)}")
    options.view_as(StandardOptions).streaming = True
    resources = Resources.from_config(cfg, use_outbox=False)
    state_factory = resources.open_state
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Read feeds" >> ReadFromRss(cfg.enabled_feeds, cfg.fetch, state_factory, tick_seconds=tick_seconds)
        | "Accept new URLs" >> beam.ParDo(AcceptEntries(resources))
        | "Micro-batch windows" >> beam.WindowInto(window.FixedWindows(tick_seconds))
        | "Spread work" >> beam.Reshuffle()
        | "Process" >> ProcessArticles(resources)
    )
    return pipeline
