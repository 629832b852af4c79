"""``WriteToElasticsearch``: the sink as a reusable Beam transform (Elasticsearch or OpenSearch).

It is the drivers' own write step (``pipelines.process.WriteToSinkFn`` without the local
outbox), behind a ``Reshuffle`` so ids are fixed before a retried bundle writes again: one
Beam write path for the local driver, the streaming driver and other Beam users.

Imported on first use only (``connectors.elasticsearch.WriteToElasticsearch``), so the CLI,
search and setup never import Beam.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import apache_beam as beam

from pipelines.config import Config, ElasticsearchConfig


class WriteToElasticsearch(beam.PTransform):  # type: ignore[misc]
    """``PCollection[Article]`` -> ``PCollection[str]`` of acknowledged (or dead-lettered) ids.

    Rejected documents go to the dead-letter store in ``<store_dir>/deadletter``; documents
    still failing transiently fail the bundle, and the runner retries it (every write is
    idempotent on ``Article.id``). Secrets are not pickled: workers read ``NEWSMON_ES_API_KEY``
    / ``NEWSMON_ES_PASSWORD`` from their environment.
    """

    def __init__(
        self, config: ElasticsearchConfig, *, store_dir: str | Path, batch_size: int = 500, reshuffle: bool = True
    ) -> None:
        super().__init__()
        if not config.urls:
            raise ValueError("WriteToElasticsearch needs at least one URL")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._config = dataclasses.replace(config, api_key=None, password=None)
        self._store_dir = Path(store_dir)
        self._batch_size = batch_size
        self._reshuffle = reshuffle

    def expand(self, pcoll: Any) -> Any:
        from pipelines.process import Resources, WriteToSinkFn

        resources = Resources.from_config(
            Config(feeds=(), elasticsearch=self._config, store_dir=self._store_dir), use_outbox=False
        )
        if self._reshuffle:
            pcoll = pcoll | "Reshuffle" >> beam.Reshuffle()
        return pcoll | "Bulk write" >> beam.ParDo(WriteToSinkFn(resources, batch_size=self._batch_size))
