"""The driver's state store: atomic poll commits, pending -> outbox -> ack, crash safety."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.statestore import PendingItem, StateStore
from transforms.records import Article, FeedEntry, article_id

T0 = datetime(2024, 6, 19, 3, 0, tzinfo=timezone.utc)


def entry(n: int) -> FeedEntry:
    return FeedEntry(
        feed_url="http://feed",
        feed_id="f",
        source="Contoh",
        entry_id=f"e{n}",
        link=f"https://contoh.id/{n}",
        title=f"Judul {n}",
        summary="",
        published=T0,
        published_raw="",
        fetched_at=T0,
    )


def item(n: int) -> PendingItem:
    e = entry(n)
    return PendingItem(id=article_id(e.link), canonical_url=e.link, entry=e, attempts=0)


def article(p: PendingItem) -> Article:
    return Article(
        id=p.id,
        url=p.entry.link,
        canonical_url=p.canonical_url,
        source="Contoh",
        title="t",
        text="x",
        published=T0,
        first_seen=T0,
    )


class FakeState:
    def __init__(self, feed_id: str) -> None:
        self.feed_id = feed_id

    def to_dict(self) -> dict[str, str]:
        return {"feed_id": self.feed_id}


def test_pending_outbox_ack_cycle(tmp_path: Path) -> None:
    s = StateStore(tmp_path / "state.sqlite")
    items = [item(i) for i in range(3)]
    assert s.add_pending(items) == 3
    assert s.add_pending(items) == 0  # same ids: ignored
    assert all(s.is_known(i.id) for i in items)
    due = s.due_pending(now=1e12)
    assert [d.id for d in due] == [i.id for i in items]
    assert due[0].entry == items[0].entry
    s.defer(items[0].id, error="timeout", retry_at=1e12 + 10)
    assert [d.id for d in s.due_pending(now=1e12)] == [i.id for i in items[1:]]
    s.to_outbox([article(items[1])])
    assert s.counts() == {"pending": 2, "outbox": 1, "failed": 0}
    assert s.add_pending([items[1]]) == 0  # in the outbox: not accepted again
    assert [a.id for a in s.outbox()] == [items[1].id]
    s.ack([items[1].id])
    assert s.counts() == {"pending": 2, "outbox": 0, "failed": 0}
    s.quarantine(items[2].id, error="boom")
    assert s.counts() == {"pending": 1, "outbox": 0, "failed": 1}
    assert s.is_known(items[2].id)
    assert s.requeue_failed() == 1 and s.counts()["pending"] == 2
    assert not s.is_known(items[1].id)


def _commit_forever(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    s = StateStore(Path(path))
    n = 0
    while True:
        s.commit_poll(FakeState(f"feed{n}"), [item(10_000 + n)])
        n += 1
        if n == 50:
            ready.set()


def test_commit_poll_is_atomic_under_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_commit_forever, args=(str(path), ready))
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    s = StateStore(path)
    with closing(sqlite3.connect(path)) as db:  # the file itself, not the store object's private connection
        feeds = db.execute("SELECT COUNT(*) FROM feeds").fetchone()[0]
    pending = s.counts()["pending"]
    assert feeds >= 50
    assert feeds == pending  # every saved feed state has its entry, and vice versa


# -- opening and locking (issue 13 items 8, 13, 14) -------------------------------------------------
def test_connect_without_create_never_makes_a_store(tmp_path: Path) -> None:
    from connectors.sqlite import StoreError, connect, ensure_store_dir

    typo = tmp_path / "typo"
    with pytest.raises(StoreError, match=f"no store at {typo}"):
        connect(typo / "state.sqlite", create=False)
    with pytest.raises(StoreError, match=f"no store at {typo}"):
        ensure_store_dir(typo, create=False)
    assert not typo.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=f"cannot create store {blocker}/s: {blocker} is a file"):
        StateStore(blocker / "s" / "state.sqlite")


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from connectors.storelock import StoreLock, StoreLocked, store_owner

    store = tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from connectors.storelock import StoreLock; "
         "StoreLock.acquire(sys.argv[1], command='run'); print('held', flush=True); time.sleep(600)", str(store)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLocked, match=f"in use by pid {holder.pid} "):
            StoreLock.acquire(store, command="backfill", wait=0.2)
        owner, held = store_owner(store)
        assert held and owner is not None and owner.pid == holder.pid
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    time.sleep(0.05)
    assert store_owner(store)[1] is False
    StoreLock.acquire(store, command="run").release()  # kill -9 left a file, not a lock
