"""Fuzzing extraction (issue 7): random and mutated HTML never crash ``build_article``.

Bounded for CI: a fixed number of examples, no deadline per example.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.extract import build_article
from transforms.records import EXTRACTION_FEED_FALLBACK, EXTRACTION_PAGE, FeedEntry

pytestmark = pytest.mark.hostile

ENTRY = FeedEntry(
    feed_url="https://contoh.id/rss", feed_id="contoh", source="Contoh", entry_id="1",
    link="https://contoh.id/berita/1", title="Judul dari feed", summary="<p>Ringkasan dari <b>feed</b>.</p>",
    published=datetime(2024, 6, 19, 3, 0, tzinfo=timezone.utc), published_raw="", fetched_at=datetime(2024, 6, 19, 3, 5, tzinfo=timezone.utc),
)
TAGS = ["html", "head", "body", "article", "div", "p", "h1", "script", "style", "meta", "title", "table", "td", "a",
        "svg", "iframe", "template", "noscript", "br", "![CDATA[", "!--", "?xml"]
PARAGRAPH = ("Presiden Rusia Vladimir Putin tiba di Pyongyang untuk bertemu Kim Jong Un dan menandatangani perjanjian "
             "kemitraan strategis yang mencakup kerja sama militer. ")


def fragment() -> st.SearchStrategy[str]:
    tag = st.sampled_from(TAGS)
    attr = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-=\"' <>&;", max_size=30)
    text = st.text(max_size=80) | st.just(PARAGRAPH * 3)
    return st.one_of(
        st.builds(lambda t, a: f"<{t} {a}>", tag, attr),
        st.builds(lambda t: f"</{t}>", tag),
        text,
        st.sampled_from(["&#0;", "&#xD800;", "&bogus;", "\x00", "\ufeff", "<", ">", "&", "]]>", "<!DOCTYPE html>"]),
    )


def check(html: str) -> None:
    article = build_article(entry=ENTRY, article_id="a" * 64, canonical_url=ENTRY.link, final_url=ENTRY.link,
                            html=html, first_seen=ENTRY.fetched_at)
    assert article.extraction in (EXTRACTION_PAGE, EXTRACTION_FEED_FALLBACK)
    assert article.title and article.text  # the feed's text at worst: nothing is lost
    assert article.published == ENTRY.published


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fragment(), max_size=60).map("".join))
def test_random_html_never_crashes(html: str) -> None:
    check(html)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000).map(lambda b: b.decode("latin-1")))
def test_binary_garbage_never_crashes(html: str) -> None:
    check(html)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 400), st.sampled_from(["div", "p", "span", "table"]))
def test_deep_nesting_never_crashes(depth: int, tag: str) -> None:
    check(f"<html><body>{f'<{tag}>' * depth}{PARAGRAPH * 4}{f'</{tag}>' * depth}</body></html>")
