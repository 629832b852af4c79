"""What the dedup decision needs from a store: its records and the store interface.

The decision (``transforms/dedup.py``) is pure logic over a :class:`DedupStore`; the stores
that implement it talk to the outside world and live in ``connectors/``: SQLite on disk
(``connectors/dedupstore.py``) and the search engine for distributed workers
(``connectors/elasticsearch/dedupstore.py``). Defining the interface here keeps the imports
pointing down: the logic owns what it needs, the connectors provide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from transforms.records import Syndication, to_utc


class DedupStoreError(Exception):
    """A dedup store operation failed. ``transient``: worth retrying (locked/busy)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class DedupRecord:
    """What later decisions need to know about one article (kept for the window)."""

    id: str
    url: str
    source: str
    first_seen: datetime
    published: datetime | None
    text_hash: str
    bands: tuple[int, ...]
    shingles: bytes  # uint32 shingle hashes in text order, little-endian (confirmation; records of
    # older versions hold them sorted and unique, which the containment rule reads the same way)
    story_terms: tuple[int, ...]  # uint32 hashes of salient title+lead terms
    story_id: str
    duplicate_of: str | None = None
    duplicate_kind: str | None = None
    similarity: float | None = None
    also_published_at: tuple[Syndication, ...] = field(default=())

    @property
    def order_key(self) -> tuple[datetime, datetime]:
        """Earliest first: by first_seen, then published."""
        return (self.first_seen, self.published or self.first_seen)

    @property
    def original_key(self) -> tuple[datetime, datetime, str]:
        """Which of two copies is the original: earliest published, then first seen, then id."""
        return (to_utc(self.published) if self.published else self.first_seen, self.first_seen, self.id)


class DedupStore(Protocol):
    def accept_url(self, article_id: str, url: str, *, now: datetime, owner: str | None = None) -> bool: ...

    def url_owner(self, article_id: str) -> str | None: ...

    def lookup(self, article_id: str) -> DedupRecord | None: ...

    def candidates(
        self,
        *,
        text_hash: str,
        bands: Sequence[int],
        exclude_id: str,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[DedupRecord]: ...

    def story_candidates(
        self, *, terms: Sequence[int], exclude_id: str, since: datetime, min_shared: int, limit: int = 30
    ) -> list[DedupRecord]:
        """Originals sharing ``min_shared`` story terms. Callers read only ``id``, ``first_seen``,
        ``published``, ``story_terms`` and ``story_id``: an implementation may return the other
        fields empty (``text_hash=""``, ``bands=()``, ``shingles=b""``) to avoid loading them."""
        ...

    def term_frequencies(self, terms: Sequence[int]) -> tuple[dict[int, int], int]: ...

    def record(self, rec: DedupRecord) -> None: ...

    def add_syndication(self, original_id: str, syndication: Syndication) -> None: ...

    def repoint(self, old_id: str, new_id: str, *, kind: str, similarity: float) -> list[str]:
        """``old_id`` (an original) becomes a ``kind`` copy of ``new_id``; its copies follow.

        Called when an older article turns up after its copy was recorded as the original.
        ``old_id`` leaves the candidate indexes and its ``also_published_at`` is emptied (the
        caller gives it to ``new_id``). Returns every id whose ``duplicate_of`` changed."""
        ...

    def prune(self, *, older_than: datetime) -> int: ...

    def batch(self) -> AbstractContextManager[None]:
        """The writes of a block together (one transaction where the store has them); reads in
        the block see them. Decisions of one cycle run in one block, then are passed on."""
        ...

    def close(self) -> None: ...
