"""One writer per store: an exclusive ``flock`` on ``<store>/newsmon.lock``.

``run`` and ``backfill`` hold it for their lifetime, so two writers never share a store (the
local driver keeps feed state in memory and assumes it is the only writer). The lock file
records the holder -- pid, host, command, start time and, once ``run`` serves them, its
metrics address -- for the refusal message and for ``newsmon status``. The kernel drops the
lock when the process exits, however it exits (``kill -9`` included); a file left behind is
harmless because only the lock counts, not the file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from connectors.sqlite import StoreError, ensure_store_dir, os_reason, path_problem


class StoreLocked(StoreError):
    """Another process holds the store's lock."""


LOCK_FILE = "newsmon.lock"


@dataclass(frozen=True, slots=True)
class StoreOwner:
    """Who holds (or last held) a store's lock, as recorded in its lock file."""

    pid: int
    host: str
    command: str
    started_at: float
    metrics_url: str | None = None

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid} on {self.host} (newsmon {self.command}, started {started})"

    @classmethod
    def from_json(cls, text: str) -> StoreOwner | None:
        try:
            d = json.loads(text)
            return cls(
                pid=int(d["pid"]),
                host=str(d["host"]),
                command=str(d["command"]),
                started_at=float(d["started_at"]),
                metrics_url=d.get("metrics_url") or None,
            )
        except (ValueError, TypeError, KeyError):
            return None


def _read_owner(fd: int) -> StoreOwner | None:
    # the holder rewrites the file in place: a read may catch it half-written, so retry briefly
    for _ in range(20):
        owner = StoreOwner.from_json(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
        if owner is not None:
            return owner
        time.sleep(0.02)
    return None


class StoreLock:
    """The held lock of one store (see the module docstring); release it, or exit."""

    def __init__(self, directory: Path, fd: int, owner: StoreOwner) -> None:
        self.directory = directory
        self.owner = owner
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path | str, *, command: str, wait: float = 1.0) -> StoreLock:
        d = ensure_store_dir(directory)
        path = d / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {path_problem(d) or os_reason(exc)}") from exc
        deadline = time.monotonic() + wait  # a reader's brief shared lock (status) is not a holder
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise StoreError(f"cannot lock {path}: {os_reason(exc)}") from exc
                if time.monotonic() >= deadline:
                    holder = _read_owner(fd)
                    os.close(fd)
                    who = holder.describe() if holder else "another process"
                    raise StoreLocked(f"store {d} is in use by {who}; stop it first or use another --store") from None
            time.sleep(0.05)
        lock = cls(d, fd, StoreOwner(pid=os.getpid(), host=socket.gethostname(), command=command, started_at=time.time()))
        lock._record()
        return lock

    def set_metrics_url(self, url: str | None) -> None:
        """Record where this process serves its metrics (read by ``newsmon status``)."""
        self.owner = replace(self.owner, metrics_url=url)
        self._record()

    def _record(self) -> None:
        if self._fd is None:
            return
        data = json.dumps(asdict(self.owner)).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def store_owner(directory: Path | str) -> tuple[StoreOwner | None, bool]:
    """The recorded holder of a store's lock and whether a live process holds it now."""
    path = Path(directory) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            held = True
        else:
            held = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        return _read_owner(fd) if held else StoreOwner.from_json(os.pread(fd, 65536, 0).decode("utf-8", "replace")), held
    finally:
        os.close(fd)
