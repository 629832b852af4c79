"""The embedded store: durable, idempotent, searchable with sensible Indonesian ranking."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.localindex import LocalIndex, QueryError, fts_query
from transforms.records import Article, article_id

T0 = datetime(2024, 6, 19, 3, 0, tzinfo=timezone.utc)


def art(url: str, title: str, text: str, *, hours: int = 0, **kw: object) -> Article:
    return Article(
        id=article_id(url),
        url=url,
        canonical_url=url,
        source="contoh.id",
        title=title,
        text=text,
        published=T0 + timedelta(hours=hours),
        first_seen=T0 + timedelta(hours=hours),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def index(tmp_path: Path) -> LocalIndex:
    idx = LocalIndex(tmp_path / "index.sqlite")
    yield idx
    idx.close()


def test_write_is_idempotent_on_id(index: LocalIndex) -> None:
    a = art(
        "https://contoh.id/1", "Putin tiba di Pyongyang", "Presiden Rusia Vladimir Putin tiba di Korea Utara."
    )
    assert index.write([a]).acknowledged == (a.id,)
    index.write([a, a])
    index.write([replace(a, title="Putin tiba di Pyongyang (diperbarui)")])
    assert index.count() == 1
    assert index.get(a.id).title.endswith("(diperbarui)")
    assert len(index.search("Pyongyang")) == 1


def test_case_and_accent_folding_and_phrases(index: LocalIndex) -> None:
    index.write(
        [
            art(
                "https://contoh.id/1",
                "KIM JONG UN sambut Putin",
                "Pemimpin Korut menyambut tamu dari Moskow di bandara.",
            ),
            art(
                "https://contoh.id/2",
                "Café di Jakarta",
                "Kedai kopi baru dibuka; Kim dan Jong datang terpisah.",
            ),
        ]
    )
    assert [h.url for h in index.search("kim jong un")] != []
    assert {h.url for h in index.search("cafe")} == {"https://contoh.id/2"}
    phrase = index.search('"kim jong un"')
    assert [h.url for h in phrase] == ["https://contoh.id/1"]
    assert [h.url for h in index.search("kim -putin")] == ["https://contoh.id/2"]
    assert {h.url for h in index.search("sambu*")} == {"https://contoh.id/1"}


def test_title_matches_rank_first_and_recency_breaks_ties(index: LocalIndex) -> None:
    body = "Laporan tentang cuaca dan lalu lintas di ibu kota."
    index.write(
        [
            art("https://contoh.id/old", "Rusia dan Korut", body, hours=0),
            art("https://contoh.id/new", "Rusia dan Korut", body, hours=5),
            art(
                "https://contoh.id/text", "Cuaca hari ini", body + " Rusia dan Korut disebut sekali.", hours=9
            ),
            *[art(f"https://contoh.id/lain{i}", f"Berita lain {i}", body, hours=i) for i in range(6)],
        ]
    )
    urls = [h.url for h in index.search("rusia korut")]
    assert urls == ["https://contoh.id/new", "https://contoh.id/old", "https://contoh.id/text"]


def test_duplicates_hidden_and_original_lists_syndication(index: LocalIndex) -> None:
    orig = art("https://a.id/1", "Perjanjian Rusia-Korut", "Isi perjanjian kemitraan strategis.")
    dup = art(
        "https://b.id/9",
        "Perjanjian Rusia-Korut",
        "Isi perjanjian kemitraan strategis.",
        hours=1,
        duplicate_of=orig.id,
        duplicate_kind="near",
        similarity=0.93,
    )
    index.write([orig])
    index.write([dup])
    index.write([dup])  # idempotent: syndication listed once
    assert [h.id for h in index.search("perjanjian")] == [orig.id]
    assert {h.id for h in index.search("perjanjian", include_duplicates=True)} == {orig.id, dup.id}
    synd = index.get(orig.id).also_published_at
    assert [(s.id, s.url, s.kind) for s in synd] == [(dup.id, "https://b.id/9", "near")]
    # re-writing the original keeps its syndication
    index.write([orig])
    assert len(index.get(orig.id).also_published_at) == 1


def test_survives_reopen_and_concurrent_reader(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    writer = LocalIndex(path)
    writer.write([art("https://contoh.id/1", "Kunjungan Putin", "Putin berkunjung ke Pyongyang.")])
    reader = LocalIndex(path)
    assert reader.count() == 1
    writer.write([art("https://contoh.id/2", "Kunjungan kedua", "Putin kembali ke Pyongyang.")])
    assert reader.count() == 2
    writer.close()
    reader.close()
    assert LocalIndex(path).count() == 2
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("query", ['"', "***", "AND OR NOT", "-x", "   ", "(((", "NEAR(a b)"])
def test_hostile_queries_give_a_clear_error_or_results(index: LocalIndex, query: str) -> None:
    index.write([art("https://contoh.id/1", "AND OR NOT", "NEAR kata a b")])
    try:
        index.search(query)
    except QueryError as exc:
        assert "search" in str(exc)


def test_fts_query_quotes_words() -> None:
    assert (
        fts_query('putin "korea utara" -selatan kunjung*')
        == '("putin" AND "korea utara" AND "kunjung"*) NOT "selatan"'
    )
    assert fts_query("Rusia-Korut visit!") == '"Rusia Korut" AND "visit"'


# -- OR, AND, NOT (issue 13 item 17: "jokowi OR banjir" silently returned nothing) ------------------
@pytest.mark.parametrize(
    "query, expected",
    [
        ("jokowi OR banjir", '("jokowi") OR ("banjir")'),
        ("putin korut OR kim pyongyang", '("putin" AND "korut") OR ("kim" AND "pyongyang")'),
        ("putin AND korut", '"putin" AND "korut"'),
        ("putin NOT korut", '("putin") NOT "korut"'),
        ("jokowi OR banjir -bandung", '(("jokowi") OR ("banjir")) NOT "bandung"'),
        ("kunjung* OR \"kim jong\"", '("kunjung"*) OR ("kim jong")'),
        ("jokowi or banjir", '"jokowi" AND "or" AND "banjir"'),  # only upper-case OR is an operator
    ],
)
def test_fts_query_operators(query: str, expected: str) -> None:
    assert fts_query(query) == expected


@pytest.mark.parametrize("query", ["OR banjir", "banjir OR", "banjir OR OR jokowi", "banjir NOT", "NOT banjir"])
def test_fts_query_dangling_operators_are_errors(query: str) -> None:
    with pytest.raises(QueryError, match="search"):
        fts_query(query)


def test_or_finds_either(index: LocalIndex) -> None:
    a = art("https://contoh.id/a", "Jokowi resmikan bendungan", "Presiden Jokowi meresmikan bendungan baru.")
    b = art("https://contoh.id/b", "Banjir rendam Bandung", "Banjir merendam ratusan rumah di Bandung.", hours=1)
    c = art("https://contoh.id/c", "Harga beras naik", "Harga beras naik di pasar.", hours=2)
    index.write([a, b, c])
    assert {h.id for h in index.search("jokowi OR banjir")} == {a.id, b.id}
    assert [h.id for h in index.search("jokowi OR banjir -bandung")] == [a.id]
    assert index.search("jokowi banjir") == []
