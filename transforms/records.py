"""Typed, immutable, JSON-serialisable records that flow through the pipeline.

Untyped library output (feedparser entries, trafilatura dicts) is converted into
these records at the boundary (``connectors/rss.py``, ``transforms/extract.py``);
everything downstream only sees these types.

All datetimes are timezone-aware UTC. ``to_dict``/``from_dict`` round-trip
exactly (``from_dict(to_dict(x)) == x``), which is what the on-disk stores, the
JSONL commands and the Elasticsearch documents rely on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; naive datetimes are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def dt_to_str(value: datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat().replace("+00:00", "Z")


def str_to_dt(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def article_id(canonical_url: str) -> str:
    """The article id: sha256 (hex) of the canonical URL; also the Elasticsearch ``_id``."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item of a feed, as the feed describes it (before the page is fetched)."""

    feed_url: str
    feed_id: str
    source: str
    entry_id: str
    link: str
    title: str
    summary: str
    published: datetime | None
    published_raw: str
    fetched_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["published"] = dt_to_str(self.published)
        d["fetched_at"] = dt_to_str(self.fetched_at)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedEntry:
        return cls(
            feed_url=d["feed_url"],
            feed_id=d["feed_id"],
            source=d["source"],
            entry_id=d["entry_id"],
            link=d["link"],
            title=d.get("title", ""),
            summary=d.get("summary", ""),
            published=str_to_dt(d.get("published")),
            published_raw=d.get("published_raw", ""),
            fetched_at=str_to_dt(d["fetched_at"]) or utcnow(),
        )


@dataclass(frozen=True, slots=True)
class MatchedTerm:
    """One rule term found in the article: what matched, where, and in which sentence."""

    term: str  # the rule's term or alias (pattern as written in the YAML)
    surface: str  # the text as it appears in the article
    field: str  # "title" or "text"
    start: int  # character offset in that field
    end: int
    sentence: str
    weight: float = 0.0
    entity: str = ""  # entity name when the term is an entity alias

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MatchedTerm:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass(frozen=True, slots=True)
class TopicEvidence:
    """Why a topic was (or was not) assigned."""

    topic: str
    score: float
    threshold: float
    rule_version: str
    matched: tuple[MatchedTerm, ...] = ()
    reasons: tuple[str, ...] = ()  # human-readable notes: requirements met/failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "score": self.score,
            "threshold": self.threshold,
            "rule_version": self.rule_version,
            "matched": [m.to_dict() for m in self.matched],
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TopicEvidence:
        return cls(
            topic=d["topic"],
            score=float(d["score"]),
            threshold=float(d.get("threshold", 0.0)),
            rule_version=str(d.get("rule_version", "")),
            matched=tuple(MatchedTerm.from_dict(m) for m in d.get("matched", ())),
            reasons=tuple(d.get("reasons", ())),
        )


@dataclass(frozen=True, slots=True)
class Syndication:
    """Another place where (a copy of) an article was published."""

    id: str
    url: str
    source: str
    first_seen: datetime
    kind: str  # "exact" | "near"
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["first_seen"] = dt_to_str(self.first_seen)
        return d

    @classmethod
    def of(cls, duplicate: Article) -> Syndication:
        """The entry a duplicate adds to its original's ``also_published_at``."""
        return cls(
            id=duplicate.id,
            url=duplicate.url,
            source=duplicate.source,
            first_seen=duplicate.first_seen,
            kind=duplicate.duplicate_kind or "",
            similarity=float(duplicate.similarity or 0.0),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Syndication:
        return cls(
            id=d["id"],
            url=d["url"],
            source=d.get("source", ""),
            first_seen=str_to_dt(d["first_seen"]) or utcnow(),
            kind=d.get("kind", ""),
            similarity=float(d.get("similarity", 0.0)),
        )


EXTRACTION_PAGE = "page"
EXTRACTION_FEED_FALLBACK = "feed_fallback"


@dataclass(frozen=True, slots=True)
class Article:
    """An extracted article, enriched step by step (dedup, topics) with ``dataclasses.replace``."""

    id: str
    url: str
    canonical_url: str
    source: str
    title: str
    text: str
    published: datetime | None
    first_seen: datetime
    feed_id: str = ""
    feed_url: str = ""
    summary: str = ""
    language: str = ""
    language_confidence: float = 0.0
    authors: tuple[str, ...] = ()
    extraction: str = EXTRACTION_PAGE  # or EXTRACTION_FEED_FALLBACK
    extraction_note: str = ""  # why the feed's text was used, or why list-like page text was kept
    topics: tuple[str, ...] = ()
    topic_evidence: tuple[TopicEvidence, ...] = ()
    duplicate_of: str | None = None
    duplicate_kind: str | None = None  # "url" | "exact" | "near"
    similarity: float | None = None
    story_id: str | None = None
    also_published_at: tuple[Syndication, ...] = ()
    text_hash: str = ""
    fingerprint: tuple[int, ...] = field(default=(), repr=False)  # LSH band hashes

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "canonical_url": self.canonical_url,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "published": dt_to_str(self.published),
            "first_seen": dt_to_str(self.first_seen),
            "feed_id": self.feed_id,
            "feed_url": self.feed_url,
            "summary": self.summary,
            "language": self.language,
            "language_confidence": self.language_confidence,
            "authors": list(self.authors),
            "extraction": self.extraction,
            "extraction_note": self.extraction_note,
            "topics": list(self.topics),
            "topic_evidence": [e.to_dict() for e in self.topic_evidence],
            "duplicate_of": self.duplicate_of,
            "duplicate_kind": self.duplicate_kind,
            "similarity": self.similarity,
            "story_id": self.story_id,
            "also_published_at": [s.to_dict() for s in self.also_published_at],
            "text_hash": self.text_hash,
            "fingerprint": list(self.fingerprint),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Article:
        return cls(
            id=d["id"],
            url=d["url"],
            canonical_url=d["canonical_url"] if d.get("canonical_url") is not None else d["url"],
            source=d.get("source", ""),
            title=d.get("title") or "",
            text=d.get("text") or "",
            published=str_to_dt(d.get("published")),
            first_seen=str_to_dt(d.get("first_seen")) or utcnow(),
            feed_id=d.get("feed_id", ""),
            feed_url=d.get("feed_url", ""),
            summary=d.get("summary", ""),
            language=d.get("language", ""),
            language_confidence=float(d.get("language_confidence", 0.0)),
            authors=tuple(d.get("authors", ())),
            extraction=d.get("extraction", EXTRACTION_PAGE),
            extraction_note=d.get("extraction_note") or "",
            topics=tuple(d.get("topics", ())),
            topic_evidence=tuple(TopicEvidence.from_dict(e) for e in d.get("topic_evidence", ())),
            duplicate_of=d.get("duplicate_of"),
            duplicate_kind=d.get("duplicate_kind"),
            similarity=d.get("similarity"),
            story_id=d.get("story_id"),
            also_published_at=tuple(Syndication.from_dict(s) for s in d.get("also_published_at", ())),
            text_hash=d.get("text_hash", ""),
            fingerprint=tuple(int(x) for x in d.get("fingerprint", ())),
        )
