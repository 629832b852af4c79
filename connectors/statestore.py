"""The driver's durable state on disk (SQLite, WAL): feed state, accepted entries, outbox.

Why it exists: an entry a feed poll has *accepted* must reach the sink exactly once even
if the process is killed (``kill -9``) at any moment, and a restart must neither re-fetch
nor re-write what is done. Every step is a transaction:

1. **poll** — ``commit_poll(feed_state, entries)`` stores the feed's new state (ETag, seen
   entry keys, interval) *and* the accepted entries in ``pending`` atomically. A crash
   before it re-polls the feed; after it, the entries are safe on disk.
2. **process** — the Beam cycle fetches, extracts, deduplicates and tags pending entries.
   ``to_outbox(articles)`` moves finished articles from ``pending`` to ``outbox`` in one
   transaction (dedup decisions are recorded in the dedup store, idempotently per id, before
   that). A crash before it re-processes the entry; dedup returns the recorded decision.
3. **sink** — the outbox is written to the sink; ``ack(ids)`` deletes what the sink
   acknowledged. A crash before the ack re-sends; the sink is idempotent on ``Article.id``,
   so the article is stored once.

Transient fetch failures stay in ``pending`` with a backoff (``defer``). The backlog gauge
is ``pending + outbox``. One process writes (``newsmon run``); readers (``newsmon status``)
may open the file concurrently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.sqlite import StoreError, Transaction, connect, os_reason, path_problem
from transforms.records import Article, FeedEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    feed_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY,
    canonical_url TEXT NOT NULL,
    entry TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    article TEXT NOT NULL,
    added_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS failed (
    id TEXT PRIMARY KEY,
    canonical_url TEXT NOT NULL,
    entry TEXT NOT NULL,
    failed_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS pending_due ON pending(next_attempt_at);
"""


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An accepted feed entry waiting to be fetched and processed."""

    id: str
    canonical_url: str
    entry: FeedEntry
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "canonical_url": self.canonical_url,
            "entry": self.entry.to_dict(),
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PendingItem:
        return cls(
            id=d["id"],
            canonical_url=d["canonical_url"],
            entry=FeedEntry.from_dict(d["entry"]),
            attempts=int(d.get("attempts", 0)),
        )


class StateStore:
    """Feed state, pending entries and the outbox in one SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, create=create)
        self._lock = threading.RLock()
        try:
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot use {self.path}: {path_problem(self.path.parent) or os_reason(exc)}") from exc

    # -- transactions -------------------------------------------------------------------
    def _tx(self) -> Transaction:
        return Transaction(self._conn, self._lock)

    # -- feeds (implements connectors.rss.FeedStateStore) ---------------------------------
    def load_feed_state(self, feed_id: str) -> Any:
        from connectors.rss import FeedState

        row = self._conn.execute("SELECT state FROM feeds WHERE feed_id = ?", (feed_id,)).fetchone()
        return None if row is None else FeedState.from_dict(json.loads(row[0]))

    def save_feed_state(self, state: Any) -> None:
        with self._tx() as c:
            self._put_feed(c, state)

    def all_feed_states(self) -> dict[str, Any]:
        from connectors.rss import FeedState

        rows = self._conn.execute("SELECT feed_id, state FROM feeds").fetchall()
        return {fid: FeedState.from_dict(json.loads(s)) for fid, s in rows}

    @staticmethod
    def _put_feed(c: sqlite3.Connection, state: Any) -> None:
        c.execute(
            "INSERT INTO feeds(feed_id, state, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(feed_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (state.feed_id, json.dumps(state.to_dict()), time.time()),
        )

    def commit_poll(self, state: Any, items: Sequence[PendingItem]) -> int:
        """Save a feed's new state and its accepted entries atomically; returns entries inserted."""
        now = time.time()
        with self._tx() as c:
            self._put_feed(c, state)
            return self._insert_pending(c, items, now)

    def add_pending(self, items: Sequence[PendingItem]) -> int:
        with self._tx() as c:
            return self._insert_pending(c, items, time.time())

    @staticmethod
    def _insert_pending(c: sqlite3.Connection, items: Sequence[PendingItem], now: float) -> int:
        inserted = 0
        for item in items:
            cur = c.execute(
                "INSERT OR IGNORE INTO pending(id, canonical_url, entry, accepted_at, attempts) "
                "SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE id = ?)",
                (item.id, item.canonical_url, json.dumps(item.entry.to_dict()), now, item.attempts, item.id),
            )
            inserted += cur.rowcount
        return inserted

    # -- pending -----------------------------------------------------------------------------
    def is_known(self, article_id: str) -> bool:
        """True if the id is pending, in the outbox or quarantined (accepted, not yet acknowledged)."""
        row = self._conn.execute(
            "SELECT 1 FROM pending WHERE id = ? UNION ALL SELECT 1 FROM outbox WHERE id = ? "
            "UNION ALL SELECT 1 FROM failed WHERE id = ? LIMIT 1",
            (article_id, article_id, article_id),
        ).fetchone()
        return row is not None

    def due_pending(self, *, now: float, limit: int = 500) -> list[PendingItem]:
        rows = self._conn.execute(
            "SELECT id, canonical_url, entry, attempts FROM pending WHERE next_attempt_at <= ? "
            "ORDER BY accepted_at, rowid LIMIT ?",
            (now, limit),
        ).fetchall()
        return [PendingItem(id=r[0], canonical_url=r[1], entry=FeedEntry.from_dict(json.loads(r[2])), attempts=r[3]) for r in rows]

    def defer(self, article_id: str, *, error: str, retry_at: float) -> None:
        """Record a transient failure; the entry is retried after ``retry_at``."""
        with self._tx() as c:
            c.execute(
                "UPDATE pending SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (retry_at, error[:500], article_id),
            )

    def quarantine(self, article_id: str, *, error: str) -> None:
        """Move an entry that keeps crashing the pipeline out of ``pending`` into ``failed``.

        It is kept (with the error) for ``newsmon status`` and can be re-queued with
        :meth:`requeue_failed`; it no longer blocks the entries behind it.
        """
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO failed(id, canonical_url, entry, failed_at, attempts, error) "
                "SELECT id, canonical_url, entry, ?, attempts + 1, ? FROM pending WHERE id = ?",
                (time.time(), error[:2000], article_id),
            )
            c.execute("DELETE FROM pending WHERE id = ?", (article_id,))

    def requeue_failed(self) -> int:
        with self._tx() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO pending(id, canonical_url, entry, accepted_at, attempts) "
                "SELECT id, canonical_url, entry, ?, 0 FROM failed",
                (time.time(),),
            )
            c.execute("DELETE FROM failed")
            return cur.rowcount

    def forget_pending(self, ids: Iterable[str]) -> None:
        """Drop entries the sink has acknowledged (the streaming driver, which has no outbox)."""
        with self._tx() as c:
            c.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])

    # -- outbox ------------------------------------------------------------------------------
    def to_outbox(self, articles: Iterable[Article]) -> None:
        now = time.time()
        with self._tx() as c:
            for a in articles:
                c.execute(
                    "INSERT INTO outbox(id, article, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET article = excluded.article",
                    (a.id, json.dumps(a.to_dict()), now),
                )
                c.execute("DELETE FROM pending WHERE id = ?", (a.id,))

    def outbox(self, *, limit: int = 500) -> list[Article]:
        rows = self._conn.execute("SELECT article FROM outbox ORDER BY added_at, rowid LIMIT ?", (limit,)).fetchall()
        return [Article.from_dict(json.loads(r[0])) for r in rows]

    def ack(self, ids: Iterable[str]) -> None:
        with self._tx() as c:
            c.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def outbox_failed(self, ids: Iterable[str], *, error: str) -> None:
        with self._tx() as c:
            c.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500], i) for i in ids],
            )

    # -- status ------------------------------------------------------------------------------
    def unfinished(self, *, limit: int = 50) -> list[tuple[str, str, str, float | None, str]]:
        """What is left, oldest first: (where, id, url, retry_at, last error); ``where`` is
        ``pending``, ``outbox`` or ``failed`` (quarantined). For ``backfill``'s final report."""
        rows = self._conn.execute(
            "SELECT 'pending', id, canonical_url, next_attempt_at, COALESCE(last_error, ''), accepted_at FROM pending "
            "UNION ALL SELECT 'outbox', id, json_extract(article, '$.url'), NULL, COALESCE(last_error, ''), added_at "
            "FROM outbox UNION ALL SELECT 'failed', id, canonical_url, NULL, COALESCE(error, ''), failed_at FROM failed "
            "ORDER BY 6 LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2] or "", r[3], r[4]) for r in rows]

    def counts(self) -> dict[str, int]:
        pending = self._conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        outbox = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        failed = self._conn.execute("SELECT COUNT(*) FROM failed").fetchone()[0]
        return {"pending": int(pending), "outbox": int(outbox), "failed": int(failed)}

    def backlog(self) -> int:
        c = self.counts()
        return c["pending"] + c["outbox"]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
