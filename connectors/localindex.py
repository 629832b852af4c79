"""The embedded default sink: a durable full-text index in one SQLite file (FTS5).

Used when no Elasticsearch is configured (``newsmon run`` on a laptop) and searched with
``newsmon search``. It implements :class:`connectors.sink.SearchableSink`.

- Durable: SQLite in WAL mode; each ``write`` is one transaction.
- Idempotent on ``Article.id``: a re-write replaces the document (and its FTS row).
- One writer, many readers: WAL lets ``newsmon search`` read while ``newsmon run`` writes.
- Search: FTS5 with the ``unicode61`` tokenizer and ``remove_diacritics 2`` (case and
  accent folding), BM25 with the title weighted 5x over the body, phrase queries with
  double quotes, prefix queries with ``*`` (useful for Indonesian affixes: ``kunjung*``),
  ``-word`` to exclude, ``OR`` between alternatives; equal scores are ordered newest first. Duplicates
  (``duplicate_of`` set) are stored but hidden from results unless asked for: their
  original lists them in ``also_published_at``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from connectors.sink import SearchHit, SinkUnavailable, WriteResult
from connectors.sqlite import StoreError, Transaction, connect
from transforms.records import Article, Syndication, dt_to_str

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,
    published TEXT,
    source TEXT,
    duplicate_of TEXT
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published);
CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
    title, text, tokenize = 'unicode61 remove_diacritics 2'
);
"""

TITLE_WEIGHT = 5.0
_TOKEN = re.compile(r'(-?)"([^"]+)"|(-?)(\S+)')
_WORD = re.compile(r"\w+\*?", re.UNICODE)


INDEX_FILE = "index.sqlite"


class LocalIndexUnavailable(SinkUnavailable, StoreError):
    """The index file cannot be opened (a sink outage to the driver, a store error to the CLI)."""


class QueryError(ValueError):
    """The search query has nothing to search for."""


def fts_query(query: str) -> str:
    """Translate a user query into a safe FTS5 expression.

    Words become quoted terms (so punctuation cannot inject FTS syntax), ``"a b"`` stays a
    phrase and so does one token that splits into several words (``Rusia-Korut``), ``word*`` a
    prefix query and ``-word`` (or ``NOT word``) an exclusion. All positive parts must match;
    an upper-case ``OR`` between parts makes either side enough (``jokowi OR banjir``,
    ``putin korut OR kim pyongyang``: AND binds tighter). A bare ``AND`` is the default and is
    accepted. Exclusions apply to the whole query.
    """
    groups: list[list[str]] = [[]]
    negative: list[str] = []
    negate_next = False
    for m in _TOKEN.finditer(query):
        if m.group(4) in ("OR", "AND", "NOT") and not m.group(3):
            if negate_next:
                raise QueryError(f"cannot search for {query!r}: NOT must be followed by a word")
            if m.group(4) == "OR":
                if not groups[-1]:
                    raise QueryError(f"cannot search for {query!r}: OR needs words on both sides")
                groups.append([])
            negate_next = m.group(4) == "NOT"
            continue
        neg = bool(m.group(1) or m.group(3)) or negate_next
        negate_next = False
        raw = m.group(2) if m.group(2) is not None else m.group(4)
        words = _WORD.findall(raw)
        if not words:
            continue
        if m.group(2) is not None or len(words) > 1:  # "a phrase", or one token such as Rusia-Korut
            part = '"' + " ".join(w.rstrip("*") for w in words) + '"'
        else:
            word = words[0]
            part = f'"{word[:-1]}"*' if word.endswith("*") else f'"{word}"'
        (negative if neg else groups[-1]).append(part)
    if negate_next:
        raise QueryError(f"cannot search for {query!r}: NOT must be followed by a word")
    if len(groups) > 1 and not groups[-1]:
        raise QueryError(f"cannot search for {query!r}: OR needs words on both sides")
    if not groups[0]:
        raise QueryError(f"nothing to search for in {query!r}")
    if len(groups) == 1:
        expr = " AND ".join(groups[0])
    else:
        expr = " OR ".join("(" + " AND ".join(g) + ")" for g in groups)
    for n in negative:
        expr = f"({expr}) NOT {n}"
    return expr


class LocalIndex:
    """A searchable, idempotent article store in ``<store>/index.sqlite``."""

    name = "localindex"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (with ``create``, or create) the index; :class:`LocalIndexUnavailable` if it cannot be."""
        self.path = Path(path)
        try:
            self._conn = connect(self.path, create=create)
        except StoreError as exc:
            raise LocalIndexUnavailable(str(exc)) from exc
        try:
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise LocalIndexUnavailable(f"cannot open local index {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    @classmethod
    def in_store(cls, store_dir: Path, *, create: bool = True) -> LocalIndex:
        return cls(Path(store_dir) / INDEX_FILE, create=create)

    # -- writing ------------------------------------------------------------------------------
    def write(self, articles: Sequence[Article]) -> WriteResult:
        acked: list[str] = []
        try:
            with Transaction(self._conn, self._lock):
                for article in articles:
                    self._upsert(article)
                    acked.append(article.id)
                for article in articles:
                    if article.duplicate_of:
                        self._add_syndication(article)
                    elif article.also_published_at:
                        self._adopt_copies(article)
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"local index write failed: {exc}") from exc
        return WriteResult(acknowledged=tuple(acked))

    def _upsert(self, article: Article) -> None:
        existing = self._get_row(article.id)
        if existing is not None:
            # keep syndication accumulated by later duplicates
            old = Article.from_dict(json.loads(existing[1]))
            merged = _merge_syndication(old.also_published_at, article.also_published_at)
            article = replace(article, also_published_at=merged)
            self._conn.execute("DELETE FROM articles_fts WHERE rowid = ?", (existing[0],))
            self._conn.execute(
                "UPDATE articles SET doc = ?, published = ?, source = ?, duplicate_of = ? WHERE rid = ?",
                (json.dumps(article.to_dict()), _sort_time(article), article.source, article.duplicate_of, existing[0]),
            )
            rid = existing[0]
        else:
            cur = self._conn.execute(
                "INSERT INTO articles(id, doc, published, source, duplicate_of) VALUES (?, ?, ?, ?, ?)",
                (article.id, json.dumps(article.to_dict()), _sort_time(article), article.source, article.duplicate_of),
            )
            rid = int(cur.lastrowid or 0)
        self._conn.execute(
            "INSERT INTO articles_fts(rowid, title, text) VALUES (?, ?, ?)", (rid, article.title, article.text)
        )

    def _add_syndication(self, dup: Article) -> None:
        row = self._get_row(dup.duplicate_of or "")
        if row is None:
            return  # the original is outside this index (e.g. pruned); nothing to annotate
        original = Article.from_dict(json.loads(row[1]))
        merged = _merge_syndication(original.also_published_at, (Syndication.of(dup),))
        if merged != original.also_published_at:
            updated = replace(original, also_published_at=merged)
            self._conn.execute("UPDATE articles SET doc = ? WHERE rid = ?", (json.dumps(updated.to_dict()), row[0]))

    def _adopt_copies(self, original: Article) -> None:
        """Point every stored article that ``original`` lists as a copy at it (dedup re-pointed an
        earlier original to this older article: the earlier one must now be hidden as a copy)."""
        for syn in original.also_published_at:
            row = self._get_row(syn.id)
            if row is None or syn.id == original.id:
                continue
            doc = Article.from_dict(json.loads(row[1]))
            if doc.duplicate_of == original.id:
                continue
            if doc.duplicate_of is None:  # the earlier original: now a copy, its syndication moved
                doc = replace(doc, duplicate_kind=syn.kind, similarity=syn.similarity, also_published_at=())
            doc = replace(doc, duplicate_of=original.id)
            self._conn.execute(
                "UPDATE articles SET doc = ?, duplicate_of = ? WHERE rid = ?",
                (json.dumps(doc.to_dict()), original.id, row[0]),
            )

    def _get_row(self, article_id: str) -> tuple[int, str] | None:
        row = self._conn.execute("SELECT rid, doc FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    # -- reading ------------------------------------------------------------------------------
    def get(self, article_id: str) -> Article | None:
        row = self._get_row(article_id)
        return None if row is None else Article.from_dict(json.loads(row[1]))

    def count(self, *, include_duplicates: bool = True) -> int:
        sql = "SELECT COUNT(*) FROM articles" + ("" if include_duplicates else " WHERE duplicate_of IS NULL")
        return int(self._conn.execute(sql).fetchone()[0])

    def ids(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT id FROM articles ORDER BY rid")]

    def search(self, query: str, *, limit: int = 10, include_duplicates: bool = False) -> list[SearchHit]:
        expr = fts_query(query)
        dup_filter = "" if include_duplicates else "AND a.duplicate_of IS NULL"
        sql = f"""
            SELECT a.doc, bm25(articles_fts, {TITLE_WEIGHT}, 1.0) AS score,
                   snippet(articles_fts, 1, '[', ']', '…', 16) AS snip
            FROM articles_fts JOIN articles a ON a.rid = articles_fts.rowid
            WHERE articles_fts MATCH ? {dup_filter}
            ORDER BY round(score, 2), a.published DESC
            LIMIT ?
        """
        try:
            rows = self._conn.execute(sql, (expr, int(limit))).fetchall()
        except sqlite3.OperationalError as exc:
            raise QueryError(f"cannot search for {query!r}: {exc}") from exc
        hits = []
        for doc, score, snip in rows:
            d = json.loads(doc)
            hits.append(
                SearchHit(
                    id=d["id"],
                    url=d["url"],
                    title=d.get("title", ""),
                    source=d.get("source", ""),
                    published=d.get("published"),
                    snippet=" ".join(snip.split()),
                    score=round(-float(score), 3),
                    topics=tuple(d.get("topics", ())),
                    duplicate_of=d.get("duplicate_of"),
                    duplicate_kind=d.get("duplicate_kind"),
                    story_id=d.get("story_id"),
                    also_published_at=tuple(d.get("also_published_at") or ()),
                )
            )
        return hits

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _sort_time(article: Article) -> str | None:
    return dt_to_str(article.published or article.first_seen)


def _merge_syndication(
    current: Iterable[Syndication], extra: Iterable[Syndication]
) -> tuple[Syndication, ...]:
    by_id = {s.id: s for s in current}
    for s in extra:
        by_id.setdefault(s.id, s)
    return tuple(sorted(by_id.values(), key=lambda s: (s.first_seen, s.id)))
