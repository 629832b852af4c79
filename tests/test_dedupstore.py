"""SqliteDedupStore: URL acceptance, idempotent records, candidates, pruning, kill -9 survival."""

from __future__ import annotations

import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.dedupstore import SqliteDedupStore, SqliteStoreFactory
from transforms.dedupstate import DedupRecord, DedupStoreError
from transforms.records import Syndication

T0 = datetime(2024, 6, 19, 6, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def rec(
    i: str,
    *,
    seen: datetime = T0,
    bands: tuple[int, ...] = (),
    text_hash: str = "",
    terms: tuple[int, ...] = (),
    duplicate_of: str | None = None,
) -> DedupRecord:
    return DedupRecord(
        id=i,
        url=f"https://x.id/{i}",
        source="x",
        first_seen=seen,
        published=None,
        text_hash=text_hash,
        bands=bands,
        shingles=b"\x01\x00\x00\x00",
        story_terms=terms,
        story_id=duplicate_of or i,
        duplicate_of=duplicate_of,
        duplicate_kind="near" if duplicate_of else None,
        similarity=0.9 if duplicate_of else None,
    )


@pytest.fixture()
def store(tmp_path: Path) -> SqliteDedupStore:
    s = SqliteDedupStore(tmp_path / "dedup.sqlite", window_days=7)
    yield s
    s.close()


def test_accept_url_once_within_window(store: SqliteDedupStore) -> None:
    assert store.accept_url("u1", "https://x.id/a", now=T0) is True
    assert store.accept_url("u1", "https://x.id/a", now=T0 + timedelta(days=6)) is False
    assert store.accept_url("u1", "https://x.id/a", now=T0 + timedelta(days=8)) is True  # window passed
    assert store.accept_url("u2", "https://x.id/b", now=T0, owner="art-2") is True
    assert store.url_owner("u2") == "art-2"


def test_record_is_idempotent_and_round_trips(store: SqliteDedupStore) -> None:
    r = rec("a", bands=(1, -2, 3), text_hash="h", terms=(5, 6))
    store.record(r)
    store.record(r)
    got = store.lookup("a")
    assert got == r
    assert store.stats()["lsh"] == 3
    assert store.stats()["df"] == 2
    assert store.lookup("missing") is None


def test_candidates_by_hash_and_bands_exclude_self_and_copies(store: SqliteDedupStore) -> None:
    store.record(rec("orig", bands=(1, 2, 3), text_hash="h1"))
    store.record(rec("other", bands=(3, 9, 10)))
    store.record(rec("copy", bands=(1, 2, 3), text_hash="h1", duplicate_of="orig"))
    ids = [c.id for c in store.candidates(text_hash="h1", bands=(1, 2, 3), exclude_id="new")]
    assert ids == ["orig", "other"]  # hash match first, then most shared bands; copies never
    assert [c.id for c in store.candidates(text_hash="", bands=(1, 2), exclude_id="orig")] == []
    assert store.candidates(text_hash="h1", bands=(1,), exclude_id="new", since=T0 + timedelta(hours=1)) == []


def test_story_candidates_need_min_shared(store: SqliteDedupStore) -> None:
    store.record(rec("s1", terms=(1, 2, 3, 4, 5)))
    store.record(rec("s2", terms=(1, 2, 9)))
    got = store.story_candidates(terms=(1, 2, 3, 4), exclude_id="n", since=T0, min_shared=3)
    assert [c.id for c in got] == ["s1"]
    df, total = store.term_frequencies((1, 9, 77))
    assert df == {1: 2, 9: 1} and total == 2


def test_add_syndication_idempotent(store: SqliteDedupStore) -> None:
    store.record(rec("orig"))
    syn = Syndication(id="c", url="https://y.id/c", source="y", first_seen=T0, kind="exact", similarity=1.0)
    store.add_syndication("orig", syn)
    store.add_syndication("orig", syn)
    assert store.lookup("orig").also_published_at == (syn,)


def test_prune_forgets_old_state(store: SqliteDedupStore) -> None:
    store.record(rec("old", seen=T0 - timedelta(days=10), bands=(1,), terms=(7, 8)))
    store.record(rec("new", seen=T0, bands=(2,), terms=(8,)))
    store.accept_url("u-old", "https://x.id/old", now=T0 - timedelta(days=10))
    assert store.prune(older_than=T0 - timedelta(days=7)) == 1
    assert store.lookup("old") is None and store.lookup("new") is not None
    assert store.term_frequencies((7, 8))[0] == {8: 1}
    assert store.stats()["lsh"] == 1 and store.stats()["urls"] == 0


def test_factory_is_picklable(tmp_path: Path) -> None:
    factory = pickle.loads(pickle.dumps(SqliteStoreFactory(str(tmp_path / "s.sqlite"), 3.0)))
    s = factory()
    assert s.window == timedelta(days=3)
    s.close()


def test_unopenable_path_is_permanent_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(DedupStoreError) as info:
        SqliteDedupStore(tmp_path / "dir.sqlite")
    assert info.value.transient is False


@pytest.mark.hostile
def test_survives_kill_9(tmp_path: Path) -> None:
    """A child records an article and accepts a URL, then SIGKILLs itself; both are still there."""
    db = tmp_path / "dedup.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime, timezone
        from connectors.dedupstore import SqliteDedupStore
        from transforms.dedupstate import DedupRecord
        s = SqliteDedupStore({str(db)!r})
        t = datetime(2024, 6, 19, tzinfo=timezone.utc)
        s.accept_url("url-1", "https://x.id/a", now=t)
        s.record(DedupRecord(id="art-1", url="https://x.id/a", source="x", first_seen=t, published=None,
                 text_hash="h", bands=(1, 2), shingles=b"", story_terms=(), story_id="art-1"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    s = SqliteDedupStore(db)
    assert s.lookup("art-1") is not None
    assert s.accept_url("url-1", "https://x.id/a", now=T0) is False
    assert [c.id for c in s.candidates(text_hash="h", bands=(), exclude_id="z")] == ["art-1"]
    s.close()


# --- cost stays flat with the window ------------------------------------------------------------


class _RecordingConnection:
    """Stands in for the store's sqlite3 connection and remembers every (sql, parameters)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.calls: list[tuple[str, tuple]] = []

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        self.calls.append((sql, tuple(params)))
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        return self.db.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()


def _query_plans(store: SqliteDedupStore, call: Callable[[], object]) -> list[str]:
    """EXPLAIN QUERY PLAN of every SELECT the store runs in ``call()``, with its bound parameters
    (literals would let SQLite pick indexes it cannot use for the parameterised statement)."""
    real = store._db
    spy = _RecordingConnection(real)
    store._db = spy  # type: ignore[assignment]
    try:
        call()
    finally:
        store._db = real
    return [
        " | ".join(str(r[3]) for r in real.execute("EXPLAIN QUERY PLAN " + sql, params))
        for sql, params in spy.calls
        if sql.lstrip().upper().startswith("SELECT")
    ]


def _assert_index_probes(plans: list[str]) -> None:
    for plan in plans:
        # the text-hash probe once walked the whole window through records_seen: O(window) per article
        assert "records_seen" not in plan, plan
        assert not any(f"SCAN {t}" in plan for t in ("records", "lsh", "story", "df")), plan


def test_every_lookup_is_an_index_probe_never_a_window_scan(store: SqliteDedupStore) -> None:
    for i in range(20):
        store.record(rec(f"r{i}", bands=(i, 100 + i), text_hash=f"h{i}", terms=(i, i + 1, i + 2)))
    plans = _query_plans(
        store,
        lambda: (
            store.lookup("r3"),
            store.candidates(text_hash="h3", bands=(3, 103), exclude_id="new", since=T0),
            store.story_candidates(terms=(3, 4, 5), exclude_id="new", since=T0, min_shared=2),
            store.term_frequencies((3, 4)),
        ),
    )
    assert len(plans) >= 5, plans
    _assert_index_probes(plans)
    assert any("records_hash" in p for p in plans), plans


def test_a_whole_decision_uses_only_index_probes(store: SqliteDedupStore) -> None:
    from tests.test_dedup import ORIGINAL, SAME_EVENT, SAME_EVENT_TITLE, make, text, variants
    from transforms.dedup import decide

    decide(make("a", text(ORIGINAL)), store, now=T0)
    decide(make("b", text(SAME_EVENT), title=SAME_EVENT_TITLE, minutes=5), store, now=T0)
    copy = make("c", variants()["reordered_paragraphs"], minutes=9)
    plans = _query_plans(store, lambda: decide(copy, store, now=T0))
    assert len(plans) >= 4, plans  # lookup, hash + LSH candidates, (story skipped for a copy)
    _assert_index_probes(plans)


def test_story_candidates_are_light_records(store: SqliteDedupStore) -> None:
    full = rec("s1", bands=(1, 2), text_hash="h", terms=(1, 2, 3, 4))
    store.record(full)
    (got,) = store.story_candidates(terms=(1, 2, 3), exclude_id="n", since=T0, min_shared=3)
    assert got.shingles == b"" and got.bands == () and got.text_hash == ""
    assert (got.id, got.story_id, got.story_terms, got.first_seen) == (
        full.id,
        full.story_id,
        full.story_terms,
        full.first_seen,
    )
    assert store.lookup("s1").shingles == full.shingles  # the full record is still there


def test_wal_is_checkpointed_in_bounded_steps(tmp_path: Path) -> None:
    from connectors.dedupstore import WAL_CHECKPOINT_PAGES

    s = SqliteDedupStore(tmp_path / "w.sqlite")
    try:
        assert int(s._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == WAL_CHECKPOINT_PAGES
        assert int(s._db.execute("PRAGMA journal_size_limit").fetchone()[0]) > 0
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


def test_a_batch_is_one_transaction_its_reads_see_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    store = SqliteDedupStore(path)
    other = SqliteDedupStore(path)  # another connection: sees only what is committed
    try:
        with store.batch():
            store.record(rec("a", bands=(1,), text_hash="ha"))
            store.record(rec("b", bands=(2,)))
            assert store.lookup("a") is not None  # inside: visible
            assert [r.id for r in store.candidates(text_hash="ha", bands=(), exclude_id="x")] == ["a"]
            assert other.lookup("a") is None  # not committed yet
        assert other.lookup("a") is not None and other.lookup("b") is not None
        with pytest.raises(RuntimeError), store.batch():
            store.record(rec("c"))
            raise RuntimeError("the cycle failed")
        assert store.lookup("c") is None and other.lookup("c") is None  # all of it rolled back
    finally:
        store.close()
        other.close()


def test_a_failed_write_in_a_batch_is_undone_alone(store: SqliteDedupStore) -> None:
    """Each write in a batch is a savepoint: one that fails halfway leaves nothing behind, and
    the batch's other writes still commit."""
    with store.batch():
        store.record(rec("a"))
        with pytest.raises(DedupStoreError), store._tx() as db:
            db.execute("INSERT INTO urls(id, url, owner, seen) VALUES ('u', 'http://x', 'u', 0)")
            db.execute("INSERT INTO no_such_table VALUES (1)")
        store.record(rec("b"))
    assert store.lookup("a") is not None and store.lookup("b") is not None
    assert store.url_owner("u") is None
