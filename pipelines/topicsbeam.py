"""The thin Beam wrapper around ``transforms.topics`` (re-exported there as ``TagTopics``).

Only the user topic directory (a string) is pickled with the DoFn; the compiled topics are
loaded once per worker in ``DoFn.setup``. ``TagTopics`` validates the directory when the
pipeline is built, so a broken topic file fails fast on the driver, not on a worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam

from transforms.records import Article
from transforms.topicrules import Topic, load_topics
from transforms.topics import tag_article


class _TagDoFn(beam.DoFn):
    def __init__(self, user_dir: str | None) -> None:
        self._user_dir = user_dir
        self._topics: tuple[Topic, ...] = ()

    def setup(self) -> None:
        self._topics = load_topics(Path(self._user_dir) if self._user_dir else None)

    def process(self, article: Article) -> Iterator[Article]:
        from connectors import metrics

        start = time.perf_counter()
        tagged = tag_article(article, self._topics)
        metrics.get().stage_seconds.labels("topics").observe(time.perf_counter() - start)
        yield tagged


class TagTopics(beam.PTransform):
    """``PCollection[Article] -> PCollection[Article]`` with ``topics`` and ``topic_evidence`` set."""

    def __init__(self, user_dir: str | Path | None = None) -> None:
        super().__init__()
        if user_dir is not None:
            load_topics(Path(user_dir))  # raises TopicError now rather than on a worker
        self._user_dir = None if user_dir is None else str(user_dir)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | "Apply topic rules" >> beam.ParDo(_TagDoFn(self._user_dir))
