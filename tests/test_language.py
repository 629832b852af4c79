"""Tests for transforms.language.detect_language (texts written for these tests, plus the shared corpus)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.language import detect_language

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "corpus"

INDONESIAN = [
    "Polisi menangkap dua pria karena diduga terlibat kasus perampokan di Jakarta kemarin.",
    (
        "Pemerintah provinsi menyatakan bahwa bantuan tunai akan diberikan kepada semua keluarga yang "
        "terdampak banjir setelah hujan deras pekan lalu."
    ),
    "Warga desa bisa mendaftar program bantuan itu secara daring mulai bulan depan, kata kepala dinas.",
]
INDONESIAN_TITLES = [
    "Presiden Tinjau Pembangunan Bendungan di Nusa Tenggara Timur",
    "Harga Cabai Rawit Naik Jelang Natal, Pedagang Pasar Mengeluh",
    "Gempa Magnitudo 5,2 Guncang Cianjur, Warga Berhamburan Keluar Rumah",
    "Menteri Luar Negeri Rusia Bertemu Pemimpin Korea Utara di Pyongyang",
    "Timnas Indonesia Kalahkan Vietnam 2-1 di Stadion Gelora Bung Karno",
]
MALAY = [
    "Polis menahan dua lelaki kerana disyaki terlibat dalam kes samun di Kuala Lumpur semalam.",
    (
        "Kerajaan negeri memaklumkan bahawa bantuan tunai akan diberikan kepada semua keluarga yang "
        "terjejas akibat banjir selepas hujan lebat minggu lepas."
    ),
    "Menteri berkata bahawa rakyat boleh memohon bantuan itu secara dalam talian mulai bulan hadapan.",
    "Pihak berkuasa tempatan mengesahkan jalan itu ditutup sementara kerana kerja-kerja pembaikan.",
    "Harga minyak dijangka turun minggu depan, kata kerajaan",
]
ENGLISH = [
    "The central bank kept its benchmark interest rate unchanged on Thursday, citing stable inflation.",
    "Flooding forces thousands to evacuate in West Java",
    "NATO chief warns of growing military ties between Russia and North Korea",
]


@pytest.mark.parametrize("text", INDONESIAN + INDONESIAN_TITLES)
def test_indonesian(text: str) -> None:
    code, confidence = detect_language(text)
    assert code == "id"
    assert 0.3 < confidence <= 1.0


@pytest.mark.parametrize("text", MALAY)
def test_malay(text: str) -> None:
    code, confidence = detect_language(text)
    assert code == "ms"
    assert 0.5 < confidence <= 1.0


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect_language(text)[0] == "en"
    assert detect_language(text)[1] > 0.9


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Die Regierung hat heute neue Maßnahmen gegen die Inflation beschlossen und angekündigt.", "de"),
        ("Le gouvernement a annoncé aujourd'hui de nouvelles mesures contre l'inflation.", "fr"),
        ("北京今天天气很好，我们去公园散步吧。", "zh"),
    ],
)
def test_other_languages_keep_their_iso_639_1_code(text: str, code: str) -> None:
    assert detect_language(text)[0] == code


def test_cue_words_separate_the_two_standards_on_the_same_sentence() -> None:
    # the same sentence, spelled the Indonesian way and the Malay way
    assert detect_language("Dia tidak datang karena hujan, bahwa itu benar.")[0] == "id"
    assert detect_language("Dia tidak datang kerana hujan, bahawa itu benar.")[0] == "ms"


@pytest.mark.parametrize("text", ["", "   ", "12345 678", "!!! ???", "\x00\x01\x02"])
def test_undetermined(text: str) -> None:
    assert detect_language(text) == ("und", 0.0)


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_never_raises_and_is_well_formed(text: str) -> None:
    code, confidence = detect_language(text)
    assert code == "und" or len(code) == 2
    assert 0.0 <= confidence <= 1.0


def _corpus(name: str) -> list[dict[str, object]]:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"../shared/data/corpus/{name} absent: corpus language check not run")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_shared_article_bodies_are_indonesian() -> None:
    rows = _corpus("articles.jsonl.gz")[::4]  # every 4th body keeps the test fast
    codes = [detect_language(str(row["text"]))[0] for row in rows]
    assert len(codes) > 1000
    assert codes.count("id") / len(codes) >= 0.995


def test_shared_headlines_are_indonesian() -> None:
    rows = _corpus("headlines_dec2022.jsonl.gz")[::5]
    codes = [detect_language(str(row["title"]))[0] for row in rows]
    assert len(codes) > 20000
    # measured 99.8 % on all 101,038 titles; the rest are mostly English song titles and Malaysia stories
    assert codes.count("id") / len(codes) >= 0.99


def test_bounded_prefix_is_as_accurate_as_the_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model reads a bounded prefix (speed); on real bodies it must not label fewer as Indonesian
    than the model reading the whole text (title + body, as extraction calls it)."""
    import transforms.language as language

    rows = _corpus("articles.jsonl.gz")[::3]
    texts = [f"{row.get('title') or ''}\n{row['text']}" for row in rows]
    bounded = [detect_language(text)[0] for text in texts]
    monkeypatch.setattr(language, "_MODEL_CHARS", 10**9)
    monkeypatch.setattr(language, "_CUE_CHARS", 10**9)
    whole = [detect_language(text)[0] for text in texts]
    assert len(texts) > 1900
    assert bounded.count("id") >= whole.count("id"), (bounded.count("id"), whole.count("id"))
    agree = sum(a == b for a, b in zip(bounded, whole, strict=True)) / len(texts)
    assert agree >= 0.998, agree


def test_the_cached_model_scores_exactly_as_the_shipped_one(tmp_path: Path) -> None:
    """The unpacked model kept in the cache folder gives the same ranking as one unpacked from
    py3langid's file; a broken cache is rebuilt and an unusable cache folder only costs time."""
    from transforms.language import load_identifier

    built = load_identifier(tmp_path)  # unpacks, writes the cache
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("langid-")]
    cached = load_identifier(tmp_path)
    assert type(cached.nb_ptc).__name__ == "memmap"  # read from the cache folder, not unpacked again
    texts = ["Presiden Joko Widodo meresmikan jalan tol baru di Sumatera karena arus mudik.",
             "Kerajaan Malaysia berkata polis sedang menyiasat kes itu selepas kejadian semalam.",
             "The minister said the talks would resume next week in Geneva.", "Путин и Ким", "", "12345"]
    for text in texts:
        assert cached.rank(text) == built.rank(text)
    for broken, keep in (("rest.npz", 0), ("rest.npz", 1000), ("ptc.npy", 100)):  # foreign, truncated zip, npy
        (folder / broken).write_bytes((folder / broken).read_bytes()[:keep] if keep else b"not a model")
        rebuilt = load_identifier(tmp_path)
        assert rebuilt.rank(texts[0]) == built.rank(texts[0])
        assert type(load_identifier(tmp_path).nb_ptc).__name__ == "memmap"  # written again
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    assert load_identifier(blocked).rank(texts[1]) == built.rank(texts[1])
    assert load_identifier(None).rank(texts[2]) == built.rank(texts[2])
