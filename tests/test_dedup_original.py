"""Issue 13 items 2 and 11: the original is the earliest *published* article, whatever the order
in which copies arrive; bad ``newsmon dedup`` input lines are reported and skipped, never a traceback.
Also the rules added for issue 11 (page fragments, aligned copies), on texts written here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.dedupstore import SqliteDedupStore, iter_records
from pipelines.cli import main as cli_main
from transforms.dedup import aligned_overlap, alignment, decide, decide_batch, shingle_sequence, tokens
from transforms.records import Article, article_id
from transforms.urls import page_number

from .test_dedup import ORIGINAL, text

OLD = datetime(2018, 3, 5, 8, 0, tzinfo=UTC)
NEW = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def _art(key: str, body: str, *, published: datetime, first_seen: datetime, source: str = "contoh.id") -> Article:
    url = f"https://{source}/berita/{key}"
    return Article(
        id=article_id(url),
        url=url,
        canonical_url=url,
        source=source,
        title="Banjir rob Semarang",
        text=body,
        published=published,
        first_seen=first_seen,
    )


def _pair() -> tuple[Article, Article]:
    # the copy is seen first (a minute earlier): input/arrival order must not make it the original
    original = _art("asli-2018", text(ORIGINAL), published=OLD, first_seen=NEW + timedelta(minutes=1))
    copy = _art(
        "salinan-2026",
        "SALINAN (update) - " + text(ORIGINAL) + "\nArtikel ini telah tayang di contoh.id",
        published=NEW,
        first_seen=NEW,
        source="salinan.id",
    )
    return original, copy


def test_within_a_batch_the_earliest_published_is_the_original_whatever_the_input_order() -> None:
    original, copy = _pair()
    for order in ([copy, original], [original, copy]):
        store = SqliteDedupStore(":memory:")
        out = {a.id: a for a in decide_batch(order, store, now=NEW)}
        assert out[original.id].duplicate_of is None
        assert out[copy.id].duplicate_of == original.id


def test_across_batches_an_older_article_becomes_the_original_and_the_stored_one_is_repointed() -> None:
    original, copy = _pair()
    third = _art("salinan-lain", text(ORIGINAL), published=NEW + timedelta(hours=1), first_seen=NEW, source="tiga.id")
    store = SqliteDedupStore(":memory:")
    first = decide(copy, store, now=NEW)  # processed first: today it stays the original
    assert first.duplicate_of is None
    assert decide(third, store, now=NEW).duplicate_of == copy.id
    later = decide(original, store, now=NEW + timedelta(minutes=5))
    assert later.duplicate_of is None
    assert {s.id for s in later.also_published_at} == {copy.id, third.id}
    recs = {r.id: r for r in iter_records(store)}
    assert recs[copy.id].duplicate_of == original.id and recs[copy.id].duplicate_kind in ("exact", "near")
    assert recs[third.id].duplicate_of == original.id  # the copy's own copies follow
    assert recs[copy.id].also_published_at == ()
    # only the new original is a candidate now: a fourth copy points at it
    fourth = _art("salinan-4", text(ORIGINAL), published=NEW, first_seen=NEW + timedelta(hours=2), source="empat.id")
    assert decide(fourth, store, now=NEW).duplicate_of == original.id
    assert store.term_frequencies(())[1] == 1  # one original in the window


def test_repoint_is_reported_in_the_decision() -> None:
    from transforms.dedup import decide_status

    original, copy = _pair()
    store = SqliteDedupStore(":memory:")
    decide(copy, store, now=NEW)
    _, decision, fresh = decide_status(original, store, now=NEW)
    assert fresh and decision.duplicate_of is None
    assert decision.repointed == (copy.id,)
    assert decision.rule and decision.rule.startswith("original: published before")


def _jsonl(arts: list[Article]) -> str:
    return "".join(
        json.dumps(
            {
                "id": a.id,
                "url": a.url,
                "title": a.title,
                "text": a.text,
                "published": a.published.isoformat(),
                "first_seen": a.first_seen.isoformat(),
            }
        )
        + "\n"
        for a in arts
    )


def test_cli_keeps_the_2018_original_when_the_copy_comes_first(tmp_path, capsys) -> None:
    original, copy = _pair()
    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl([copy, original]))
    assert cli_main(["dedup", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [copy.id, original.id]  # input order kept
    got = {r["id"]: r["duplicate_of"] for r in rows}
    assert got == {copy.id: original.id, original.id: None}
    assert rows[0]["rule"]


def test_cli_reports_bad_lines_with_their_number_and_exits_non_zero() -> None:
    original, _ = _pair()
    good = _jsonl([original]).strip()
    data = "\n".join(["[1]", good, '"text"', "{broken", "", "null"]) + "\n"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dedup"],
        input=data,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    for n in (1, 3, 4, 6):
        assert f"line {n}:" in proc.stderr
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [original.id]


def test_cli_unreadable_input_is_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dedup", str(tmp_path / "absent.jsonl")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- the issue 11 rules on texts written here --------------------------------------------------------


def test_page_number() -> None:
    assert page_number("https://a.id/x?page=2") == 2
    assert page_number("https://a.id/x?page=all") is None
    assert page_number("https://a.id/x?p=321162") is None
    assert page_number("https://a.id/x") is None


def _seq(body: str):
    return shingle_sequence(tokens(body))


def test_aligned_rule_catches_a_copy_with_a_new_lead_that_is_cut_short() -> None:
    import numpy as np

    body = text(ORIGINAL)
    lead = "Warga pesisir kembali menghadapi hari yang berat ketika air laut naik ke permukiman mereka sejak pagi. "
    cut = lead * 2 + body[: int(len(body) * 0.7)]
    a, b = _seq(body), _seq(cut)
    fa, fb = alignment(a, np.unique(b)), alignment(b, np.unique(a))
    assert fa is not None and fb is not None and aligned_overlap(fa, fb)


def test_shared_block_in_the_middle_of_two_articles_is_not_a_copy() -> None:
    import random

    import numpy as np

    rnd = random.Random(5)

    def filler(n: int) -> str:  # made-up words: shares nothing with the other texts
        return " ".join("".join(rnd.choice("bcdfgklmnprst") + rnd.choice("aiueo") for _ in range(3)) for _ in range(n))

    block = " ".join(ORIGINAL[2:4])
    one = filler(120) + " " + block + " " + filler(120)
    two = filler(120) + " " + block + " " + filler(120)
    a, b = _seq(one), _seq(two)
    fa, fb = alignment(a, np.unique(b)), alignment(b, np.unique(a))
    assert fa is not None and fb is not None and not aligned_overlap(fa, fb)


def test_a_page_two_fragment_contained_in_another_article_is_not_its_copy() -> None:
    full = _art("jadwal", text(ORIGINAL), published=NEW, first_seen=NEW)
    frag_url = "https://lain.id/berita/gladi?page=2"
    fragment = dataclasses.replace(
        full,
        id=article_id(frag_url),
        url=frag_url,
        canonical_url=frag_url,
        text=text(ORIGINAL[3:6]),
        first_seen=NEW + timedelta(hours=1),
        published=NEW + timedelta(hours=1),
    )
    store = SqliteDedupStore(":memory:")
    decide(full, store, now=NEW)
    assert decide(fragment, store, now=NEW).duplicate_of is None


def test_local_index_hides_the_repointed_original(tmp_path) -> None:
    from connectors.localindex import LocalIndex

    original, copy = _pair()
    store = SqliteDedupStore(":memory:")
    index = LocalIndex(tmp_path / "index.sqlite")
    first = decide(copy, store, now=NEW)
    index.write([first])
    assert index.get(copy.id).duplicate_of is None
    later = decide(original, store, now=NEW + timedelta(minutes=5))
    index.write([later])
    moved = index.get(copy.id)
    assert moved.duplicate_of == original.id and moved.also_published_at == ()
    assert index.count(include_duplicates=False) == 1
    assert [s.id for s in index.get(original.id).also_published_at] == [copy.id]


def test_one_sites_follow_up_over_its_own_text_is_not_a_copy_but_another_sites_is() -> None:
    """The aligned rule works across sites; within one site only containment (or one slug) says copy."""
    body = text(ORIGINAL)
    lead = (
        "Warga pesisir kembali menghadapi hari yang berat ketika air laut naik ke permukiman sejak pagi. "
        "Sejumlah sekolah meliburkan murid, pedagang pasar ikan menutup lapak, dan relawan membagikan makanan "
        "di posko darurat dekat masjid. Petugas kelurahan mencatat ratusan keluarga memilih bertahan di lantai "
        "dua rumah mereka sambil menunggu air surut menjelang sore, meski listrik padam sejak dini hari tadi.\n"
    )
    reworked = lead + body[: int(len(body) * 0.7)]
    first = _art("banjir-rob-semarang-hari-ini", body, published=NEW, first_seen=NEW)

    def later(url: str) -> Article:
        return dataclasses.replace(
            first, id=article_id(url), url=url, canonical_url=url, text=reworked, first_seen=NEW + timedelta(hours=1)
        )

    store = SqliteDedupStore(":memory:")
    decide(first, store, now=NEW)
    same_site = decide(later("https://contoh.id/berita/banjir-rob-meluas-warga-mengungsi"), store, now=NEW)
    assert same_site.duplicate_of is None
    store = SqliteDedupStore(":memory:")
    decide(first, store, now=NEW)
    other_site = decide(later("https://lain.id/2024/banjir-rob-meluas"), store, now=NEW)
    assert other_site.duplicate_of == first.id


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_search_engine_sink_hides_the_repointed_original(tmp_path, registry, opensearch_url: str, engine: str) -> None:
    """On the real node, through both clients (the Elasticsearch one via the header shim)."""
    import uuid

    from connectors.elasticsearch import ElasticsearchSink, setup_elasticsearch
    from connectors.settings import ElasticsearchConfig
    from tests.faultserver import FaultProxy

    original, copy = _pair()
    store = SqliteDedupStore(":memory:")
    with FaultProxy(opensearch_url, elasticsearch=True) as shim:
        url = opensearch_url if engine == "opensearch" else shim.url
        cfg = ElasticsearchConfig(urls=(url,), index_prefix=f"nmtest-{uuid.uuid4().hex[:8]}", engine=engine)
        setup_elasticsearch(cfg)
        sink = ElasticsearchSink(cfg, deadletter_dir=tmp_path / "dl", sleep=lambda s: None)
        try:
            first = decide(copy, store, now=NEW)
            assert sink.write([first]).acknowledged == (copy.id,)
            later = decide(original, store, now=NEW + timedelta(minutes=5))
            assert sink.write([later]).acknowledged == (original.id,)
            moved = sink.get(copy.id)
            assert moved is not None and moved.duplicate_of == original.id and moved.also_published_at == ()
            kept = sink.get(original.id)
            assert kept is not None and kept.duplicate_of is None
            assert [s.id for s in kept.also_published_at] == [copy.id]
            sink.refresh()
            assert [h.id for h in sink.search("banjir")] == [original.id]  # the old original is hidden now
        finally:
            sink.close()


def test_a_repointed_original_is_counted_as_a_duplicate() -> None:
    original, copy = _pair()
    store = SqliteDedupStore(":memory:")
    counted: list[str] = []
    list(decide_batch([copy], store, now=NEW, on_duplicate=counted.append))
    assert counted == []
    list(decide_batch([original], store, now=NEW, on_duplicate=counted.append))
    assert len(counted) == 1 and counted[0] in ("exact", "near")


def test_leads_dated_far_apart_never_join_one_story() -> None:
    from .test_dedup import SAME_EVENT, SAME_EVENT_TITLE, make

    def dated(key: str, paragraphs: list[str], day: str, **kw: object) -> Article:
        lead = f"Air laut mulai naik pada {day} pagi di pesisir utara kota."
        return make(key, lead + "\n" + text(paragraphs), **kw)  # type: ignore[arg-type]

    for other_day, joined in (("Selasa (20/6/2024)", True), ("Selasa (20/6/2023)", False)):
        store = SqliteDedupStore(":memory:")
        a = decide(dated("a", ORIGINAL, "Senin (19/6/2024)"), store, now=NEW)
        b = decide(
            dated("b", SAME_EVENT, other_day, title=SAME_EVENT_TITLE, minutes=60, source="lain.id"), store, now=NEW
        )
        assert b.duplicate_of is None
        assert (b.story_id == a.story_id) is joined, other_day


def test_cli_store_under_a_file_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dedup", "--store", str(blocker / "store.sqlite")],
        input='{"id": "x", "url": "https://a.id/x", "text": "halo"}\n',
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "cannot open dedup store" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
