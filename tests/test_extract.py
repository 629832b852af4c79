"""Unit tests for transforms.extract with pages written for these tests (tests/fixtures/pages)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from transforms.extract import MIN_TEXT_CHARS, build_article, clean_title, extract_page, strip_html
from transforms.records import EXTRACTION_FEED_FALLBACK, EXTRACTION_PAGE, Article, FeedEntry, article_id

PAGES = Path(__file__).resolve().parent / "fixtures" / "pages"
URL = "https://kabarkita.example/daerah/jembatan-sukamaju"
FIRST_SEEN = datetime(2024, 6, 19, 9, 0, tzinfo=UTC)
FEED_SUMMARY = (
    "<p>Warga <b>Desa Sukamaju</b> membangun jembatan bambu secara gotong royong setelah banjir.</p>"
    "<img src='x.jpg'> &amp; pemerintah berjanji membangun jembatan beton."
)


def entry(
    *,
    title: str = "Warga Desa Sukamaju Bangun Jembatan Gotong Royong",
    summary: str = FEED_SUMMARY,
    published: datetime | None = None,
    published_raw: str = "",
) -> FeedEntry:
    return FeedEntry(
        feed_url="https://kabarkita.example/rss",
        feed_id="kabarkita",
        source="kabarkita.example",
        entry_id="guid-1",
        link=URL,
        title=title,
        summary=summary,
        published=published,
        published_raw=published_raw,
        fetched_at=FIRST_SEEN,
    )


def build(html: str | None, feed_entry: FeedEntry | None = None) -> Article:
    return build_article(
        entry=feed_entry or entry(),
        article_id=article_id(URL),
        canonical_url=URL,
        final_url=URL,
        html=html,
        first_seen=FIRST_SEEN,
    )


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def test_article_page_is_extracted() -> None:
    article = build(page("article.html"), entry(title=""))
    assert article.extraction == EXTRACTION_PAGE
    assert article.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"
    assert article.text.startswith("Warga Desa Sukamaju, Kecamatan Cibeber")
    assert "jembatan beton permanen" in article.text
    assert "\n" in article.text  # paragraphs kept apart
    assert "Berita Terkait" not in article.text and "Beranda" not in article.text
    assert article.authors == ("Rina Lestari",)
    assert article.language == "id" and article.language_confidence > 0.5
    # the page says 15:30 WIB; there is no feed date
    assert article.published == datetime(2024, 6, 19, 8, 30, tzinfo=UTC)
    assert article.id == article_id(URL) and article.canonical_url == URL and article.url == URL
    assert article.source == "kabarkita.example"
    assert article.feed_id == "kabarkita" and article.feed_url == "https://kabarkita.example/rss"
    assert article.first_seen == FIRST_SEEN
    assert Article.from_dict(article.to_dict()) == article


def test_feed_time_of_day_wins_over_page_date() -> None:
    published = datetime(2024, 6, 19, 8, 31, 12, tzinfo=UTC)
    article = build(
        page("article.html"), entry(published=published, published_raw="Wed, 19 Jun 2024 15:31:12 +0700")
    )
    assert article.published == published


def test_date_only_feed_value_gives_way_to_page_time() -> None:
    feed_day = datetime(2024, 6, 18, 17, 0, tzinfo=UTC)  # 19 June 00:00 WIB, no time in the feed
    article = build(page("article.html"), entry(published=feed_day, published_raw="2024-06-19"))
    assert article.published == datetime(2024, 6, 19, 8, 30, tzinfo=UTC)


def test_feed_date_kept_when_page_has_none() -> None:
    feed_day = datetime(2024, 6, 18, 17, 0, tzinfo=UTC)
    article = build(None, entry(published=feed_day, published_raw="19 Jun 2024"))
    assert article.published == feed_day


def test_no_html_falls_back_to_feed() -> None:
    article = build(None)
    assert article.extraction == EXTRACTION_FEED_FALLBACK
    assert article.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"
    assert article.text == (
        "Warga Desa Sukamaju membangun jembatan bambu secara gotong royong setelah banjir. "
        "& pemerintah berjanji membangun jembatan beton."
    )
    assert "<" not in article.text
    assert article.authors == ()
    assert article.published is None
    assert article.language == "id"


@pytest.mark.parametrize("name", ["index.html", "empty.html", "script_only.html"])
def test_pages_without_a_story_fall_back(name: str) -> None:
    article = build(page(name))
    assert article.extraction == EXTRACTION_FEED_FALLBACK
    assert article.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"
    assert article.text.startswith("Warga Desa Sukamaju membangun")
    assert "window.__DATA__" not in article.text


def test_feed_title_preferred_when_page_title_only_decorates_it() -> None:
    article = build(page("article.html"), entry(title="Warga Desa Sukamaju Bangun Jembatan Gotong Royong"))
    assert article.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"
    other = build(page("article.html"), entry(title="Judul Lain di Feed"))
    assert other.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"


def _hostile_pages() -> dict[str, str]:
    rng = random.Random(7)
    story = "<p>" + "Kalimat berita biasa tentang banjir di desa. " * 20 + "</p>"
    garbage = bytes(rng.randrange(256) for _ in range(200_000)).decode("latin-1")
    return {
        "deep_nesting": "<html><body>" + "<div>" * 20_000 + story + "</div>" * 20_000 + "</body></html>",
        "unclosed_nesting": "<html><body>" + "<span><b><i>" * 10_000 + story,
        "huge_attribute": f'<html><body><div data-x="{"A" * 2_000_000}">{story}</div></body></html>',
        "script_only": "<html><body>" + "<script>var x = 1;</script>" * 5000 + "</body></html>",
        "binary_garbage": garbage,
        "nul_bytes": "<html>\x00\x00<body>\x00" + story.replace(" ", "\x00") + "</body></html>",
        "broken_markup": "<html><body><p <<<>>> </ </div></td></tr><p>" * 2000,
        "only_entities": "<html><body><p>" + "&#xD800;&#0;&bogus;" * 5000 + "</p></body></html>",
    }


@pytest.mark.hostile
@pytest.mark.parametrize("name", sorted(_hostile_pages()))
def test_hostile_html_never_raises(name: str) -> None:
    html = _hostile_pages()[name]
    article = build(html)
    assert isinstance(article, Article)
    assert article.extraction in (EXTRACTION_PAGE, EXTRACTION_FEED_FALLBACK)
    if article.extraction == EXTRACTION_PAGE:
        assert len(article.text) >= MIN_TEXT_CHARS
        assert "\x00" not in article.text
    else:
        assert article.title == "Warga Desa Sukamaju Bangun Jembatan Gotong Royong"
    assert Article.from_dict(article.to_dict()) == article


def test_binary_garbage_is_not_taken_for_prose() -> None:
    article = build(_hostile_pages()["binary_garbage"])
    assert article.extraction == EXTRACTION_FEED_FALLBACK


def test_extract_page_returns_none_on_unreadable_input() -> None:
    assert extract_page("") is None
    assert extract_page("\x00\x01\x02") is None


@pytest.mark.parametrize(
    ("raw", "h1s", "sitename", "hostname", "expected"),
    [
        ("Judul Berita Hari Ini - Kompas.com", [], "KOMPAS.com", "kompas.com", "Judul Berita Hari Ini"),
        ("Judul Berita Hari Ini - Kompas.com Regional", [], "", "", "Judul Berita Hari Ini"),
        ("KapanLagi.com: FOTO: Artis Tampil Cantik", [], "", "", "FOTO: Artis Tampil Cantik"),
        (
            "Judul Berita Hari Ini | Republika Online",
            [],
            "Republika Online",
            "republika.co.id",
            "Judul Berita Hari Ini",
        ),
        ("Judul Berita Hari Ini | Tempo Gaya", [], "Tempo Gaya", "tempo.co", "Judul Berita Hari Ini"),
        # an h1 inside the <title> is the bare headline; a section-name h1 is ignored
        (
            "Situs: Musik - Penyanyi Rilis Album Baru",
            ["Penyanyi Rilis Album Baru"],
            "",
            "",
            "Penyanyi Rilis Album Baru",
        ),
        (
            "Penyanyi Rilis Album Baru - Situs Kabar",
            ["Musik"],
            "Situs Kabar",
            "",
            "Penyanyi Rilis Album Baru",
        ),
        # a dash inside the headline stays
        (
            "Rusia - Korea Utara Teken Perjanjian Baru",
            [],
            "Antara",
            "antaranews.com",
            "Rusia - Korea Utara Teken Perjanjian Baru",
        ),
        ("", [], "", "", ""),
    ],
)
def test_clean_title(raw: str, h1s: list[str], sitename: str, hostname: str, expected: str) -> None:
    assert clean_title(raw, h1s=h1s, sitename=sitename, hostname=hostname) == expected


def test_strip_html() -> None:
    assert strip_html("<p>Satu &amp; <b>dua</b></p>\n<script>alert(1)</script> tiga") == "Satu & dua tiga"
    assert strip_html("") == ""
