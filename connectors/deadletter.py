"""The dead-letter store: documents a sink rejected permanently, kept on disk for replay.

A document lands here when the sink says it can never accept it as it is (for
Elasticsearch: a mapping error such as ``document_parsing_exception``). Transient
failures (429, 5xx, connection errors) never come here: they are retried.

Design:

- One SQLite file (``<dir>/deadletter.sqlite``, WAL mode), so several writers (Beam DoFn
  instances, ``newsmon deadletter replay``) and readers can share it and a ``kill -9``
  never leaves a half-written entry.
- Append-only: entries are never deleted. An entry's key is the sha256 of the sink name
  plus the article's JSON, so dead-lettering the same document again (a replay that fails
  again, a retried Beam bundle) does not add a second entry; it bumps ``attempts``.
- Replay marks an entry ``replayed`` once the sink acknowledges the document; entries
  that are still rejected stay ``pending`` with the latest reason.
- Reasons are stored as the sink reported them after redaction by the caller
  (``connectors.elasticsearch`` strips credentials before anything reaches this store).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.sink import WriteResult
from connectors.sqlite import StoreError, connect
from transforms.records import Article, dt_to_str, utcnow

PENDING = "pending"
REPLAYED = "replayed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    sink TEXT NOT NULL,
    article_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    article TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters(status, seq);
"""


class DeadLetterError(Exception):
    """The dead-letter store cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    key: str
    sink: str
    article_id: str
    status: str
    reason: str
    first_at: str
    last_at: str
    attempts: int
    document: dict[str, Any]  # Article.to_dict() as it was rejected

    @property
    def article(self) -> Article:
        return Article.from_dict(self.document)

    def summary(self) -> dict[str, object]:
        """A JSON-able view without the article body (for ``newsmon deadletter list``)."""
        return {
            "seq": self.seq,
            "article_id": self.article_id,
            "sink": self.sink,
            "status": self.status,
            "attempts": self.attempts,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "url": self.document.get("url"),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: tuple[str, ...] = ()  # article ids now acknowledged by the sink
    still_rejected: tuple[str, ...] = ()  # rejected again (entry stays pending)
    retry: tuple[str, ...] = ()  # transient failure: try again later


def entry_key(sink: str, article: Article) -> str:
    payload = json.dumps(article.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{sink}\n{payload}".encode()).hexdigest()


class DeadLetterStore:
    """Append-only store of permanently rejected documents (thread-safe)."""

    FILENAME = "deadletter.sqlite"

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        try:
            self._conn = connect(self.directory / self.FILENAME)
            self._conn.executescript(_SCHEMA)
        except (StoreError, OSError, sqlite3.Error) as exc:
            raise DeadLetterError(f"cannot open dead-letter store in {self.directory}: {exc}") from exc

    def add(self, sink: str, article: Article, reason: str) -> bool:
        """Record a rejected document; returns True when it is a new entry."""
        key = entry_key(sink, article)
        now = dt_to_str(utcnow()) or ""
        doc = json.dumps(article.to_dict(), ensure_ascii=False)
        with self._lock:
            try:
                cur = self._conn.execute(
                    "INSERT INTO dead_letters(key, sink, article_id, status, reason, first_at, last_at, attempts, article)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(key) DO NOTHING",
                    (key, sink, article.id, PENDING, reason, now, now, doc),
                )
                if cur.rowcount:
                    return True
                self._conn.execute(
                    "UPDATE dead_letters SET attempts = attempts + 1, last_at = ?, reason = ?, status = ?"
                    " WHERE key = ?",
                    (now, reason, PENDING, key),
                )
                return False
            except sqlite3.Error as exc:
                raise DeadLetterError(f"cannot write dead-letter entry for {article.id}: {exc}") from exc

    def entries(self, *, status: str | None = PENDING, sink: str | None = None) -> Iterator[DeadLetter]:
        sql = "SELECT seq, key, sink, article_id, status, reason, first_at, last_at, attempts, article FROM dead_letters"
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if sink is not None:
            where.append("sink = ?")
            params.append(sink)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq", params).fetchall()
        for seq, key, sink_, aid, st, reason, first, last, attempts, doc in rows:
            yield DeadLetter(
                seq=int(seq),
                key=key,
                sink=sink_,
                article_id=aid,
                status=st,
                reason=reason,
                first_at=first,
                last_at=last,
                attempts=int(attempts),
                document=json.loads(doc),
            )

    def count(self, *, status: str | None = PENDING) -> int:
        return sum(1 for _ in self.entries(status=status))

    def mark_replayed(self, keys: Sequence[str]) -> None:
        now = dt_to_str(utcnow())
        with self._lock:
            self._conn.executemany(
                "UPDATE dead_letters SET status = ?, last_at = ? WHERE key = ?",
                [(REPLAYED, now, k) for k in keys],
            )

    def replay(
        self, write: Callable[[Sequence[Article]], WriteResult], *, sink: str, batch_size: int = 200
    ) -> ReplayReport:
        """Send every pending entry of ``sink`` through ``write`` and mark what it acknowledged.

        ``write`` is the sink's own write (which dead-letters again on a new rejection; the
        entry key makes that a no-op apart from ``attempts``).
        """
        pending = list(self.entries(status=PENDING, sink=sink))
        replayed: list[str] = []
        rejected: list[str] = []
        retry: list[str] = []
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            result = write([e.article for e in batch])
            acked = set(result.acknowledged)
            done = [e for e in batch if e.article_id in acked]
            self.mark_replayed([e.key for e in done])
            replayed.extend(e.article_id for e in done)
            rejected.extend(i for i in result.dead_lettered)
            retry.extend(i for i in result.retry)
        return ReplayReport(tuple(replayed), tuple(rejected), tuple(retry))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
