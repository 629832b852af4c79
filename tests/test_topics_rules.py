"""The rule language's sentence-level clauses (links, roles), the shipped topics on sentence-level
cases, and the compiled form and its cache. Texts here are our own short sentences."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.topicrules import TopicError, load_topics, parse_topic_text, trie_regex
from transforms.topics import evaluate, judge_all

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
    pronouns: [ia, dia]
    quote_colon: true
    negated_by: [belum, tidak]
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
        ("Merah - Biru sepakat.", True),  # a spaced dash alone joins
        ("Merah tetap kuat - Biru kirim perjanjian baru", False),  # ... but separates two listed items
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
        ("Sekjen Alfa tiba di kota. Ia mengecam rudal Gamma.", True),  # a pronoun refers to the sentence before
        ("Beta tiba di kota. Ia mengecam rudal Gamma.", False),  # ... whose first actor is not the subject
        ("Alfa: rudal Gamma berbahaya", True),  # a headline quoting the subject
        ("Rudal Gamma dikecam banyak pihak, sementara Alfa belum mengecam.", False),  # a negated verb
        ("Ekspansi Alfa: ancaman bagi Gamma", False),  # blocked
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
        ("roles:\n  r:\n    subject: [x]\n    verbs: [x]\n    quote_colon: 1\n", "quote_colon must be true or false"),
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


def test_fast_path_agrees_with_full_verdicts(shipped) -> None:
    import json

    rows = [json.loads(line) for line in
            (Path(__file__).parent / "data" / "topics_devset.jsonl").read_text(encoding="utf-8").splitlines() if line]
    rows.append({"title": "", "text": "Hujan deras di Bogor. Tidak ada kaitan dengan Rusia."})
    for row in rows:
        fast = [e.to_dict() for e in evaluate(shipped, title=row["title"], text=row["text"])]
        full = [v.evidence.to_dict() for v in judge_all(shipped, title=row["title"], text=row["text"]) if v.passed]
        assert fast == full


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kim Jong Un mengucapkan selamat ulang tahun kepada Vladimir Putin dan memuji persahabatan kedua negara.",
         {"russia-dprk"}),
        ("Pesawat yang membawa Menlu Korut Choe Son Hui mendarat di Moskwa untuk pembicaraan dengan Lavrov.",
         {"russia-dprk"}),
        ("Negeri Beruang Merah disebut menerima jutaan peluru artileri dari Pyongyang sejak 2023.", {"russia-dprk"}),
        ("Jalur kereta penumpang Moskow-Pyongyang kembali dibuka setelah lima tahun terhenti.", {"russia-dprk"}),
        ("Timnas Korea Utara mengalahkan Rusia 2-1 dalam laga persahabatan di stadion Kim Il Sung.", set()),
        ("Film tentang mata-mata Rusia di Korea Utara meraih penghargaan di festival Busan.", set()),
        ("Korea Utara kembali menembakkan rudal balistik ke Laut Jepang, sementara Rusia melanjutkan serangan "
         "di Ukraina.", set()),
        ("Aliansi itu mengecam pengiriman pasukan Korea Utara ke Rusia. NATO juga menyerukan Pyongyang menghentikan "
         "bantuan militer kepada Moskow.", {"russia-dprk", "nato-reaction"}),
        ("Uni Eropa dan G7 mengecam kerja sama militer Rusia dan Korea Utara dalam pertemuan yang juga dihadiri "
         "NATO.", {"russia-dprk"}),
    ],
)
def test_shipped_topics_on_single_sentences(shipped, text: str, expected: set[str]) -> None:
    assert _tags(shipped, text) == expected


SHORT_TOPIC = """\
topic: short
version: "1"
threshold: 1
entities:
  person: {weight: 1, aliases: [Kim Jong Un], short_aliases: [Kim]}
"""


@pytest.mark.parametrize(
    ("text", "hits"),
    [
        ("Kim tiba di stasiun.", 0),  # the short form alone does not count
        ("Kim Jong Un tiba. Kim lalu berpidato.", 2),  # beside the full name it does
        ("Kim Jong Un tiba. Kim Keon-hee menyambutnya.", 1),  # not when a name goes on
    ],
)
def test_short_aliases_count_only_beside_a_full_alias(text: str, hits: int) -> None:
    topic = parse_topic_text(SHORT_TOPIC, file="t.yaml")
    (verdict,) = judge_all((topic,), title="", text=text)
    assert len(verdict.evidence.matched) == hits


TROOPS = "Korea Utara telah mengirim ribuan tentara ke Rusia untuk membantu perang di Ukraina. "


@pytest.mark.parametrize(
    ("follow_up", "nato"),
    [
        ("Pernyataan itu disampaikan Sekjen NATO Mark Rutte dalam konferensi pers di Brussel.", True),
        ("Langkah itu dikecam NATO sebagai eskalasi berbahaya.", True),
        ("NATO, melalui juru bicaranya, mengecam pengerahan pasukan Korea Utara tersebut.", True),
        ("Rusia menyebut NATO sebagai ancaman utama bagi keamanannya.", False),
        ("Presiden Korea Selatan Yoon Suk Yeol akan membahas isu itu dengan NATO pekan depan.", False),
        ("Juru bicara Kremlin Dmitry Peskov mengatakan NATO tidak berhak mengomentari hubungan Moskow dan "
         "Pyongyang.", False),
        ("Langkah itu dikecam Seoul dan Tokyo, sementara NATO belum berkomentar.", False),
    ],
)
def test_shipped_nato_reaction_follows_the_reacting_subject(shipped, follow_up: str, nato: bool) -> None:
    tags = _tags(shipped, TROOPS + follow_up)
    assert "russia-dprk" in tags
    assert ("nato-reaction" in tags) is nato
