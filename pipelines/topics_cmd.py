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
import os
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
    classify.add_argument("--explain", action="store_true",
                          help="human-readable account instead of JSONL: what carried each decision")
    classify.add_argument("--explain-all", action="store_true",
                          help="like --explain, plus every clause and every match (also those worth 0)")
    classify.set_defaults(func=lambda args: run_classify(args.file, topics_dir=_topics_dir(args),
                                                         explain=args.explain or args.explain_all,
                                                         explain_all=args.explain_all))

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


def _records(stream: IO[str] | IO[bytes], errors: IO[str]) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, object) per non-blank line; a bad line is reported on ``errors`` as
    ``line N: problem`` and yielded as ``None`` so the caller can count it and go on."""
    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                print(f"line {number}: not UTF-8 text (byte {exc.start + 1})", file=errors)
                yield number, None
                continue
        else:
            line = str(raw)
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"line {number}: not JSON ({exc.msg} at column {exc.colno})", file=errors)
            yield number, None
            continue
        except RecursionError:
            print(f"line {number}: JSON nested too deeply", file=errors)
            yield number, None
            continue
        if not isinstance(obj, dict):
            print(f"line {number}: not a JSON object (got {type(obj).__name__})", file=errors)
            yield number, None
            continue
        wrong = [k for k in ("title", "text") if obj.get(k) is not None and not isinstance(obj[k], str)]
        if wrong:
            print(f"line {number}: {' and '.join(wrong)} must be a string", file=errors)
            yield number, None
            continue
        yield number, obj


def classify_stream(
    topics: tuple[Topic, ...], stream: IO[str] | IO[bytes], out: IO[str], errors: IO[str], *, explain: bool = False,
    explain_all: bool = False,
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
            out.write(f"== {ident}: {title[:100]}\n{explain_text(topics, title=title, text=text, full=explain_all)}\n\n")
            continue
        evidence = evaluate(topics, title=title, text=text)
        record = {"id": ident, "topics": [e.topic for e in evidence], "evidence": [e.to_dict() for e in evidence]}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return bad


def run_classify(file: str, *, topics_dir: Path | None, explain: bool, explain_all: bool = False) -> int:
    try:
        topics = load_topics(topics_dir)
    except TopicError as exc:
        print(f"newsmon: invalid topic file: {exc}", file=sys.stderr)
        return 2
    try:
        if file == "-":
            source = getattr(sys.stdin, "buffer", sys.stdin)
            bad = classify_stream(topics, source, sys.stdout, sys.stderr, explain=explain, explain_all=explain_all)
        else:
            try:
                stream = open(file, "rb")  # noqa: SIM115 - closed below; lines are decoded one by one
            except OSError as exc:
                print(f"newsmon: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            with stream:
                bad = classify_stream(topics, stream, sys.stdout, sys.stderr, explain=explain,
                                      explain_all=explain_all)
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"newsmon: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if bad:
        print(f"newsmon: {bad} input line(s) skipped (see above)", file=sys.stderr)
    return 1 if bad else 0


def run_check(directory: Path | None, *, include_defaults: bool = True) -> int:
    topics, errors = check_topics(directory, include_defaults=include_defaults)
    for t in topics:
        replaced = f" (replaces the shipped {t.replaced})" if t.replaced else ""
        print(f"ok  {t.name} v{t.version} ({len(t.patterns)} patterns, threshold {t.threshold:g}) {t.source}{replaced}")
    for e in errors:
        print(f"{e.file}:{e.line}: {e.problem}", file=sys.stderr)
    if not topics and not errors:
        print("no topic files found", file=sys.stderr)
        return 1
    return 1 if errors else 0
