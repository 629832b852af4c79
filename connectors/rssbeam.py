"""The Beam side of feed polling: :class:`ReadFromRss` for streaming runners.

Kept apart from :mod:`connectors.rss` so that polling (local driver, ``backfill``, ``feeds
check``) does not import Apache Beam. ``from connectors.rss import ReadFromRss`` still works.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import apache_beam as beam

from connectors.rss import FeedStateStore, due, poll_feed
from connectors.settings import FeedConfig, FetchConfig
from connectors.web import HttpClient
from transforms.records import FeedEntry


class PollDueFeedsFn(beam.DoFn):
    """On each tick: load every feed's state, poll the due ones, save state, emit new entries.

    Holds only configuration (feeds, fetch config, a store factory); the client and the store
    are opened in ``setup``. State is saved before the entries travel downstream, so on a crash
    between the two an entry can be lost (at-most-once); the local driver avoids this by
    committing state and entries together (``StateStore.commit_poll``).
    """

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        fetch: FetchConfig,
        state_store_factory: Callable[[], FeedStateStore],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._feeds = tuple(feeds)
        self._fetch = fetch
        self._factory = state_store_factory
        self._clock = clock
        self._client: HttpClient | None = None
        self._store: FeedStateStore | None = None

    def setup(self) -> None:
        self._client = HttpClient(self._fetch)
        self._store = self._factory()

    def process(self, element: Any) -> Iterator[FeedEntry]:
        assert self._client is not None and self._store is not None
        now = self._clock()
        states = {}
        for f in self._feeds:
            s = self._store.load_feed_state(f.id)
            if s is not None:
                states[f.id] = s
        for feed in due(states, self._feeds, now):
            result = poll_feed(self._client, feed, states.get(feed.id), now=now)
            self._store.save_feed_state(result.state)
            yield from result.entries

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
        close = getattr(self._store, "close", None)
        if callable(close):
            close()


class ReadFromRss(beam.PTransform):
    """Streaming source: ``PeriodicImpulse`` every ``tick_seconds`` -> poll due feeds -> FeedEntry."""

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        fetch: FetchConfig,
        state_store_factory: Callable[[], FeedStateStore],
        *,
        tick_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        if not feeds:
            raise ValueError("ReadFromRss needs at least one feed")
        if tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be > 0, got {tick_seconds}")
        if not callable(state_store_factory):
            raise TypeError("state_store_factory must be callable")
        self._feeds = tuple(feeds)
        self._fetch = fetch
        self._factory = state_store_factory
        self._tick = tick_seconds

    def expand(self, pbegin: Any) -> Any:
        from apache_beam.transforms.periodicsequence import PeriodicImpulse

        return (
            pbegin
            | "Tick" >> PeriodicImpulse(fire_interval=self._tick, apply_windowing=False)
            | "Poll due feeds" >> beam.ParDo(PollDueFeedsFn(self._feeds, self._fetch, self._factory))
        )
