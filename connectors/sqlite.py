"""The one way newsmon opens its SQLite files and runs a transaction.

Every store in the store directory (state, dedup window, embedded index, dead letters, alert
queue) is a SQLite file used by one writing process with concurrent readers, so they share:

* **opening**: :func:`connect` — WAL journal, ``synchronous=NORMAL`` (durable against a killed
  process; only a power loss can drop the last transactions), a 30 s busy timeout, autocommit
  mode so transactions are explicit; a path that cannot hold a store is one :class:`StoreError`
  line for the user, and read-only callers never create a file;
* **transactions**: :class:`Transaction` — ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any
  error) under an in-process lock, so threads of one process take turns and another process
  waits for the write lock instead of failing halfway.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_S = 30.0


class StoreError(Exception):
    """A store cannot be used: missing (for a read-only command), a file, not writable, or locked.

    The message is one line meant for the user; ``newsmon`` prints it and exits non-zero.
    """


def os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def path_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot hold a store (None if nothing obvious is wrong)."""
    for parent in (directory, *directory.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a directory"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None


def ensure_store_dir(directory: Path | str, *, create: bool = True) -> Path:
    """Check (and with ``create``, make) a store directory; raise :class:`StoreError` if unusable.

    Read-only commands pass ``create=False``: a missing store is an error ("no store at X"),
    never silently created.
    """
    d = Path(directory)
    if d.is_dir():
        if create and not os.access(d, os.W_OK | os.X_OK):
            raise StoreError(f"store {d} is not writable")
        return d
    if d.exists():
        raise StoreError(f"store path {d} is a file, not a directory")
    if not create:
        raise StoreError(f"no store at {d}")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store {d}: {path_problem(d) or os_reason(exc)}") from exc
    return d


def connect(path: Path | str, *, create: bool = True, pragmas: tuple[str, ...] = ()) -> sqlite3.Connection:
    """Open one of the store's SQLite files; :class:`StoreError` with a clear reason if it cannot.

    ``pragmas`` are extra ``PRAGMA`` statements for this file (page size, checkpoints). With
    ``create=False`` a missing file is an error instead of a new, empty database.
    """
    if str(path) == ":memory:":  # tests and one-off runs: nothing on disk
        return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    path = Path(path)
    if not create and not path.is_file():
        raise StoreError(f"no store at {path.parent}" if not path.parent.is_dir() else f"no {path.name} in {path.parent}")
    if create:
        ensure_store_dir(path.parent)
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            for pragma in (*pragmas, "journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={int(BUSY_TIMEOUT_S * 1000)}"):
                conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error:
            conn.close()
            raise
    except sqlite3.Error as exc:
        problem = path_problem(path.parent) or ("a directory" if path.is_dir() else None)
        raise StoreError(f"cannot open {path}: {problem or os_reason(exc)}") from exc
    return conn


class Transaction:
    """``with Transaction(conn, lock) as db:`` one ``BEGIN IMMEDIATE`` transaction under ``lock``.

    It commits when the block ends normally and rolls back on any exception. ``wrap`` turns a
    ``sqlite3.Error`` (from the block or from ``BEGIN``/``COMMIT``) into the store's own error.
    ``write=False`` takes only the lock: each statement then reads a committed state.

    Inside a transaction this connection already holds (a store's ``batch()``), the block is a
    ``SAVEPOINT`` instead: it stays all-or-nothing on its own, and its writes are committed
    with the enclosing transaction.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: threading.Lock | threading.RLock,
        *,
        wrap: Callable[[sqlite3.Error], Exception] | None = None,
        write: bool = True,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._wrap = wrap
        self._write = write
        self._savepoint = False

    def _raise(self, exc: sqlite3.Error) -> None:
        if self._wrap is not None:
            raise self._wrap(exc) from exc
        raise exc

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        if not self._write:
            return self._conn
        self._savepoint = self._conn.in_transaction
        try:
            self._conn.execute("SAVEPOINT newsmon" if self._savepoint else "BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._lock.release()
            self._raise(exc)
        return self._conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._write and self._savepoint:
                if exc_type:
                    self._conn.execute("ROLLBACK TO newsmon")
                self._conn.execute("RELEASE newsmon")
            elif self._write:
                self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as err:
            if exc is None:
                self._raise(err)
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error) and self._wrap is not None:
            raise self._wrap(exc) from exc
