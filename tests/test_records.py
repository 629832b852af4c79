"""Records survive encode/decode exactly (property-based)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.records import (
    Article,
    FeedEntry,
    MatchedTerm,
    Syndication,
    TopicEvidence,
    article_id,
    to_utc,
)

texts = st.text(max_size=60)
utc_times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
matched = st.builds(
    MatchedTerm,
    term=texts,
    surface=texts,
    field=st.sampled_from(["title", "text"]),
    start=st.integers(0, 10_000),
    end=st.integers(0, 10_000),
    sentence=texts,
    weight=st.floats(-10, 10, allow_nan=False),
    entity=texts,
)
evidence = st.builds(
    TopicEvidence,
    topic=texts,
    score=st.floats(0, 100, allow_nan=False),
    threshold=st.floats(0, 100, allow_nan=False),
    rule_version=texts,
    matched=st.tuples(matched, matched),
    reasons=st.tuples(texts),
)
syndication = st.builds(
    Syndication,
    id=texts,
    url=texts,
    source=texts,
    first_seen=utc_times,
    kind=st.sampled_from(["exact", "near"]),
    similarity=st.floats(0, 1, allow_nan=False),
)
articles = st.builds(
    Article,
    id=texts,
    url=texts,
    canonical_url=texts,
    source=texts,
    title=texts,
    text=st.text(max_size=400),
    published=st.none() | utc_times,
    first_seen=utc_times,
    language=st.sampled_from(["id", "ms", "en", ""]),
    language_confidence=st.floats(0, 1, allow_nan=False),
    authors=st.tuples(texts),
    topics=st.tuples(texts),
    topic_evidence=st.tuples(evidence),
    duplicate_of=st.none() | texts,
    duplicate_kind=st.none() | st.sampled_from(["url", "exact", "near"]),
    similarity=st.none() | st.floats(0, 1, allow_nan=False),
    story_id=st.none() | texts,
    also_published_at=st.tuples(syndication),
    text_hash=texts,
    fingerprint=st.tuples(st.integers(0, 2**63), st.integers(0, 2**63)),
)


@settings(max_examples=200, deadline=None)
@given(articles)
def test_article_round_trips_through_json(article: Article) -> None:
    encoded = json.dumps(article.to_dict())
    assert Article.from_dict(json.loads(encoded)) == article


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        FeedEntry,
        feed_url=texts,
        feed_id=texts,
        source=texts,
        entry_id=texts,
        link=texts,
        title=texts,
        summary=texts,
        published=st.none() | utc_times,
        published_raw=texts,
        fetched_at=utc_times,
    )
)
def test_feed_entry_round_trips(entry: FeedEntry) -> None:
    assert FeedEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry


def test_article_id_is_sha256_of_canonical_url() -> None:
    # sha256("https://example.id/a"), computed with `printf %s URL | sha256sum`
    assert (
        article_id("https://example.id/a")
        == "eb76b5d2c8949c6d7333dcb0ec58d4fb755fea88240be0e95570589175b14ab2"
    )
    assert len(article_id("x")) == 64
    assert article_id("https://example.id/a") != article_id("https://example.id/b")


def test_to_utc_converts_wib() -> None:
    wib = timezone(timedelta(hours=7))
    assert to_utc(datetime(2024, 6, 19, 10, 0, tzinfo=wib)) == datetime(
        2024, 6, 19, 3, 0, tzinfo=timezone.utc
    )
