"""``newsmon classify`` and ``newsmon topics check``: try topic rules before deploying them.

``classify [FILE]`` reads JSONL objects with ``id``, ``title`` and ``text`` (from FILE or stdin)
and writes one JSONL object per input line: ``{"id", "topics", "evidence"}`` where evidence is
``TopicEvidence.to_dict()`` for every topic that passed. ``--explain`` prints a human-readable
account instead, including near-misses and the requirement that failed.
``topics check [DIR]`` validates the shipped topics plus DIR and prints every error as
``file:line: problem``.

Exit codes: 0 ok; 1 some input lines were not valid JSON objects (they are reported on stderr
and skipped) or topic files are invalid (``topics check``); 2 topic files could not be loaded
(``classify``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from transforms.topicrules import Topic, TopicError, check_topics, load_topics


def register(subparsers: Any) -> None:
    classify = subparsers.add_parser("classify", help="tag JSONL articles (id, title, text) with topics")
    classify.add_argument("file", nargs="?", default="-", help="JSONL input (default: stdin)")
    classify.add_argument("--topics-dir", type=Path, default=None,
                          help="directory of extra topic YAML files (default: the config's topics_dir / $NEWSMON_TOPICS_DIR)")
    classify.add_argument("--config", help="config file whose topics_dir to use")
    classify.add_argument("--explain", action="store_true", help="human-readable account instead of JSONL")
    classify.set_defaults(func=lambda args: run_classify(args.file, topics_dir=_topics_dir(args), explain=args.explain))

    topics = subparsers.add_parser("topics", help="topic rule files")
    topics_sub = topics.add_subparsers(dest="topics_command", metavar="SUBCOMMAND")
    check = topics_sub.add_parser("check", help="validate the shipped topics and those in DIR")
    check.add_argument("dir", nargs="?", type=Path, default=None, help="directory of topic YAML files")
    check.add_argument("--no-defaults", action="store_true", help="check DIR alone, without the shipped topics")
    check.set_defaults(func=lambda args: run_check(args.dir, include_defaults=not args.no_defaults))
    topics.set_defaults(func=lambda args: _usage(topics))


def _topics_dir(args: argparse.Namespace) -> Path | None:
    """--topics-dir, else the configured topics_dir, so classify tests the rules `run` uses."""
    if args.topics_dir is not None:
        return Path(args.topics_dir)
    from pipelines.config import load_config

    return load_config(args.config).topics_dir


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _records(stream: IO[str], errors: IO[str]) -> Iterator[tuple[int, dict[str, Any] | None]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"line {number}: not JSON ({exc.msg})", file=errors)
            yield number, None
            continue
        if not isinstance(obj, dict):
            print(f"line {number}: not a JSON object", file=errors)
            yield number, None
            continue
        yield number, obj


def classify_stream(
    topics: tuple[Topic, ...], stream: IO[str], out: IO[str], errors: IO[str], *, explain: bool = False
) -> int:
    """Classify every JSONL record of ``stream``; returns the number of rejected lines."""
    from transforms.topics import evaluate
    from transforms.topics import explain as explain_text

    bad = 0
    for number, obj in _records(stream, errors):
        if obj is None:
            bad += 1
            continue
        title, text = str(obj.get("title") or ""), str(obj.get("text") or "")
        ident = obj.get("id", number)
        if explain:
            out.write(f"== {ident}: {title[:100]}\n{explain_text(topics, title=title, text=text)}\n\n")
            continue
        evidence = evaluate(topics, title=title, text=text)
        record = {"id": ident, "topics": [e.topic for e in evidence], "evidence": [e.to_dict() for e in evidence]}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return bad


def run_classify(file: str, *, topics_dir: Path | None, explain: bool) -> int:
    try:
        topics = load_topics(topics_dir)
    except TopicError as exc:
        print(f"newsmon: invalid topic file: {exc}", file=sys.stderr)
        return 2
    if file == "-":
        bad = classify_stream(topics, sys.stdin, sys.stdout, sys.stderr, explain=explain)
    else:
        try:
            with open(file, encoding="utf-8") as stream:
                bad = classify_stream(topics, stream, sys.stdout, sys.stderr, explain=explain)
        except OSError as exc:
            print(f"newsmon: cannot read {file}: {exc}", file=sys.stderr)
            return 2
    return 1 if bad else 0


def run_check(directory: Path | None, *, include_defaults: bool = True) -> int:
    topics, errors = check_topics(directory, include_defaults=include_defaults)
    for t in topics:
        print(f"ok  {t.name} v{t.version} ({len(t.patterns)} patterns, threshold {t.threshold:g}) {t.source}")
    for e in errors:
        print(f"{e.file}:{e.line}: {e.problem}", file=sys.stderr)
    if not topics and not errors:
        print("no topic files found", file=sys.stderr)
        return 1
    return 1 if errors else 0
