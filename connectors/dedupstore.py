"""The dedup store: URL ids, text hashes, LSH bands, shingle sets and story terms of recent articles.

Why a store and not Beam state: the local driver runs one bounded Beam pipeline per cycle,
distributed runners run many workers, and both must recognise an article seen yesterday,
after a ``kill -9`` or on another worker. So the state lives outside Beam, bounded by a
window of ``first_seen`` (default 7 days; :meth:`prune`) rather than by uptime.

:class:`SqliteDedupStore` (local driver, ``newsmon dedup``)
    One SQLite file in WAL mode. Every ``record``/``accept_url`` is its own committed
    transaction, unless the caller groups a cycle's decisions in :meth:`batch` (one commit);
    with ``synchronous=NORMAL`` a committed transaction survives the process being killed (not
    a power cut). Tables::

        records(rid, id UNIQUE, url, source, first_seen, published, text_hash, shingles BLOB,
                story_terms BLOB, story_id, duplicate_of, duplicate_kind, similarity, also JSON)
        lsh(band, rid)        -- one row per LSH band of an original (WITHOUT ROWID, ~20 B/row)
        story(term, rid)      -- one row per salient story term of an original
        df(term, n)           -- document frequency of story terms in the window (rarity weights)
        urls(id, url, owner, seen)  -- accept_url: canonical-URL ids seen in the window

    Only originals are indexed in ``lsh``/``story``/``text_hash`` lookups: a copy's bands
    would only lead back to its original, so chains collapse to the root and the index
    stays small. Copies keep a ``records`` row so :meth:`lookup` makes decisions idempotent.

    Cost stays flat with the window: every lookup is an index probe (the text-hash probe
    names the partial index's condition so SQLite can use it), story lookups return light
    records without shingle sets, and the WAL is checkpointed every 16 MB. Measured with
    ``bench/dedup_bench.py`` (100k articles in the window): see that script's docstring.

Shared store for distributed runners (implemented in ``connectors/elasticsearch/dedupstore.py``; design notes)
    An Elasticsearch index ``newsmon-dedup`` with one document per article: ``_id`` = article
    id, ``bands`` and ``story_terms`` as ``keyword`` (or ``long``) arrays, ``text_hash`` keyword,
    ``first_seen`` date, ``shingles`` as a ``binary`` field (not indexed), the decision fields.
    ``candidates`` = one ``bool.should`` of a ``term`` on ``text_hash`` and a ``terms`` query on
    ``bands`` filtered by ``first_seen >= now-7d`` and ``duplicate_of`` missing, sorted by score
    (number of matching bands); ``story_candidates`` = ``terms`` on ``story_terms`` with
    ``minimum_should_match``; ``df`` comes from a ``terms`` aggregation or a small counter index.
    ``accept_url`` = ``index`` with ``op_type=create`` into ``newsmon-urls`` (409 -> duplicate),
    ``record`` = ``index`` with the article id as ``_id`` (idempotent), ``prune`` =
    ``delete_by_query`` on ``first_seen`` (or daily indices dropped by ILM). Decisions stay
    sequential per cycle (one key), so no cross-worker races within a cycle; across cycles the
    ``create`` op makes URL acceptance atomic.

Errors: :class:`DedupStoreError` wraps ``sqlite3`` errors; ``transient`` is true for a locked
or busy database (retry the cycle), false for corruption or schema problems.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.sqlite import StoreError, Transaction, connect
from transforms.dedupstate import DedupRecord, DedupStoreError
from transforms.records import Syndication, to_utc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    source TEXT NOT NULL,
    first_seen REAL NOT NULL,
    published REAL,
    text_hash TEXT NOT NULL,
    bands BLOB NOT NULL,
    shingles BLOB NOT NULL,
    story_terms BLOB NOT NULL,
    story_id TEXT NOT NULL,
    duplicate_of TEXT,
    duplicate_kind TEXT,
    similarity REAL,
    also TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS records_hash ON records(text_hash) WHERE text_hash != '' AND duplicate_of IS NULL;
CREATE INDEX IF NOT EXISTS records_seen ON records(first_seen);
CREATE TABLE IF NOT EXISTS lsh (band INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (band, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS story (term INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (term, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS df (term INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, n) VALUES ('originals', 0);
CREATE TABLE IF NOT EXISTS urls (id TEXT PRIMARY KEY, url TEXT NOT NULL, owner TEXT NOT NULL, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS urls_seen ON urls(seen);
"""

# 4 KiB pages: each commit rewrites ~120 randomly placed index pages, so larger pages cost
# more per write than they save in fill (measured: 8 KiB +20 % ms/article, 16 KiB +45 %).
PAGE_SIZE = 4096
# Checkpoint the WAL every 16 MB instead of SQLite's 4 MB: pages rewritten by many commits
# are copied back once, and the fsync of a checkpoint is paid 4x less often (mean -20 %,
# p95 11 ms -> 2.5 ms at 10k articles). The WAL is truncated back to this size afterwards.
WAL_CHECKPOINT_PAGES = 4000

_COLUMNS = (
    "id, url, source, first_seen, published, text_hash, bands, shingles, story_terms, story_id,"
    " duplicate_of, duplicate_kind, similarity, also"
)


def _ts(value: datetime) -> float:
    return to_utc(value).timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _pack(values: Sequence[int], fmt: str) -> bytes:
    return struct.pack(f"<{len(values)}{fmt}", *values)


def _unpack(blob: bytes, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    return struct.unpack(f"<{len(blob) // size}{fmt}", blob)


_STORY_COLUMNS = "id, url, source, first_seen, published, story_terms, story_id"


def _row_to_story_record(row: tuple) -> DedupRecord:
    return DedupRecord(
        id=row[0],
        url=row[1],
        source=row[2],
        first_seen=_dt(row[3]) or datetime.fromtimestamp(0, tz=UTC),
        published=_dt(row[4]),
        text_hash="",
        bands=(),
        shingles=b"",
        story_terms=_unpack(row[5], "I"),
        story_id=row[6],
    )


def _row_to_record(row: tuple) -> DedupRecord:
    return DedupRecord(
        id=row[0],
        url=row[1],
        source=row[2],
        first_seen=_dt(row[3]) or datetime.fromtimestamp(0, tz=UTC),
        published=_dt(row[4]),
        text_hash=row[5],
        bands=_unpack(row[6], "q"),
        shingles=bytes(row[7]),
        story_terms=_unpack(row[8], "I"),
        story_id=row[9],
        duplicate_of=row[10],
        duplicate_kind=row[11],
        similarity=row[12],
        also_published_at=tuple(Syndication.from_dict(s) for s in json.loads(row[13])),
    )


class SqliteDedupStore:
    """The local, on-disk dedup store (see the module docstring). ``path`` may be ``":memory:"``."""

    def __init__(self, path: Path | str, *, window_days: float = 7.0) -> None:
        if window_days <= 0:
            raise ValueError("window_days must be positive")
        self.path = str(path)
        self.window = timedelta(days=window_days)
        self._lock = threading.RLock()
        try:
            self._db = connect(self.path, pragmas=(
                f"page_size={PAGE_SIZE}",  # only takes effect on a new file
                f"wal_autocheckpoint={WAL_CHECKPOINT_PAGES}",
                f"journal_size_limit={WAL_CHECKPOINT_PAGES * PAGE_SIZE}",
            ))
            self._db.executescript(_SCHEMA)
        except (StoreError, OSError, sqlite3.Error) as exc:
            raise DedupStoreError(f"cannot open dedup store {self.path}: {exc}", transient=False) from exc

    # -- plumbing --------------------------------------------------------------------
    def _tx(self) -> Transaction:
        return Transaction(self._db, self._lock, wrap=_wrap)

    def _read(self) -> Transaction:
        """Reads: the store lock, no write transaction (each statement reads a committed state)."""
        return Transaction(self._db, self._lock, wrap=_wrap, write=False)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write in the block in one transaction: one commit for a cycle's decisions
        instead of one per article (~1 ms each). Reads in the block see its writes; each write
        stays all-or-nothing on its own (a savepoint); an exception rolls back the whole block.
        Other threads' calls on this store wait for the block to end."""
        with self._tx():
            yield

    # -- URLs ------------------------------------------------------------------------
    def accept_url(self, article_id: str, url: str, *, now: datetime, owner: str | None = None) -> bool:
        """Atomically insert the URL id; False if it was already seen within the window."""
        ts = _ts(now)
        cutoff = ts - self.window.total_seconds()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO urls(id, url, owner, seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET url=excluded.url, owner=excluded.owner, seen=excluded.seen "
                "WHERE urls.seen < ?",
                (article_id, url, owner or article_id, ts, cutoff),
            )
            return cur.rowcount == 1

    def url_owner(self, article_id: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT owner FROM urls WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else str(row[0])

    # -- records ---------------------------------------------------------------------
    def lookup(self, article_id: str) -> DedupRecord | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM records WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else _row_to_record(row)

    def candidates(
        self,
        *,
        text_hash: str,
        bands: Sequence[int],
        exclude_id: str,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[DedupRecord]:
        """Originals with the same text hash first, then those sharing LSH bands (most shared first)."""
        cutoff = _ts(since) if since is not None else float("-inf")
        out: list[DedupRecord] = []
        with self._read() as db:
            if text_hash:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE text_hash = ? AND text_hash != '' AND duplicate_of IS NULL "
                    "AND id != ? AND first_seen >= ? ORDER BY first_seen LIMIT 5",
                    (text_hash, exclude_id, cutoff),
                ).fetchall()
                out.extend(_row_to_record(r) for r in rows)
            if bands:
                marks = ",".join("?" * len(bands))
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM records JOIN ("
                    f"  SELECT rid, COUNT(*) AS shared FROM lsh WHERE band IN ({marks}) GROUP BY rid"
                    ") AS hits USING (rid) WHERE id != ? AND first_seen >= ? "
                    "ORDER BY shared DESC, first_seen LIMIT ?",
                    (*bands, exclude_id, cutoff, limit),
                ).fetchall()
                seen = {r.id for r in out}
                out.extend(rec for rec in map(_row_to_record, rows) if rec.id not in seen)
        return out

    def story_candidates(
        self, *, terms: Sequence[int], exclude_id: str, since: datetime, min_shared: int, limit: int = 30
    ) -> list[DedupRecord]:
        """Originals first seen since ``since`` sharing at least ``min_shared`` story terms.

        Light records: only what story scoring reads (id, url, source, times, ``story_terms``,
        ``story_id``); ``text_hash``, ``bands`` and ``shingles`` are left empty, so a story
        lookup never loads shingle sets (the bulk of a record).
        """
        if not terms:
            return []
        marks = ",".join("?" * len(terms))
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_STORY_COLUMNS} FROM records JOIN ("
                f"  SELECT rid, COUNT(*) AS shared FROM story WHERE term IN ({marks}) GROUP BY rid"
                "  HAVING COUNT(*) >= ?"
                ") AS hits USING (rid) WHERE id != ? AND first_seen >= ? "
                "ORDER BY shared DESC, first_seen LIMIT ?",
                (*terms, min_shared, exclude_id, _ts(since), limit),
            ).fetchall()
        return [_row_to_story_record(r) for r in rows]

    def term_frequencies(self, terms: Sequence[int]) -> tuple[dict[int, int], int]:
        """(document frequency per story term, number of originals) within the window."""
        with self._read() as db:
            total = int(db.execute("SELECT n FROM meta WHERE key = 'originals'").fetchone()[0])
            if not terms:
                return {}, total
            marks = ",".join("?" * len(terms))
            rows = db.execute(f"SELECT term, n FROM df WHERE term IN ({marks})", tuple(terms)).fetchall()
        return {int(t): int(n) for t, n in rows}, total

    def record(self, rec: DedupRecord) -> None:
        """Store a decision; idempotent on ``rec.id`` (a second call for the same id is ignored)."""
        also = json.dumps([s.to_dict() for s in rec.also_published_at])
        with self._tx() as db:
            cur = db.execute(
                f"INSERT OR IGNORE INTO records({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.id,
                    rec.url,
                    rec.source,
                    _ts(rec.first_seen),
                    None if rec.published is None else _ts(rec.published),
                    rec.text_hash,
                    _pack(rec.bands, "q"),
                    rec.shingles,
                    _pack(rec.story_terms, "I"),
                    rec.story_id,
                    rec.duplicate_of,
                    rec.duplicate_kind,
                    rec.similarity,
                    also,
                ),
            )
            if cur.rowcount != 1 or rec.duplicate_of is not None:
                return
            rid = cur.lastrowid
            db.execute("UPDATE meta SET n = n + 1 WHERE key = 'originals'")
            db.executemany("INSERT OR IGNORE INTO lsh(band, rid) VALUES (?, ?)", [(b, rid) for b in set(rec.bands)])
            terms = sorted(set(rec.story_terms))
            db.executemany("INSERT OR IGNORE INTO story(term, rid) VALUES (?, ?)", [(t, rid) for t in terms])
            db.executemany(
                "INSERT INTO df(term, n) VALUES (?, 1) ON CONFLICT(term) DO UPDATE SET n = n + 1",
                [(t,) for t in terms],
            )

    def add_syndication(self, original_id: str, syndication: Syndication) -> None:
        """Append a copy to the original's ``also_published_at`` (idempotent on the copy's id)."""
        with self._tx() as db:
            row = db.execute("SELECT also FROM records WHERE id = ?", (original_id,)).fetchone()
            if row is None:
                return
            also = json.loads(row[0])
            if any(s.get("id") == syndication.id for s in also):
                return
            also.append(syndication.to_dict())
            db.execute("UPDATE records SET also = ? WHERE id = ?", (json.dumps(also), original_id))

    def repoint(self, old_id: str, new_id: str, *, kind: str, similarity: float) -> list[str]:
        """See :meth:`DedupStore.repoint`: one transaction."""
        with self._tx() as db:
            row = db.execute(
                "SELECT rid, story_terms, duplicate_of FROM records WHERE id = ?", (old_id,)
            ).fetchone()
            if row is None or row[2] is not None or old_id == new_id:
                return []
            rid, blob, _ = row
            copies = [
                str(r[0]) for r in db.execute("SELECT id FROM records WHERE duplicate_of = ?", (old_id,)).fetchall()
            ]
            db.execute(
                "UPDATE records SET duplicate_of = ?, duplicate_kind = ?, similarity = ?, also = '[]' WHERE rid = ?",
                (new_id, kind, similarity, rid),
            )
            db.execute("UPDATE records SET duplicate_of = ? WHERE duplicate_of = ?", (new_id, old_id))
            db.execute("UPDATE urls SET owner = ? WHERE owner = ?", (new_id, old_id))
            # a copy is never a candidate: take the old original out of the indexes
            db.execute("DELETE FROM lsh WHERE rid = ?", (rid,))
            db.execute("DELETE FROM story WHERE rid = ?", (rid,))
            terms = sorted(set(_unpack(blob, "I")))
            db.executemany("UPDATE df SET n = n - 1 WHERE term = ?", [(t,) for t in terms])
            db.execute("DELETE FROM df WHERE n <= 0")
            db.execute("UPDATE meta SET n = MAX(0, n - 1) WHERE key = 'originals'")
        return [old_id, *copies]

    def prune(self, *, older_than: datetime) -> int:
        """Forget articles and URLs first seen before ``older_than``; returns records removed."""
        cutoff = _ts(older_than)
        with self._tx() as db:
            rows = db.execute(
                "SELECT rid, story_terms, duplicate_of FROM records WHERE first_seen < ?", (cutoff,)
            ).fetchall()
            counts: dict[int, int] = {}
            for _, blob, dup in rows:
                if dup is None:
                    for t in set(_unpack(blob, "I")):
                        counts[t] = counts.get(t, 0) + 1
            db.executemany("UPDATE df SET n = n - ? WHERE term = ?", [(n, t) for t, n in counts.items()])
            db.execute("DELETE FROM df WHERE n <= 0")
            originals = sum(1 for r in rows if r[2] is None)
            db.execute("UPDATE meta SET n = MAX(0, n - ?) WHERE key = 'originals'", (originals,))
            db.execute("DELETE FROM lsh WHERE rid IN (SELECT rid FROM records WHERE first_seen < ?)", (cutoff,))
            db.execute("DELETE FROM story WHERE rid IN (SELECT rid FROM records WHERE first_seen < ?)", (cutoff,))
            db.execute("DELETE FROM records WHERE first_seen < ?", (cutoff,))
            db.execute("DELETE FROM urls WHERE seen < ?", (cutoff,))
            return len(rows)

    def stats(self) -> dict[str, int]:
        """Row counts and database size in bytes (benchmarks, ``newsmon dedup -v``)."""
        with self._read() as db:
            out = {
                t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("records", "lsh", "story", "df", "urls")
            }
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            size = int(db.execute("PRAGMA page_size").fetchone()[0])
        out["bytes"] = pages * size
        return out


def _wrap(exc: sqlite3.Error) -> DedupStoreError:
    text = str(exc).lower()
    transient = isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    return DedupStoreError(f"dedup store: {exc}", transient=transient)


@dataclass(frozen=True)
class SqliteStoreFactory:
    """Picklable factory for Beam DoFns: ``DedupArticles(SqliteStoreFactory(path))``."""

    path: str
    window_days: float = 7.0

    def __call__(self) -> SqliteDedupStore:
        return SqliteDedupStore(self.path, window_days=self.window_days)


def iter_records(store: SqliteDedupStore) -> Iterator[DedupRecord]:
    """Every stored record (oldest first); for reports and tests."""
    with store._tx() as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM records ORDER BY first_seen, rid").fetchall()
    return iter([_row_to_record(r) for r in rows])
