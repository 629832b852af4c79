"""Issue 13 items on the topic commands, each with a regression test: 11 (bad lines in
``classify`` input are reported by line number and skipped, exit non-zero, no traceback), 15 (a
user topic named like a shipped one is refused unless it says ``replaces_shipped``; ``topics
check`` shows which file won), 19 (``--explain`` shows what carried the decision, everything
only with ``--explain-all``), 20 (a reference of the rule language and a commented example)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipelines import topics_cmd
from pipelines.cli import main as cli_main
from transforms.topicrules import TopicError, check_topics, load_topics
from transforms.topics import evaluate, explain

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def shipped():
    return load_topics()


def _tags(topics, text: str, title: str = "") -> set[str]:
    return {e.topic for e in evaluate(topics, title=title, text=text)}


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
    "groups": ["aliases", "patterns", "weight", "max_hits", "short_aliases"],
    "proximity": ["within", "all_of", "any_of", "none_of"],
    "links": ["parties", "via", "joiners", "breakers", "not_after", "none_of", "reach"],
    "roles": ["subject", "verbs", "verbs_before", "rivals", "blocked_by", "about", "about_before", "pronouns",
              "quote_colon", "negated_by", "reach"],
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
