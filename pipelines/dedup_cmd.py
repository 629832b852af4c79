"""``newsmon dedup [FILE]``: run the pipeline's dedup logic over JSONL articles.

Input: one JSON object per line with ``id`` (optional: sha256 of the canonical URL when
absent), ``url``, ``title``, ``text``, ``published`` (ISO 8601), ``source`` and optionally
``first_seen``; read from FILE (``.gz`` accepted) or stdin, processed in file order.
Output (stdout): one JSON object per input line with ``id``, ``duplicate_of``,
``duplicate_kind`` (``url``/``exact``/``near``/null), ``similarity`` (containment that
confirmed a copy), ``story_id`` and ``story_similarity`` (the score that joined a story).

It runs exactly what the pipeline runs: ``accept_url`` on the canonical URL (the step the
driver takes before fetching), then :func:`transforms.dedup.decide` against a
:class:`SqliteDedupStore` -- in memory by default, or on disk with ``--store PATH`` (so a
second run over the same file replays the same decisions). An article's time is its
``first_seen``, else ``published``, else now; windows are measured on that time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TextIO

from connectors.dedupstore import SqliteDedupStore
from transforms.dedupstate import DedupStore, DedupStoreError
from transforms.records import Article, article_id, str_to_dt, utcnow
from transforms.urls import UrlError, canonical_url


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dedup", help="mark duplicates and stories in JSONL articles")
    p.add_argument("file", nargs="?", help="JSONL (or .jsonl.gz) file; stdin when absent or '-'")
    p.add_argument("--window-days", type=float, default=7.0, help="dedup window (default 7)")
    p.add_argument("--story-window-days", type=float, default=3.0, help="story window (default 3)")
    p.add_argument("--store", default=":memory:", help="SQLite store path (default: in memory)")
    p.add_argument("--summary", action="store_true", help="print counts to stderr at the end")
    p.set_defaults(func=run)


def article_from_json(d: Mapping[str, Any]) -> Article:
    """Build the Article the pipeline would have, from a loose JSONL object."""
    if not isinstance(d, Mapping):
        raise ValueError(f"expected a JSON object, got {type(d).__name__}")
    url = str(d.get("url") or "")
    try:
        canon = canonical_url(url) if url else ""
    except UrlError:
        canon = url
    published = str_to_dt(d.get("published")) if d.get("published") else None
    first_seen = str_to_dt(d.get("first_seen")) if d.get("first_seen") else None
    ident = str(d.get("id") or (article_id(canon) if canon else ""))
    if not ident:
        raise ValueError("article without id and url")
    return Article(
        id=ident,
        url=url,
        canonical_url=canon,
        source=str(d.get("source") or ""),
        title=str(d.get("title") or ""),
        text=str(d.get("text") or ""),
        published=published,
        first_seen=first_seen or published or utcnow(),
    )


def dedup_one(article: Article, store: DedupStore, *, window_days: float, story_window_days: float) -> dict[str, Any]:
    """URL check then :func:`decide`; the output row of ``newsmon dedup``."""
    from transforms.dedup import DedupDecision, decide_status

    if store.lookup(article.id) is None and article.canonical_url:
        key = article_id(article.canonical_url)
        if not store.accept_url(key, article.canonical_url, now=article.first_seen, owner=article.id):
            owner = store.url_owner(key) or key
            orig = store.lookup(owner)
            if orig is not None and orig.duplicate_of:  # the URL's first article was itself a copy
                owner = orig.duplicate_of
                orig = store.lookup(owner) or orig
            return {
                "id": article.id,
                "duplicate_of": owner,
                "duplicate_kind": "url",
                "similarity": 1.0,
                "story_id": orig.story_id if orig else owner,
                "story_similarity": None,
                "rule": "url: same canonical URL",
            }
    _, decision, _ = decide_status(
        article, store, now=article.first_seen, window_days=window_days, story_window_days=story_window_days
    )
    assert isinstance(decision, DedupDecision)
    return {
        "id": article.id,
        "duplicate_of": decision.duplicate_of,
        "duplicate_kind": decision.kind,
        "similarity": decision.similarity,
        "story_id": decision.story_id,
        "story_similarity": decision.story_similarity,
        "rule": decision.rule,
    }


def _open(path: str | None) -> IO[str]:
    if not path or path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return Path(path).open("r", encoding="utf-8")


def iter_rows(
    lines: Iterator[str], store: DedupStore, *, window_days: float, story_window_days: float
) -> Iterator[dict[str, Any]]:
    """Decide every article of ``lines``; rows come back in input order (errors as ``{line, error}``).

    The whole input is read first and decided earliest-published first (then first seen, then
    id; :func:`transforms.dedup.order_key`), so the original of a group is the oldest article
    whatever the line order -- a copy listed before its original does not become the original.
    """
    from transforms.dedup import order_key

    parsed: list[tuple[int, Article]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed.append((n, article_from_json(json.loads(line))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            yield {"line": n, "error": str(exc)}
    decided: dict[int, dict[str, Any]] = {}
    last_prune = None
    for n, art in sorted(parsed, key=lambda na: order_key(na[1])):
        at = order_key(art)[0]
        if last_prune is None or at - last_prune > timedelta(days=1):
            store.prune(older_than=at - timedelta(days=max(window_days, story_window_days)))
            last_prune = at
        decided[n] = dedup_one(art, store, window_days=window_days, story_window_days=story_window_days)
    for n, _ in parsed:
        yield decided[n]


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    # an unusable --store is the CLI's one-line user error (DedupStoreError), like every store
    store = SqliteDedupStore(args.store, window_days=max(args.window_days, args.story_window_days))
    counts: dict[str, int] = {}
    stories: set[str] = set()
    errors = 0
    try:
        with _open(args.file) as fh:
            for row in iter_rows(
                iter(fh), store, window_days=args.window_days, story_window_days=args.story_window_days
            ):
                if "error" in row:
                    errors += 1
                    print(f"newsmon dedup: line {row['line']}: {row['error']}", file=sys.stderr)
                    continue
                kind = row["duplicate_kind"] or "original"
                counts[kind] = counts.get(kind, 0) + 1
                stories.add(row["story_id"])
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        print(f"newsmon dedup: cannot read {args.file or 'stdin'}: {exc}", file=sys.stderr)
        return 2
    except DedupStoreError as exc:
        print(f"newsmon dedup: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.summary:
        summary = {"articles": sum(counts.values()), **counts, "stories": len(stories), "errors": errors}
        print(json.dumps(summary), file=sys.stderr)
    if errors:
        print(f"newsmon dedup: {errors} input line(s) skipped (see above)", file=sys.stderr)
    return 1 if errors else 0
