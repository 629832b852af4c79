"""Dedup quality on real third-party text read from ../shared (skipped when absent).

* The five seeds share whole wire sentences yet are different articles: no duplicates, one story.
* Each seed is still caught when republished with boilerplate, "Baca juga" lines, reordered
  paragraphs or a trimmed ending (variants built at test time, nothing copied into the repo).
* The corpus gate (slow): the counts of flagged pairs and stories stay within floors/ceilings
  pinned from the hand-checked run (see bench/dedup_corpus_report.py), and the pairs judged
  "different article" by hand are never flagged.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.dedupstore import SqliteDedupStore
from pipelines.dedup_cmd import article_from_json, iter_rows
from transforms.dedup import decide
from transforms.records import Article

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEEDS = SHARED / "seeds"
CORPUS = SHARED / "data" / "corpus" / "articles.jsonl.gz"
T0 = datetime(2024, 6, 20, 6, 0, tzinfo=UTC)


def _seeds() -> list[Article]:
    files = sorted(SEEDS.glob("0*.txt"))
    if len(files) != 5:
        pytest.skip("../shared/seeds absent: the five seed articles are third-party text kept outside the repo")
    arts = []
    for i, f in enumerate(files):
        body = f.read_text(encoding="utf-8")
        url = f"https://seed.example/{f.stem}"
        arts.append(
            Article(
                id=f.stem,
                url=url,
                canonical_url=url,
                source="seed",
                title=body.strip().splitlines()[0],
                text=body,
                published=None,
                first_seen=T0 + timedelta(minutes=7 * i),
            )
        )
    return arts


def test_seeds_are_one_story_and_no_duplicates() -> None:
    store = SqliteDedupStore(":memory:")
    out = [decide(a, store, now=T0) for a in _seeds()]
    assert [a.duplicate_of for a in out] == [None] * 5
    assert {a.story_id for a in out} == {out[0].id}


def _variants(body: str) -> dict[str, str]:
    paras = [p for p in body.split("\n") if p.strip()]
    swapped = paras[:]
    for i in range(0, len(swapped) - 1, 2):
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    with_links = []
    for i, p in enumerate(paras):
        with_links.append(p)
        if i % 3 == 1:
            with_links.append("Baca juga: Berita Terkait Lainnya di Kanal Internasional")
    return {
        "boilerplate": "JAKARTA, KOMPAS.com - " + body + "\nArtikel ini telah tayang di Kompas.com\nEditor: Tim",
        "reordered": "\n".join(swapped),
        "trimmed": "\n".join(paras[: max(3, int(len(paras) * 0.7))]),
        "baca_juga": "\n".join(with_links),
    }


@pytest.mark.parametrize("kind", ["boilerplate", "reordered", "trimmed", "baca_juga"])
def test_seed_copies_are_caught_without_merging_seeds(kind: str) -> None:
    seeds = _seeds()
    store = SqliteDedupStore(":memory:")
    originals = [decide(a, store, now=T0) for a in seeds]
    for n, seed in enumerate(seeds):
        url = f"https://copy.example/{kind}/{n}"
        copy = Article(
            id=f"copy-{kind}-{n}",
            url=url,
            canonical_url=url,
            source="copy",
            title="Judul lain",
            text=_variants(seed.text)[kind],
            published=None,
            first_seen=T0 + timedelta(hours=2, minutes=n),
        )
        got = decide(copy, store, now=T0)
        assert got.duplicate_of == originals[n].id, (kind, seed.id, got.similarity)


def _corpus_rows() -> list[dict]:
    if not CORPUS.exists():
        pytest.skip("../shared/data/corpus absent: third-party corpus kept outside the repo")
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    rows.sort(key=lambda d: (d.get("published") is None, d.get("published") or ""))
    return rows


# The hand-checked sample (bench/dedup_corpus_report.py --seed 7): all 15 judged real copies/re-posts.
# Ids only. One pair outside the sample, ("detik1000:494", "detik1000:497") -- a follow-up with a new
# three-paragraph lead over recycled background -- was judged "different article": a known false positive.
KNOWN_COPIES: set[tuple[str, str]] = {
    ("tribun-harisatul:1226", "tribun-harisatul:1225"),
    ("tribun-harisatul:1410", "tribun-harisatul:1407"),
    ("detik1000:415", "detik1000:416"),
    ("detik1000:235", "detik1000:233"),
    ("tribun-harisatul:914", "tribun-harisatul:806"),
    ("tribun-harisatul:855", "tribun-harisatul:717"),
    ("detik1000:938", "detik1000:923"),
    ("tribun-harisatul:785", "tribun-harisatul:784"),
    ("detik1000:492", "detik1000:497"),
    ("detik1000:7", "detik1000:4"),
    ("tribun-harisatul:1155", "tribun-harisatul:1147"),
    ("detik1000:31", "detik1000:33"),
    ("tribun-harisatul:1396", "tribun-harisatul:1377"),
    ("tribun-harisatul:957", "tribun-harisatul:931"),
    ("tribun-harisatul:788", "tribun-harisatul:783"),
}

# Pinned from the hand-checked run: 54 pairs, 5,342 stories (floors/ceilings leave room for tuning).
# Re-run on the committed code (and after the dedup cost work, decision-for-decision identical): 54 pairs, 5,349 stories.
# Issue 11 (aligned rule across sites, symmetric containment): 89 pairs (82 near, 7 exact), 5,284
# stories; a hand-checked sample of 15 (seed 11): 14 re-posts or rewrites of one text, 1 update
# of a breaking story published by another detik desk.
PAIRS_RANGE = (40, 110)
STORIES_RANGE = (5000, 5600)


@pytest.mark.slow
def test_corpus_gate() -> None:
    rows = _corpus_rows()
    store = SqliteDedupStore(":memory:")
    lines = (json.dumps(r) for r in rows)
    out = list(iter_rows(lines, store, window_days=7.0, story_window_days=3.0))
    flagged = {(r["id"], r["duplicate_of"]) for r in out if r.get("duplicate_kind")}
    stories = {r["story_id"] for r in out}
    assert PAIRS_RANGE[0] <= len(flagged) <= PAIRS_RANGE[1], len(flagged)
    assert STORIES_RANGE[0] <= len(stories) <= STORIES_RANGE[1], len(stories)
    assert KNOWN_COPIES <= flagged, KNOWN_COPIES - flagged
    # IndoSum mixes ten outlets' original reporting: none of it is a copy of another article
    assert not [p for p in flagged if p[0].startswith("indosum:")]
    assert all(article_from_json(r).id for r in rows[:5])


def _background(n: int) -> list[Article]:
    """``n`` unrelated originals of made-up words (invented here), all earlier than the seeds."""
    import random

    rnd = random.Random(11)
    syll = ["ka", "ra", "mu", "ti", "no", "be", "sa", "lo", "ve", "du", "pi", "ge"]
    vocab = ["".join(rnd.choice(syll) for _ in range(rnd.randint(2, 4))) for _ in range(3000)]
    out = []
    for i in range(n):
        body = "\n".join(" ".join(rnd.choices(vocab, k=40)) + "." for _ in range(5))
        url = f"https://latar.example/{i}"
        out.append(
            Article(
                id=f"bg-{i}",
                url=url,
                canonical_url=url,
                source="latar",
                title=" ".join(rnd.choices(vocab, k=8)),
                text=body,
                published=None,
                first_seen=T0 - timedelta(hours=24) + timedelta(seconds=60 * i),
            )
        )
    return out


def test_seed_decisions_hold_in_a_large_window_with_common_terms_skipped(monkeypatch) -> None:
    """Same decisions for the seeds and their copies when the store already holds hundreds of
    originals and the common-term skip of the story lookup is active."""
    import transforms.dedup as dedup_mod

    monkeypatch.setattr(dedup_mod, "STORY_COMMON_MIN_DOCS", 100)
    seeds = _seeds()
    store = SqliteDedupStore(":memory:")
    bg = [decide(a, store, now=T0) for a in _background(400)]
    assert all(b.duplicate_of is None for b in bg)
    assert dedup_mod.common_df(store.term_frequencies(())[1]) < 400  # the skip is in force
    out = [decide(a, store, now=T0) for a in seeds]
    assert [a.duplicate_of for a in out] == [None] * 5
    assert {a.story_id for a in out} == {out[0].id}
    for n, seed in enumerate(seeds):
        for kind, body in _variants(seed.text).items():
            url = f"https://copy.example/{kind}/{n}"
            copy = Article(
                id=f"copy-{kind}-{n}",
                url=url,
                canonical_url=url,
                source="copy",
                title="Judul lain",
                text=body,
                published=None,
                first_seen=T0 + timedelta(hours=2, minutes=n),
            )
            assert decide(copy, store, now=T0).duplicate_of == out[n].id, (kind, seed.id)


# --- the shared dedup dev set (issue 11): pair-wise P/R/F1, merges that must never happen ---------

DEV_SET = SHARED / "data" / "eval" / "dedup_dev.jsonl"


@pytest.fixture(scope="module")
def dev_report() -> dict:
    if not DEV_SET.exists():
        pytest.skip("../shared/data/eval/dedup_dev.jsonl absent: third-party pages kept outside the repo")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from dedup_quality import dedup_report

    return dedup_report(DEV_SET)


def test_dev_set_non_borderline_pairs(dev_report: dict) -> None:
    m = dev_report["non_borderline"]["newsmon"]
    assert m["f1"] >= 0.95, m
    assert m["same_event_merges"] == 0 and m["background_merges"] == 0, m


def test_dev_set_all_pages(dev_report: dict) -> None:
    m = dev_report["all"]["newsmon"]
    assert m["f1"] >= 0.85, m
    assert m["same_event_merges"] == 0 and m["background_merges"] == 0, m
    assert m["f1"] > dev_report["all"]["minhash"]["f1"]


def test_dev_set_story_grouping_groups_more_and_better_than_before(dev_report: dict) -> None:
    s = dev_report["all"]["story"]
    # before issue 11 (same scoring, bench/dedup_quality.py): P 0.663, R 0.561; now P 0.731, R 0.641
    assert s["p"] >= 0.70 and s["r"] >= 0.60, s
