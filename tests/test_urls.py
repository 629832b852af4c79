"""Canonical URLs: our rules on top of courlan, idempotence, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.urls import UrlError, canonical_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTP://WWW.Kompas.com/read/2024/06/19/abc/?utm_source=rss&page=all#top",
            "https://kompas.com/read/2024/06/19/abc",
        ),
        (
            "https://m.detik.com/news/berita/d-123/judul?single=1&fbclid=x",
            "https://detik.com/news/berita/d-123/judul",
        ),
        ("https://amp.kompas.com/global/read/x/", "https://kompas.com/global/read/x"),
        (
            "https://www.tribunnews.com/amp/nasional/2024/06/19/a",
            "https://tribunnews.com/nasional/2024/06/19/a",
        ),
        ("https://example.co.id/berita/a/amp/", "https://example.co.id/berita/a"),
        (
            "https://news.detik.com/berita/d-1/x?utm_medium=rss&id=5",
            "https://news.detik.com/berita/d-1/x?id=5",
        ),
        ("https://a.example.com/x?b=2&a=1&amp=1", "https://a.example.com/x?a=1&b=2"),
        ("https://a.example.com:443//x//y/", "https://a.example.com/x/y"),
    ],
)
def test_canonical_rules(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_variants_collapse_to_one() -> None:
    variants = [
        "https://www.kompas.com/read/2024/06/19/putin-korut",
        "http://kompas.com/read/2024/06/19/putin-korut/",
        "https://amp.kompas.com/read/2024/06/19/putin-korut?page=all",
        "https://m.kompas.com/read/2024/06/19/putin-korut?utm_source=x&utm_campaign=y#comments",
    ]
    assert len({canonical_url(v) for v in variants}) == 1


def test_different_articles_stay_different() -> None:
    assert canonical_url("https://kompas.com/read/1?id=1") != canonical_url("https://kompas.com/read/1?id=2")
    assert canonical_url("https://news.detik.com/a") != canonical_url("https://finance.detik.com/a")


@pytest.mark.parametrize(
    "junk", ["", "junk", "ftp://x.org/a", "http://", "mailto:a@b.c", "http://[::1/", "//x.com/a"]
)
def test_junk_raises_url_error(junk: str) -> None:
    with pytest.raises(UrlError):
        canonical_url(junk)


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%", min_size=0, max_size=8)
_urls = st.builds(
    lambda scheme, sub, dom, segs, params, frag: (
        f"{scheme}://{sub}{dom}.co.id/{'/'.join(segs)}"
        + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")
        + (f"#{frag}" if frag else "")
    ),
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["", "www.", "m.", "amp.", "news.", "WWW."]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10),
    st.lists(st.one_of(_segment, st.just("amp")), max_size=4),
    st.lists(st.tuples(st.sampled_from(["id", "page", "utm_source", "q", "amp", "x"]), _segment), max_size=4),
    _segment,
)


@settings(max_examples=300, deadline=None)
@given(_urls)
def test_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert once.startswith("https://")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_is_canonical_or_url_error(text: str) -> None:
    try:
        once = canonical_url(text)
    except UrlError:
        return
    assert canonical_url(once) == once


def test_site_and_slug() -> None:
    from transforms.urls import site_and_slug

    a = site_and_slug("https://nasional.tempo.co/amp/1691448/5-media-asing-menyoroti-vonis-mati")
    b = site_and_slug("https://nasional.tempo.co/read/1691448/5-media-asing-menyoroti-vonis-mati")
    assert a == b == ("nasional.tempo.co", "5-media-asing-menyoroti-vonis-mati")
    assert site_and_slug("https://www.kr.com/peristiwa/read/433978/bom-di-medan-hari-ini.html") == (
        "kr.com",
        "bom-di-medan-hari-ini",
    )
    assert site_and_slug("https://baraknews.com/?p=321162") == ("baraknews.com", "")
    assert site_and_slug("https://a.id/berita/12345") == ("a.id", "")
    assert site_and_slug("not a url") == ("", "")
