"""The sink interface: where finished articles go (local index or Elasticsearch).

A sink is idempotent on ``Article.id``: writing the same article twice leaves one
document. An article with ``duplicate_of`` set is stored too (so its syndication
is searchable) and the sink adds a ``Syndication`` entry to the original's
``also_published_at`` (idempotent on the duplicate's id).

``write`` never raises for per-document problems: it reports, per id, whether the
document was acknowledged, failed transiently (retry later) or was rejected
permanently (dead-lettered). It raises :class:`SinkUnavailable` when the sink
cannot be reached at all; the driver then keeps the batch in its outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from transforms.records import Article


class SinkError(Exception):
    """Base class of sink errors."""


class SinkUnavailable(SinkError):
    """The sink could not be reached or refused the whole request; nothing was acknowledged."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    acknowledged: tuple[str, ...] = ()  # ids now durably stored (created or updated)
    retry: tuple[str, ...] = ()  # ids that failed transiently: keep and send again later
    dead_lettered: tuple[str, ...] = ()  # ids rejected permanently (kept in the dead-letter store)
    errors: dict[str, str] = field(default_factory=dict)  # id -> reason, for retry/dead_lettered
    updated: tuple[str, ...] = ()  # subset of acknowledged that replaced a stored document


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result, from either sink (``newsmon search``)."""

    id: str
    url: str
    title: str
    source: str
    published: str | None  # ISO 8601 UTC
    snippet: str
    score: float
    topics: tuple[str, ...] = ()
    duplicate_of: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "source": self.source,
            "published": self.published,
            "snippet": self.snippet,
            "score": self.score,
            "topics": list(self.topics),
            "duplicate_of": self.duplicate_of,
        }


class Sink(Protocol):
    name: str  # "localindex" | "elasticsearch" | "opensearch": the metrics label

    def write(self, articles: Sequence[Article]) -> WriteResult: ...

    def close(self) -> None: ...


class SearchableSink(Sink, Protocol):
    def search(self, query: str, *, limit: int = 10) -> list[SearchHit]: ...

    def count(self) -> int: ...
