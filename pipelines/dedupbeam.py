"""The thin Beam wrapper around ``transforms.dedup`` (re-exported there as ``DedupArticles``).

Only a picklable store factory and two window lengths are pickled with the DoFn; the store is
opened once per worker in ``DoFn.setup``. Kept apart from the pure logic so that callers that
never build a pipeline (``newsmon dedup``, benchmarks) do not import Beam.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import apache_beam as beam

from transforms.dedup import decide_batch
from transforms.dedupstate import DedupStore
from transforms.records import Article, utcnow


def _count_duplicate(kind: str) -> None:
    from connectors import metrics

    metrics.get().duplicates.labels(kind).inc()


class _DecideCycle(beam.DoFn):
    """Decides one cycle's group against a store opened in ``setup`` (nothing big is pickled)."""

    def __init__(self, store_factory: Callable[[], DedupStore], window_days: float, story_window_days: float):
        self._factory = store_factory
        self._window_days = window_days
        self._story_window_days = story_window_days
        self._store: DedupStore | None = None

    def setup(self) -> None:
        self._store = self._factory()

    def process(self, keyed: tuple[int, Iterable[Article]]) -> Iterator[Article]:
        """The cycle's decisions in one store transaction, committed before any article goes on
        to be written: a crash then leaves either all of them recorded or none (replayed)."""
        assert self._store is not None
        from connectors import metrics

        now = utcnow()
        stage = metrics.get().stage_seconds.labels("dedup")
        decided: list[Article] = []
        duplicates: list[str] = []
        with self._store.batch():
            self._store.prune(older_than=now - timedelta(days=self._window_days))
            start = time.perf_counter()
            for article in decide_batch(
                keyed[1],
                self._store,
                now=now,
                window_days=self._window_days,
                story_window_days=self._story_window_days,
                on_duplicate=duplicates.append,
            ):
                stage.observe(time.perf_counter() - start)  # this article's decision
                decided.append(article)
                start = time.perf_counter()
        for kind in duplicates:  # counted once the decisions are stored
            _count_duplicate(kind)
        yield from decided

    def teardown(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class DedupArticles(beam.PTransform):
    """PCollection[Article] -> PCollection[Article] with dedup and story fields set.

    Everything in the cycle goes to one key: a cycle is small and decisions against the
    store are sequential, so two copies arriving in the same cycle see each other. On a
    streaming runner apply a window (e.g. one per poll) upstream; the group is per window.
    """

    def __init__(
        self,
        store_factory: Callable[[], DedupStore],
        *,
        window_days: float = 7.0,
        story_window_days: float = 3.0,
    ) -> None:
        super().__init__()
        if window_days <= 0 or story_window_days <= 0:
            raise ValueError("window_days and story_window_days must be positive")
        self._factory = store_factory
        self._window_days = window_days
        self._story_window_days = story_window_days

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return (
            pcoll
            | "Key cycle" >> beam.Map(lambda a: (0, a))
            | "Group cycle" >> beam.GroupByKey()
            | "Decide" >> beam.ParDo(_DecideCycle(self._factory, self._window_days, self._story_window_days))
        )
