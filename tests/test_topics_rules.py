"""The rule language's sentence-level clauses (links, roles), its compiled form and cache, and
the topic commands' handling of user topics, bad input and explanations (issue 13 items 11, 15,
19, 20). Texts here are our own short sentences."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import topics_cmd
from pipelines.cli import main as cli_main
from transforms.topicrules import TopicError, check_topics, load_topics, parse_topic_text, trie_regex
from transforms.topics import evaluate, explain, judge_all

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

LINK_TOPIC = """\
topic: pair
version: "1"
threshold: 1
entities:
  red: {weight: 0, aliases: [Merah, Kota Merah]}
  blue: {weight: 0, aliases: [Biru]}
terms:
  deal: {weight: 0, patterns: [sepakat, perjanjian, "*kirim*"]}
  other: {weight: 0, patterns: [Hijau]}
  compare: {weight: 0, patterns: ["tidak seperti"]}
  game: {weight: 0, patterns: [pertandingan]}
links:
  joined:
    parties: [red, blue]
    via: [deal]
    joiners: [dan, dengan, ke]
    breakers: [other]
    not_after: [compare]
    none_of: [game]
    weight: 1
"""

ROLE_TOPIC = """\
topic: who
version: "1"
threshold: 1
entities:
  alpha: {weight: 0, aliases: [Alfa, Sekjen Alfa]}
  beta: {weight: 0, aliases: [Beta]}
  gamma: {weight: 0, aliases: [Gamma]}
terms:
  react: {weight: 0, patterns: [mengecam, mengatakan, merespons]}
  said: {weight: 0, patterns: [kata, menurut]}
  issue: {weight: 0, patterns: [rudal]}
roles:
  alpha_reacts:
    subject: [alpha]
    verbs: [react]
    verbs_before: [said]
    rivals: [beta]
    blocked_by: [dengan, ekspansi]
    about: [gamma]
    about_before: 1
    weight: 1
"""


def _tagged(topic_text: str, text: str, title: str = "") -> bool:
    topic = parse_topic_text(topic_text, file="t.yaml")
    return bool(evaluate((topic,), title=title, text=text))


# ---------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bantuan Merah dikirim ke Biru.", True),  # a relation word between the parties
        ("Merah dan Biru sepakat berdamai.", True),  # joined by "dan", relation elsewhere
        ("Merah-Biru meneken perjanjian.", True),  # hyphen
        ("Pemimpin Biru dan Presiden Merah sepakat.", True),  # joiner plus a title between
        ("Merah sepakat. Biru juga.", False),  # different sentences
        ("Merah dan Biru bertemu.", False),  # no relation word
        ("Merah, Hijau, dan Biru sepakat.", False),  # a third party between them
        ("Kota Hijau, Merah dan Biru sepakat.", False),  # part of a longer list
        ("Usai dari Biru, Merah sepakat dengan yang lain.", False),  # a comma does not join
        ("Tidak seperti perjanjian Merah dengan Biru, yang ini longgar.", False),  # comparison just before
        ("Merah dan Biru sepakat menunda pertandingan.", False),  # none_of in the sentence
    ],
)
def test_links_need_the_two_parties_joined_by_a_relation(text: str, expected: bool) -> None:
    assert _tagged(LINK_TOPIC, text) is expected


def test_link_evidence_quotes_the_sentence() -> None:
    topic = parse_topic_text(LINK_TOPIC, file="t.yaml")
    (verdict,) = judge_all((topic,), title="", text="Hujan turun. Bantuan Merah dikirim ke Biru.")
    assert verdict.passed
    assert any("joined ('Merah' ~ 'Biru') in text: Bantuan Merah dikirim ke Biru." in r for r in verdict.evidence.reasons)


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alfa mengecam uji rudal Gamma.", True),  # subject before the verb
        ("Uji rudal Gamma berbahaya, kata Sekjen Alfa.", True),  # subject after "kata"
        ("Menurut Alfa, Gamma menambah rudal.", True),
        ("Gamma menguji rudal baru. Alfa mengecam langkah itu.", True),  # about from the sentence before
        ("Beta mengecam kerja sama dengan Alfa soal Gamma.", False),  # another actor is the subject
        ("Beta mengatakan ekspansi Alfa mengecam Gamma.", False),  # blocked: Alfa is an object
        ("Beta berkoordinasi dengan Gamma dan Alfa untuk merespons.", False),  # a list after "dengan", purpose clause
        ("Alfa mengecam uji rudal di laut.", False),  # not about Gamma
        ("Gamma menguji rudal. Cuaca cerah. Alfa mengecam langkah itu.", False),  # about too far back
    ],
)
def test_roles_decide_who_reacts_from_the_sentence(text: str, expected: bool) -> None:
    assert _tagged(ROLE_TOPIC, text) is expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("roles:\n  r:\n    subject: [nope]\n    verbs: [x]\n", "unknown entity or term group 'nope'"),
        ("roles:\n  r:\n    subject: [x]\n", "needs verbs or verbs_before"),
        ("roles:\n  r:\n    subject: [x]\n    verbs: [x]\n    about_before: -1\n", "about_before must be"),
        ("links:\n  l:\n    parties: [x]\n    via: [x]\n", "exactly two groups"),
        ("links:\n  l:\n    parties: [x, x]\n    via: [x]\n    joiners: [1.5]\n", "is not a word"),
        ("replaces_shipped: yes please\n", "replaces_shipped must be true or false"),
    ],
)
def test_new_keys_are_validated(body: str, problem: str) -> None:
    text = 'topic: t\nversion: "1"\nthreshold: 1\nentities:\n  x: [ex]\n' + body
    with pytest.raises(TopicError, match=re.escape(problem)):
        parse_topic_text(text, file="t.yaml")


# ---------------------------------------------------------------- shipped topics, sentence-level cases


@pytest.fixture(scope="module")
def shipped():
    return load_topics()


def _tags(topics, text: str, title: str = "") -> set[str]:
    return {e.topic for e in evaluate(topics, title=title, text=text)}


def test_one_nato_sentence_as_subject_is_enough(shipped) -> None:
    text = "NATO menyatakan keprihatinan atas kerja sama militer Rusia dan Korea Utara."
    assert _tags(shipped, text) == {"russia-dprk", "nato-reaction"}


def test_nato_in_russian_rhetoric_or_at_a_meeting_is_not_a_nato_reaction(shipped) -> None:
    rhetoric = ("Menlu Rusia Sergei Lavrov mengatakan kemitraan dengan Korea Utara adalah jawaban atas "
                "ekspansi NATO ke timur.")
    meeting = ("Di sela KTT NATO, Perdana Menteri Jepang mengatakan kerja sama militer Rusia dan Korea Utara "
               "mengancam kawasan.")
    assert _tags(shipped, rhetoric) == {"russia-dprk"}
    assert _tags(shipped, meeting) == {"russia-dprk"}


def test_less_common_names_carry_the_relation(shipped) -> None:
    text = "Kremlin dan Pyongyang meneken perjanjian kerja sama teknologi satelit, kata juru bicara RRDK."
    assert _tags(shipped, text) == {"russia-dprk"}


def test_a_listing_of_countries_is_not_a_relation(shipped) -> None:
    text = ("Dengan sembilan negara pemilik senjata nuklir, termasuk AS, Rusia, dan Korea Utara, risiko konflik "
            "global selalu ada. Para ilmuwan memperingatkan perubahan iklim.")
    assert _tags(shipped, text) == set()


# ---------------------------------------------------------------- compiled form and cache


@given(st.lists(st.from_regex(r"[a-c]{1,3}( [a-c]{1,2})?\*?", fullmatch=True), min_size=1, max_size=8, unique=True),
       st.text(alphabet="abc -", max_size=40))
@settings(max_examples=200, deadline=None)
def test_trie_regex_finds_what_a_longest_first_alternation_finds(patterns: list[str], text: str) -> None:
    from transforms.topicrules import pattern_regex

    flat = "|".join(pattern_regex(p) for p in sorted(patterns, key=lambda p: -len(p.replace("*", ""))))
    ours = re.compile(rf"\b(?:{trie_regex(patterns)})\b")
    reference = re.compile(rf"\b(?:{flat})\b")
    ours_spans = {m.start() for m in ours.finditer(text)}
    reference_spans = {m.start() for m in reference.finditer(text)}
    assert ours_spans == reference_spans


def test_rule_sets_are_compiled_once_and_reloaded_when_a_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text('topic: a\nversion: "1"\nthreshold: 1\nentities:\n  x: [ex]\n', encoding="utf-8")
    first = load_topics(tmp_path)
    assert load_topics(tmp_path) is first
    assert load_topics() is load_topics()
    path.write_text('topic: a\nversion: "2"\nthreshold: 1\nentities:\n  x: [ex]\n', encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_topics(tmp_path)
    assert second is not first and second[-1].version == "2"


# ---------------------------------------------------------------- item 15: shipped names


def test_user_topic_with_a_shipped_name_is_refused_without_an_explicit_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = 'topic: russia-dprk\nversion: "mine"\nthreshold: 1\nentities:\n  x: [Rusia]\n'
    (tmp_path / "russia-dprk.yaml").write_text(body, encoding="utf-8")
    topics, errors = check_topics(tmp_path)
    assert [e.file for e in errors] == [str(tmp_path / "russia-dprk.yaml")]
    assert "shipped topic" in errors[0].problem and "replaces_shipped: true" in errors[0].problem
    assert {t.name: t.version for t in topics}["russia-dprk"] != "mine"  # the shipped one is kept
    with pytest.raises(TopicError, match="shipped topic"):
        load_topics(tmp_path)
    assert cli_main(["topics", "check", str(tmp_path)]) == 1
    assert "replaces_shipped" in capsys.readouterr().err

    (tmp_path / "russia-dprk.yaml").write_text(body + "replaces_shipped: true\n", encoding="utf-8")
    assert {t.name: t.version for t in load_topics(tmp_path)}["russia-dprk"] == "mine"
    assert cli_main(["topics", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if " russia-dprk " in ln)
    assert str(tmp_path / "russia-dprk.yaml") in line and "replaces the shipped <defaults>/russia-dprk.yaml" in line


# ---------------------------------------------------------------- item 19: explain


def test_explain_shows_what_carried_the_decision_and_everything_only_on_request(shipped) -> None:
    title = "Putin dan Kim Jong Un Teken Pakta Pertahanan"
    text = ("Presiden Rusia Vladimir Putin dan pemimpin Korea Utara Kim Jong Un menandatangani perjanjian "
            "kemitraan strategis di Pyongyang. Cuaca cerah. Warga menonton di alun-alun.")
    short = explain(shipped, title=title, text=text)
    full = explain(shipped, title=title, text=text, full=True)
    assert "TAGGED" in short and "link relation" in short
    assert "in text: Presiden Rusia Vladimir Putin dan pemimpin Korea Utara" in short
    assert ", +0)" not in short and "qualify, +0" not in short  # nothing that added nothing
    assert ", +0)" in full and "qualify, +0" in full
    assert len(short.splitlines()) * 2 < len(full.splitlines())


def test_cli_explain_and_explain_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "1", "title": "Kremlin dan Pyongyang sepakat", "text": "Kerja sama militer."}\n',
                    encoding="utf-8")
    assert cli_main(["classify", "--explain", str(data)]) == 0
    short = capsys.readouterr().out
    assert cli_main(["classify", "--explain-all", str(data)]) == 0
    full = capsys.readouterr().out
    assert ", +0)" not in short and ", +0)" in full


# ---------------------------------------------------------------- item 11 (classify): bad lines


def test_classify_reports_bad_lines_by_number_and_goes_on(shipped) -> None:
    lines = [
        b'{"id": "ok1", "title": "Putin", "text": "x"}\n',
        b"\xff\xfe not utf-8\n",
        b"[1]\n",
        b'{"id": "t", "text": {"nested": true}}\n',
        b"[" * 100_000 + b"\n",
        b"not json\n",
        b"\n",
        b'{"id": "ok2", "title": "", "text": ""}\n',
    ]
    out, err = io.StringIO(), io.StringIO()
    bad = topics_cmd.classify_stream(shipped, io.BytesIO(b"".join(lines)), out, err)
    assert bad == 5
    assert [line.split('"id": ')[1].split(",")[0] for line in out.getvalue().splitlines()] == ['"ok1"', '"ok2"']
    messages = err.getvalue().splitlines()
    assert [m.split(":")[0] for m in messages] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "not UTF-8" in messages[0] and "not a JSON object" in messages[1] and "must be a string" in messages[2]


def test_cli_classify_exits_non_zero_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"id": "1", "title": "a", "text": "b"}\n\xc3\x28 broken\n')
    assert cli_main(["classify", str(data)]) == 1
    captured = capsys.readouterr()
    assert '"id": "1"' in captured.out
    assert "line 2: not UTF-8" in captured.err and "Traceback" not in captured.err
    assert "1 input line(s) skipped" in captured.err


# ---------------------------------------------------------------- item 20: reference and example


def test_example_topic_file_loads_and_tags_its_own_example(tmp_path: Path) -> None:
    (tmp_path / "example-topic.yaml").write_bytes((DOCS / "example-topic.yaml").read_bytes())
    topics = load_topics(tmp_path)
    assert topics[-1].name == "banjir-jakarta"
    assert topics[-1].links and topics[-1].roles and topics[-1].proximity
    text = ("Hujan deras membuat banjir di Jakarta Utara setinggi 60 cm. Pemprov DKI mengerahkan pompa untuk "
            "evakuasi warga yang kebanjiran.")
    assert "banjir-jakarta" in _tags(topics, text, title="Banjir Rendam Jakarta Utara")
    assert "banjir-jakarta" not in _tags(topics, "Laga sepak bola Persija di Jakarta tetap digelar meski ada genangan.")


ALL_KEYS = {
    "top": ["topic", "version", "threshold", "title_weight", "description", "replaces_shipped", "entities", "terms",
            "proximity", "links", "roles", "require"],
    "groups": ["aliases", "patterns", "weight", "max_hits"],
    "proximity": ["within", "all_of", "any_of", "none_of"],
    "links": ["parties", "via", "joiners", "breakers", "not_after", "none_of", "reach"],
    "roles": ["subject", "verbs", "verbs_before", "rivals", "blocked_by", "about", "about_before", "reach"],
    "require": ["all_of", "any_of", "none_of", "topics", "focus"],
}


def test_reference_documents_every_key_with_an_example() -> None:
    doc = (DOCS / "topic-rules.md").read_text(encoding="utf-8")
    table_rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert "min_share:" in doc
    for section in ("entities", "terms", "proximity", "links", "roles", "require"):
        assert any(line.startswith("## ") and f"`{section}`" in line for line in doc.splitlines()), section
    for section, keys in ALL_KEYS.items():
        for key in keys:
            if section == "top" and key in ("entities", "terms", "proximity", "links", "roles", "require"):
                continue
            rows = [r for r in table_rows if f"`{key}`" in r.split("|")[1] or f"`{key}`" in r]
            assert rows, f"{section}.{key} is not in the reference"
            assert any(f"{key}:" in r for r in rows), f"{section}.{key} has no example"
