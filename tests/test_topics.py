"""Unit tests for the topic rule language, the engine, its evidence, the Beam wrapper and the CLI."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import topics_cmd
from pipelines.cli import main as cli_main
from transforms.records import Article, TopicEvidence
from transforms.textsegments import segment
from transforms.topicrules import TopicError, check_topics, load_topics, parse_topic_text
from transforms.topics import evaluate, explain, judge_all, tag_article

MINIMAL = """\
topic: {name}
version: "1"
threshold: 1
entities:
  thing: [{alias}]
"""


@pytest.fixture(scope="module")
def topics():
    return load_topics()


def _matched(evidence: TopicEvidence, entity: str) -> list[str]:
    return [m.surface for m in evidence.matched if m.entity == entity]


# ---------------------------------------------------------------- loading and validation


def test_defaults_load_in_dependency_order(topics) -> None:
    names = [t.name for t in topics]
    assert names == ["russia-dprk", "nato-reaction"]
    assert all(t.version and t.threshold > 0 for t in topics)


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ('topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: [b]\nbogus: 1\n', 6, "unknown key 'bogus'"),
        ('topic: x\nversion: "1"\nentities:\n  a: [b]\n', 1, "missing key 'threshold'"),
        ('topic: x\nversion: "1"\nthreshold: high\nentities:\n  a: [b]\n', 3, "threshold must be a number"),
        ('topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: [b, c]\n  z: [B]\n', 6, "listed twice"),
        (
            ('topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: [b]\n  c: [d]\nproximity:\n'
            "  p:\n    within: page\n    all_of: [a, c]\n"),
            9,
            "within must be one of",
        ),
        (
            'topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: [b]\nrequire:\n  all_of: [a, nope]\n',
            7,
            "unknown name 'nope'",
        ),
        ('topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: ["b(c"]\n', 5, "invalid pattern"),
        ('topic: x\nversion: "1"\nthreshold: 1\nentities:\n  a: [b\n', 6, "YAML syntax"),
        ('topic: x\ntopic: y\nversion: "1"\nthreshold: 1\n', 2, "duplicate key"),
        ('topic: Bad Name\nversion: "1"\nthreshold: 1\nentities:\n  a: [b]\n', 1, "topic name"),
    ],
)
def test_validation_reports_file_line_and_problem(body: str, line: int, problem: str) -> None:
    with pytest.raises(TopicError) as info:
        parse_topic_text(body, file="bad.yaml")
    assert info.value.file == "bad.yaml"
    assert info.value.line == line
    assert problem in info.value.problem
    assert str(info.value).startswith(f"bad.yaml:{line}:")


def test_check_collects_every_error_and_user_topics_override(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("topic: one\nversion: 1\n", encoding="utf-8")
    (tmp_path / "two.yaml").write_text("topic: two\nversion: 1\nthreshold: [\n", encoding="utf-8")
    (tmp_path / "nato-reaction.yaml").write_text(
        MINIMAL.format(name="nato-reaction", alias="NATO") + "replaces_shipped: true\n", encoding="utf-8"
    )
    topics, errors = check_topics(tmp_path)
    assert sorted(Path(e.file).name for e in errors) == ["one.yaml", "two.yaml"]
    nato = [t for t in topics if t.name == "nato-reaction"]
    assert len(nato) == 1 and nato[0].source.endswith("nato-reaction.yaml") and "<defaults>" not in nato[0].source
    with pytest.raises(TopicError):
        load_topics(tmp_path)


def test_required_topic_cycle_and_unknown_dependency(tmp_path: Path) -> None:
    for name, dep in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.yaml").write_text(
            MINIMAL.format(name=name, alias=name + "x") + f"require:\n  topics: [{dep}]\n", encoding="utf-8"
        )
    with pytest.raises(TopicError, match="cycle"):
        load_topics(tmp_path, include_defaults=False)
    (tmp_path / "b.yaml").write_text(
        MINIMAL.format(name="b", alias="bx") + "require:\n  topics: [ghost]\n", encoding="utf-8"
    )
    with pytest.raises(TopicError, match="unknown topic 'ghost'"):
        load_topics(tmp_path, include_defaults=False)


def test_user_topic_from_directory_tags(tmp_path: Path) -> None:
    (tmp_path / "banjir.yaml").write_text(
        'topic: banjir\nversion: "0.1"\nthreshold: 2\nentities:\n  jakarta: [Jakarta, DKI]\n'
        'terms:\n  flood: {weight: 1, patterns: ["*banjir*", genangan]}\n'
        "require:\n  all_of: [jakarta, flood]\n",
        encoding="utf-8",
    )
    topics = load_topics(tmp_path)
    assert [t.name for t in topics][-1] == "banjir"
    ev = evaluate(topics, title="Kebanjiran lagi", text="Warga DKI mengeluhkan genangan di Jalan Sudirman.")
    assert [e.topic for e in ev] == ["banjir"]
    assert ev[0].rule_version == "0.1"
    assert evaluate(topics, title="Cuaca cerah", text="Warga DKI menikmati akhir pekan.") == ()


# ---------------------------------------------------------------- matching


def test_hyphenated_pairs_match_both_entities(topics) -> None:
    for text in ("Hubungan Rusia-Korut makin erat.", "Kerja sama militer Korut-Rusia disorot."):
        ev = judge_all(topics, title="", text=text)[0].evidence
        assert _matched(ev, "russia") and _matched(ev, "dprk"), text


def test_alias_variants_and_word_boundaries(topics) -> None:
    ev = judge_all(topics, title="", text="Kim Jong-un bertemu delegasi. DPR RI dan DPRD menggelar rapat. RDRK menjawab.")
    ev0 = ev[0].evidence
    assert _matched(ev0, "dprk") == ["Kim Jong-un", "RDRK"]  # "DPR"/"DPRD" are not "DPRK"
    ev = judge_all(topics, title="", text="Pasukan Rusiawan dan Korutan.")[0].evidence
    assert [m for m in ev.matched if m.entity] == []


def test_affix_wildcards(topics) -> None:
    russia = topics[0]
    for word in ("mengunjungi", "kunjungan", "berkunjung", "dikunjungi", "Kunjungan"):
        ev = judge_all([russia], title="", text=f"Putin {word} Pyongyang.")[0].evidence
        assert any(m.term in ("*kunjung*", "mengunjung*") and m.surface == word for m in ev.matched), word
    ev = judge_all([russia], title="", text="Mereka menjunjung tinggi hukum.")[0].evidence
    assert ev.matched == ()


def test_evidence_offsets_and_sentences(topics) -> None:
    title = "Putin dan Kim Jong Un Teken Pakta"
    text = "Presiden Rusia tiba di Pyongyang.\nKorea Utara dan Rusia menandatangani perjanjian pertahanan."
    ev = evaluate(topics, title=title, text=text)
    assert [e.topic for e in ev] == ["russia-dprk"]
    assert ev[0].score >= ev[0].threshold
    for m in ev[0].matched:
        source = title if m.field == "title" else text
        assert source[m.start : m.end] == m.surface
        assert m.surface in m.sentence and m.sentence in source
    assert any(m.field == "title" for m in ev[0].matched)


def test_related_link_lines_do_not_count(topics) -> None:
    text = (
        "Sekjen NATO Mark Rutte meminta anggota menaikkan anggaran pertahanan.\n"
        "Baca juga: Kim Jong Un Kirim Rudal ke Rusia, Putin Puji Pyongyang\n"
        "Rutte mengatakan Rusia tetap menjadi ancaman."
    )
    verdicts = judge_all(topics, title="NATO Bahas Anggaran", text=text)
    assert not any(v.passed for v in verdicts)
    for v in verdicts:
        assert not any(m.surface in ("Kim Jong Un", "Pyongyang") for m in v.evidence.matched)


def test_offsets_survive_text_whose_lowercase_changes_length(topics) -> None:
    text = "İİİ Presiden Rusia Vladimir Putin tiba di Pyongyang. Korea Utara dan Rusia meneken pakta."
    assert len(text.lower()) != len(text)
    ev = judge_all(topics, title="", text=text)[0].evidence
    assert ev.matched and all(text[m.start : m.end] == m.surface for m in ev.matched)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["Rusia", "Korut", "Kim Jong-un", "NATO", "tiba", "Baca juga:", "x", ".", "\n",
                                 "Jl.", "dr.", "pakta", "İ", "mengunjungi", " ", "Moskow-Pyongyang"]), max_size=40))
def test_every_match_points_at_its_surface(words: list[str]) -> None:
    topics = load_topics()
    text = " ".join(words)
    for v in judge_all(topics, title=text[:30], text=text):
        for m in v.evidence.matched:
            source = text[:30] if m.field == "title" else text
            assert source[m.start : m.end] == m.surface
            assert m.surface.lower() in m.sentence.lower()


# ---------------------------------------------------------------- segmentation


def test_sentence_split_respects_indonesian_abbreviations() -> None:
    text = "Kantor di Jl. Sudirman No. 5 dibuka. Pasien ditangani dr. Budi dan Prof. Ani. Ia pulang! Benarkah?"
    seg = segment(text)
    got = [seg.sentence_text(i) for i in range(len(seg.sentences))]
    assert got == ["Kantor di Jl. Sudirman No. 5 dibuka.", "Pasien ditangani dr. Budi dan Prof. Ani.", "Ia pulang!",
                   "Benarkah?"]


def test_paragraphs_and_inline_related_link() -> None:
    text = "Satu. Dua.\n\nTiga. Baca: Judul Lain Di Sini\nEmpat."
    seg = segment(text)
    assert [s.paragraph for s in seg.sentences] == [0, 0, 1, 2]
    assert seg.sentence_text(2) == "Tiga."
    assert any(text[a:b].startswith("Baca:") for a, b in seg.excluded)


# ---------------------------------------------------------------- explain, records, Beam


def test_explain_shows_near_misses_with_the_failed_requirement(topics) -> None:
    text = "Presiden Rusia Vladimir Putin tiba di Hanoi. Putin bertemu To Lam di Vietnam."
    out = explain(topics, title="Putin ke Vietnam usai dari Korut", text=text)
    assert "russia-dprk" in out and "not tagged" in out
    assert "requirement failed" in out
    assert "'Putin'" in out
    assert "in: " in explain(topics, title="Putin ke Vietnam usai dari Korut", text=text, full=True)


def test_tag_article_stores_evidence_that_round_trips(topics) -> None:
    article = Article(
        id="a1", url="https://x.id/a", canonical_url="https://x.id/a", source="x.id",
        title="Sekjen NATO Kecam Pakta Rusia-Korut",
        text="Sekjen NATO Jens Stoltenberg mengecam perjanjian pertahanan Rusia dan Korea Utara.\n"
             "Stoltenberg mengatakan Moskow memberi teknologi rudal kepada Pyongyang sebagai imbalan amunisi.",
        published=None, first_seen=datetime(2024, 6, 20, tzinfo=UTC),
    )
    tagged = tag_article(article, topics)
    assert tagged.topics == ("russia-dprk", "nato-reaction")
    assert [e.topic for e in tagged.topic_evidence] == list(tagged.topics)
    assert Article.from_dict(json.loads(json.dumps(tagged.to_dict()))) == tagged


def test_tag_topics_beam_transform(tmp_path: Path) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.topicsbeam import TagTopics

    (tmp_path / "kopi.yaml").write_text(MINIMAL.format(name="kopi", alias="kopi"), encoding="utf-8")
    now = datetime(2024, 6, 20, tzinfo=UTC)
    arts = [
        Article(id=str(i), url=f"u{i}", canonical_url=f"u{i}", source="s", title=t, text=x, published=None,
                first_seen=now)
        for i, (t, x) in enumerate([("Harga kopi naik", "Petani kopi senang."), ("Cuaca", "Hujan deras.")])
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(arts) | TagTopics(str(tmp_path)) | beam.Map(lambda a: (a.id, a.topics))
        assert_that(out, equal_to([("0", ("kopi",)), ("1", ())]))
    with pytest.raises(TopicError):
        (tmp_path / "broken.yaml").write_text("topic: [\n", encoding="utf-8")
        TagTopics(str(tmp_path))


# ---------------------------------------------------------------- CLI


def test_classify_stream_writes_jsonl_and_reports_bad_lines(topics) -> None:
    lines = [
        json.dumps({"id": "p", "title": "Korut Kirim Amunisi ke Rusia",
                    "text": "Pyongyang mengirim ribuan kontainer amunisi ke Moskow. Korea Utara dibayar teknologi Rusia."}),
        "{not json",
        json.dumps({"id": "n", "title": "Harga cabai", "text": "Harga cabai naik di pasar."}),
    ]
    out, err = io.StringIO(), io.StringIO()
    bad = topics_cmd.classify_stream(topics, io.StringIO("\n".join(lines) + "\n"), out, err)
    assert bad == 1 and "line 2" in err.getvalue()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["id"], r["topics"]) for r in records] == [("p", ["russia-dprk"]), ("n", [])]
    assert records[0]["evidence"][0]["matched"][0]["field"] in ("title", "text")


def test_cli_classify_file_explain_and_topics_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": 7, "title": "Putin di Pyongyang", "text": "Putin bertemu Kim Jong Un."}) + "\n",
                    encoding="utf-8")
    assert cli_main(["classify", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == 7
    assert cli_main(["classify", "--explain", str(data)]) == 0
    assert "== 7:" in capsys.readouterr().out
    assert cli_main(["topics", "check"]) == 0
    assert "ok  russia-dprk" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text('topic: bad\nversion: "1"\nthreshold: 1\nentities:\n  a: [b]\nextra: 1\n',
                                       encoding="utf-8")
    assert cli_main(["topics", "check", str(tmp_path)]) == 1
    assert f"{tmp_path / 'bad.yaml'}:6: " in capsys.readouterr().err
    assert cli_main(["classify", "--topics-dir", str(tmp_path), str(data)]) == 2
