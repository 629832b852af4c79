"""Dedup logic: boilerplate, signatures, copy/original decisions, stories, Beam wrapper, CLI.

The texts below are invented Indonesian news written for these tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from transforms.records import Article, article_id

T0 = datetime(2024, 6, 19, 6, 0, tzinfo=UTC)

ORIGINAL_TITLE = "Banjir Rob Genangi Pesisir Semarang, Ribuan Warga Mengungsi"
ORIGINAL = [
    "Banjir rob kembali menggenangi kawasan pesisir utara Kota Semarang sejak Selasa malam dan memaksa ribuan warga meninggalkan rumah mereka.",
    "Badan Penanggulangan Bencana Daerah mencatat sedikitnya empat kelurahan terendam air laut dengan ketinggian antara tiga puluh sentimeter hingga satu meter.",
    "Kepala pelaksana BPBD Kota Semarang, Handoko Wirasena, mengatakan petugas telah mendirikan tiga posko pengungsian di gedung sekolah dan balai kelurahan.",
    '"Kami mengutamakan lansia, ibu hamil dan anak-anak. Perahu karet sudah disiagakan di setiap kelurahan yang terdampak," kata Handoko kepada wartawan di Tanjung Mas.',
    "Menurut Badan Meteorologi, Klimatologi, dan Geofisika, pasang maksimum air laut diperkirakan masih terjadi hingga akhir pekan karena bertepatan dengan fase bulan purnama.",
    "Warga Kelurahan Bandarharjo, Siti Rochmah, mengaku sudah dua hari tidak bisa berjualan karena warungnya terendam. Ia berharap pemerintah segera meninggikan tanggul di sepanjang pantai.",
    "Pemerintah kota menyatakan pompa air di Kali Asin dan Kali Semarang dioperasikan penuh selama dua puluh empat jam untuk mempercepat surutnya genangan.",
    "Dinas Kesehatan juga mengirim tenaga medis ke posko pengungsian untuk mengantisipasi penyakit kulit dan diare yang kerap muncul setelah banjir.",
    "Wali kota meminta warga tetap waspada dan memantau informasi resmi, terutama pada malam hari saat air laut mencapai titik tertinggi.",
]

# Same event, different article: another reporter, shares one quote and one agency sentence.
SAME_EVENT_TITLE = "Tanggul Jebol, Banjir Rob Rendam Pelabuhan Tanjung Mas Semarang"
SAME_EVENT = [
    "Banjir rob yang melanda pesisir utara Kota Semarang membuat tanggul darurat di kawasan Tanjung Mas jebol pada Rabu dini hari, sehingga air laut masuk ke permukiman warga dan pelabuhan.",
    "Aktivitas bongkar muat di pelabuhan sempat terhenti selama beberapa jam karena akses jalan menuju dermaga tergenang cukup dalam.",
    '"Kami mengutamakan lansia, ibu hamil dan anak-anak. Perahu karet sudah disiagakan di setiap kelurahan yang terdampak," kata Handoko kepada wartawan di Tanjung Mas.',
    "Sejumlah pengemudi truk kontainer memilih menunggu di luar kawasan pelabuhan hingga air surut. Mereka mengeluhkan kerugian karena jadwal pengiriman barang mundur.",
    "Menurut Badan Meteorologi, Klimatologi, dan Geofisika, pasang maksimum air laut diperkirakan masih terjadi hingga akhir pekan karena bertepatan dengan fase bulan purnama.",
    "Pengelola pelabuhan menyatakan akan memperkuat tanggul dengan karung pasir dan menambah pompa portabel di area parkir truk.",
    "Pakar teknik pantai dari sebuah universitas negeri di Semarang menilai penurunan muka tanah membuat banjir rob semakin sering terjadi setiap tahun.",
]

UNRELATED_TITLE = "Harga Cabai Rawit di Pasar Induk Turun Menjelang Panen Raya"
UNRELATED = [
    "Harga cabai rawit merah di sejumlah pasar induk mulai turun seiring datangnya musim panen di sentra produksi Jawa Timur dan Jawa Tengah.",
    "Pedagang di pasar induk menyebut pasokan meningkat hampir dua kali lipat dibanding bulan lalu sehingga harga di tingkat pengecer ikut melandai.",
    "Kementerian Perdagangan memperkirakan harga akan stabil hingga akhir bulan, meski cuaca ekstrem masih berpotensi mengganggu distribusi.",
    "Sejumlah ibu rumah tangga mengaku lega karena belanja kebutuhan dapur kini lebih ringan dibanding beberapa pekan sebelumnya.",
]


def text(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs)


def make(
    key: str,
    body: str,
    *,
    title: str = ORIGINAL_TITLE,
    minutes: int = 0,
    source: str = "contoh.id",
    url: str | None = None,
) -> Article:
    url = url or f"https://{source}/berita/{key}"
    return Article(
        id=article_id(url),
        url=url,
        canonical_url=url,
        source=source,
        title=title,
        text=body,
        published=T0 + timedelta(minutes=minutes),
        first_seen=T0 + timedelta(minutes=minutes),
    )


def variants() -> dict[str, str]:
    """Copies an analyst wants collapsed into the original."""
    p = ORIGINAL
    return {
        "changed_headline": text(p),  # same body, new title (set by the test)
        "outlet_boilerplate": "SEMARANG, KOMPAS.com - "
        + text(p)
        + '\n\nArtikel ini telah tayang di Kompas.com dengan judul "Rob Semarang".\nEditor: Rina Putri\nPenulis: Budi',
        "wire_dateline": "Semarang (ANTARA) - " + text(p) + "\n(ant/rin)",
        "reordered_paragraphs": text([p[1], p[0], p[3], p[2], p[5], p[4], p[7], p[6], p[8]]),
        "trimmed_ending": text(p[:6]),
        "baca_juga_inserted": text(
            [
                p[0],
                "Baca juga: Lima Kota Pesisir Paling Rawan Rob Tahun Ini",
                p[1],
                p[2],
                "Baca: Cara Mengurus Bantuan Korban Banjir",
                p[3],
                p[4],
                "SCROLL TO CONTINUE WITH CONTENT",
                p[5],
                p[6],
                "BACA JUGA: Tanggul Laut Raksasa Mulai Dibangun",
                p[7],
                p[8],
            ]
        ),
        "combined": "Semarang - "
        + text([p[0], "Baca juga: Jalan Pantura Tergenang", p[2], p[1], p[3], p[4], p[5], p[6]]),
    }


# --- tests -----------------------------------------------------------------------------------

import dataclasses
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from prometheus_client import CollectorRegistry

from connectors import metrics
from connectors.dedupstore import SqliteDedupStore, SqliteStoreFactory
from pipelines.cli import main as cli_main
from pipelines.dedupbeam import DedupArticles
from transforms.dedup import (
    decide,
    decide_status,
    fingerprint,
    strip_boilerplate,
    text_hash,
)


@pytest.fixture()
def store() -> SqliteDedupStore:
    s = SqliteDedupStore(":memory:")
    yield s
    s.close()


def test_strip_boilerplate_removes_datelines_links_noise_footers() -> None:
    raw = (
        "JAKARTA, KOMPAS.com - Pemerintah mengumumkan kebijakan baru soal subsidi energi hari ini.\n"
        "Baca juga: Harga BBM Naik Lagi\nBaca: Lima Fakta Subsidi\nSCROLL TO CONTINUE WITH CONTENT\n"
        "Menteri menjelaskan bahwa kebijakan itu berlaku mulai bulan depan untuk seluruh provinsi.\n"
        "Artikel ini telah tayang di Kompas.com dengan judul Subsidi\nEditor: Andi\nshare"
    )
    out = strip_boilerplate(raw)
    assert out.splitlines() == [
        "Pemerintah mengumumkan kebijakan baru soal subsidi energi hari ini.",
        "Menteri menjelaskan bahwa kebijakan itu berlaku mulai bulan depan untuk seluruh provinsi.",
    ]


@pytest.mark.parametrize(
    "dateline",
    [
        "Jakarta, CNN Indonesia -- ",
        "Jakarta (ANTARA News) - ",
        "Merdeka.com-",
        "TRIBUNNEWS.COM, JAKARTA - ",
        "PYONGYANG \u2013 ",
        "VIVA Dunia \u2013 ",
    ],
)
def test_dateline_variants(dateline: str) -> None:
    body = "Presiden meresmikan jalan tol baru yang menghubungkan dua provinsi di Sumatra."
    assert strip_boilerplate(dateline + body) == body


def test_dateline_keeps_ordinary_sentence_with_dash() -> None:
    body = "Tim nasional U-16 bersiap melawan Singapura - laga penentu - pada Jumat malam di stadion utama."
    assert strip_boilerplate(body) == body


def test_text_hash_ignores_boilerplate_and_case_and_rejects_stubs() -> None:
    v = variants()
    assert text_hash(v["outlet_boilerplate"]) == text_hash(text(ORIGINAL).upper())
    assert text_hash("Singkat saja.") == ""
    assert fingerprint("Terlalu pendek untuk dibandingkan.") == ()
    assert len(fingerprint(text(ORIGINAL))) == 36  # BANDS


@pytest.mark.parametrize("name", sorted(variants()))
def test_each_variant_is_caught(store: SqliteDedupStore, name: str) -> None:
    orig = decide(make("asli", text(ORIGINAL)), store, now=T0)
    title = "Judul Baru: Ribuan Warga Semarang Mengungsi Akibat Rob" if name == "changed_headline" else ORIGINAL_TITLE
    copy = decide(make(name, variants()[name], title=title, minutes=30, source="lain.id"), store, now=T0)
    assert orig.duplicate_of is None
    assert copy.duplicate_of == orig.id
    assert copy.duplicate_kind in ("exact", "near")
    assert copy.similarity is not None and copy.similarity >= 0.8
    assert copy.story_id == orig.story_id == orig.id
    syn = store.lookup(orig.id).also_published_at
    assert [s.id for s in syn] == [copy.id] and syn[0].source == "lain.id"


def test_same_event_different_article_is_story_not_duplicate(store: SqliteDedupStore) -> None:
    a = decide(make("a", text(ORIGINAL)), store, now=T0)
    b = decide(make("b", text(SAME_EVENT), title=SAME_EVENT_TITLE, minutes=60, source="lain.id"), store, now=T0)
    c = decide(make("c", text(UNRELATED), title=UNRELATED_TITLE, minutes=90), store, now=T0)
    assert b.duplicate_of is None and b.duplicate_kind is None
    assert b.story_id == a.id
    assert c.duplicate_of is None and c.story_id == c.id


def test_story_window_limits_grouping(store: SqliteDedupStore) -> None:
    a = decide(make("a", text(ORIGINAL)), store, now=T0)
    late = make("b", text(SAME_EVENT), title=SAME_EVENT_TITLE, minutes=5 * 24 * 60)
    b = decide(late, store, now=late.first_seen, story_window_days=3)
    assert b.story_id == b.id != a.id


def test_copy_outside_window_is_original(store: SqliteDedupStore) -> None:
    decide(make("a", text(ORIGINAL)), store, now=T0)
    later = make("b", text(ORIGINAL), minutes=8 * 24 * 60)
    assert decide(later, store, now=later.first_seen, window_days=7).duplicate_of is None


def test_exact_kind_and_chain_collapses_to_root(store: SqliteDedupStore) -> None:
    v = variants()
    a = decide(make("a", text(ORIGINAL)), store, now=T0)
    b = decide(make("b", v["outlet_boilerplate"], minutes=1), store, now=T0)
    c = decide(make("c", v["trimmed_ending"], minutes=2), store, now=T0)
    assert b.duplicate_kind == "exact" and b.similarity == 1.0
    assert c.duplicate_kind == "near" and c.duplicate_of == a.id
    assert b.fingerprint == a.fingerprint and b.text_hash == a.text_hash


def test_decide_is_idempotent_per_id(store: SqliteDedupStore) -> None:
    a = make("a", text(ORIGINAL))
    first = decide(a, store, now=T0)
    again = decide(a, store, now=T0 + timedelta(minutes=5))
    assert again.duplicate_of is None and again == first
    copy = make("b", variants()["reordered_paragraphs"], minutes=1)
    c1, _, fresh1 = decide_status(copy, store, now=T0)
    c2, _, fresh2 = decide_status(copy, store, now=T0)
    assert (fresh1, fresh2) == (True, False)
    assert c1 == c2 and c1.duplicate_of == first.id
    assert len(store.lookup(first.id).also_published_at) == 1


def test_short_texts_are_never_copies(store: SqliteDedupStore) -> None:
    a = decide(make("a", "Berita singkat."), store, now=T0)
    b = decide(make("b", "Berita singkat.", minutes=1), store, now=T0)
    assert a.duplicate_of is None and b.duplicate_of is None


def test_state_survives_reopen(tmp_path) -> None:
    path = tmp_path / "d.sqlite"
    s = SqliteDedupStore(path)
    orig = decide(make("a", text(ORIGINAL)), s, now=T0)
    s.close()
    s = SqliteDedupStore(path)
    copy = decide(make("b", variants()["baca_juga_inserted"], minutes=10), s, now=T0)
    s.close()
    assert copy.duplicate_of == orig.id


def test_beam_wrapper_catches_copies_in_one_cycle_and_counts(tmp_path) -> None:
    m = metrics.Metrics(CollectorRegistry())
    metrics.set_default(m)
    factory = SqliteStoreFactory(str(tmp_path / "beam.sqlite"))
    arts = [
        make("late-copy", variants()["wire_dateline"], minutes=20, source="b.id"),
        make("asli", text(ORIGINAL)),
        make("near", variants()["reordered_paragraphs"], minutes=10, source="c.id"),
        make("other", text(SAME_EVENT), title=SAME_EVENT_TITLE, minutes=5),
    ]
    want = {
        arts[1].id: (None, None),
        arts[2].id: (arts[1].id, "near"),
        arts[0].id: (arts[1].id, "exact"),
        arts[3].id: (None, None),
    }
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create(arts)
            | DedupArticles(factory)
            | beam.Map(lambda a: (a.id, a.duplicate_of, a.duplicate_kind))
        )
        assert_that(out, equal_to([(k, *v) for k, v in want.items()]))
    assert m.registry.get_sample_value("newsmon_duplicates_total", {"kind": "exact"}) == 1
    assert m.registry.get_sample_value("newsmon_duplicates_total", {"kind": "near"}) == 1


def test_dedup_articles_validates_arguments() -> None:
    with pytest.raises(ValueError):
        DedupArticles(SqliteStoreFactory(":memory:"), window_days=0)


def _jsonl(arts: list) -> str:
    return "".join(
        json.dumps(
            {
                "id": a.id,
                "url": a.url,
                "title": a.title,
                "text": a.text,
                "published": a.published.isoformat(),
                "source": a.source,
            }
        )
        + "\n"
        for a in arts
    )


def test_cli_dedup_reads_jsonl_and_writes_decisions(tmp_path, capsys) -> None:
    orig = make("a", text(ORIGINAL))
    amp = dataclasses.replace(orig, id="amp-copy", url="https://amp.contoh.id/berita/a/?utm_source=x")
    copy = make("b", variants()["outlet_boilerplate"], minutes=5, source="lain.id")
    other = make("c", text(SAME_EVENT), title=SAME_EVENT_TITLE, minutes=9)
    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl([orig, amp, copy, other]) + "\n{not json\n")
    assert cli_main(["dedup", str(path), "--window-days", "3"]) == 1  # one bad line skipped
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = {r["id"]: (r["duplicate_of"], r["duplicate_kind"], r["story_id"]) for r in rows}
    assert got == {
        orig.id: (None, None, orig.id),
        "amp-copy": (orig.id, "url", orig.id),
        copy.id: (orig.id, "exact", orig.id),
        other.id: (None, None, orig.id),
    }
    assert all("similarity" in r for r in rows)


def test_cli_matches_pipeline_decisions(tmp_path, capsys) -> None:
    arts = [make(k, v, minutes=i) for i, (k, v) in enumerate(sorted(variants().items()))]
    arts.insert(0, make("asli", text(ORIGINAL), minutes=-1))
    s = SqliteDedupStore(":memory:")
    direct = {a.id: decide(a, s, now=T0).duplicate_of for a in arts}
    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl(arts))
    assert cli_main(["dedup", str(path)]) == 0
    via_cli = {r["id"]: r["duplicate_of"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert via_cli == direct


# --- import cost, state size and flat per-article work -------------------------------------------

import subprocess
import sys
from pathlib import Path

import transforms.dedup as dedup_mod
from transforms.dedupstate import DedupRecord

REPO = Path(__file__).resolve().parents[1]


def test_pure_dedup_does_not_import_beam() -> None:
    code = "import sys, transforms.dedup; print('apache_beam' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_copies_are_recorded_without_shingles(store: SqliteDedupStore) -> None:
    orig = decide(make("a", text(ORIGINAL)), store, now=T0)
    copy = decide(make("b", variants()["reordered_paragraphs"], minutes=1), store, now=T0)
    assert copy.duplicate_of == orig.id
    assert len(store.lookup(orig.id).shingles) > 100  # an original keeps its set for confirmation
    assert store.lookup(copy.id).shingles == b""  # a copy is never a candidate: nothing to confirm against


def test_common_df_threshold() -> None:
    small = dedup_mod.STORY_COMMON_MIN_DOCS - 1
    assert dedup_mod.common_df(small) > small  # a small window never skips a term
    big = 10 * dedup_mod.STORY_COMMON_MIN_DOCS
    assert dedup_mod.common_df(big) == int(dedup_mod.STORY_COMMON_FRACTION * big)


class _SpyStore:
    """Delegates to a real store and remembers the terms of each story lookup."""

    def __init__(self, inner: SqliteDedupStore) -> None:
        self.inner = inner
        self.queried: list[tuple[int, ...]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def story_candidates(self, *, terms, **kw):
        self.queried.append(tuple(terms))
        return self.inner.story_candidates(terms=terms, **kw)


def test_story_lookup_skips_terms_common_in_a_large_window(store: SqliteDedupStore, monkeypatch) -> None:
    monkeypatch.setattr(dedup_mod, "STORY_COMMON_MIN_DOCS", 10)
    monkeypatch.setattr(dedup_mod, "STORY_COMMON_FRACTION", 0.5)
    feats = dedup_mod.features(make("x", text(ORIGINAL)))
    common = feats.story_terms[:4]
    for i in range(20):  # 20 originals that all share four of the article's terms (df 20 > 0.5 * 20)
        rare = (feats.story_terms[4 + i % 3],) if i < 3 else ()
        store.record(
            DedupRecord(
                id=f"bg{i}",
                url=f"https://x.id/{i}",
                source="x",
                first_seen=T0,
                published=None,
                text_hash="",
                bands=(),
                shingles=b"",
                story_terms=tuple(sorted(common + rare + (10**6 + i,))),
                story_id=f"bg{i}",
            )
        )
    spy = _SpyStore(store)
    dedup_mod.match_story(feats, spy, exclude_id="x", since=T0 - timedelta(days=1))
    (asked,) = spy.queried
    assert asked and not set(asked) & set(common)
    assert set(asked) == set(feats.story_terms[4:7])


def test_permutations_are_datasketchs() -> None:
    """The signature's permutations are drawn without importing datasketch (scipy behind it);
    they must stay the ones datasketch's affine32 MinHash uses, so signatures stored by an
    earlier version still compare."""
    import numpy as np
    from datasketch import MinHash

    from transforms.dedup import NUM_PERM, _permutations

    a, b = _permutations(NUM_PERM)
    ref_a, ref_b = MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32").permutations
    assert a.dtype == ref_a.dtype == np.uint32
    assert np.array_equal(a, ref_a) and np.array_equal(b, ref_b)
    assert (a % 2 == 1).all()
