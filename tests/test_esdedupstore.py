"""ElasticsearchDedupStore: the SQLite store's contract over real HTTP, decide() parity, races, faults.

Tests marked ``live`` run against the real OpenSearch test node (through the Elasticsearch-client
shim of tests/faultserver.py) here, and unchanged against a real cluster when ``NEWSMON_TEST_ES_URL`` is set (credentials from
``NEWSMON_TEST_ES_API_KEY`` or ``NEWSMON_TEST_ES_USERNAME``/``NEWSMON_TEST_ES_PASSWORD``,
``NEWSMON_TEST_ES_CA_CERT``). Each test uses its own index prefix and deletes its index.
Tests that inject faults, depend on the test server's refresh timing or its auth hook are
not marked ``live``. The server runs with a 1 s refresh interval, so searches only see what
the store made visible on purpose. The Indonesian texts are invented for these tests.
"""

from __future__ import annotations

import pickle
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.dedupstore import SqliteDedupStore
from connectors.elasticsearch import make_client
from connectors.elasticsearch.dedupstore import MAPPINGS, ElasticsearchDedupStore, ElasticsearchDedupStoreFactory
from pipelines.config import ElasticsearchConfig
from tests.eslive import LIVE_URL, live_config
from tests.faultserver import FaultProxy
from transforms.dedup import decide, decide_batch
from transforms.dedupstate import DedupRecord, DedupStoreError
from transforms.records import Article, Syndication, article_id

T0 = datetime(2024, 6, 19, 6, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(opensearch_url: str) -> Iterator[FaultProxy]:
    """The real OpenSearch test node behind the Elasticsearch-client shim (tests/faultserver.py)."""
    with FaultProxy(opensearch_url, elasticsearch=True) as proxy:
        yield proxy


@pytest.fixture
def test_server(server: FaultProxy) -> Iterator[FaultProxy]:
    """The shim with no faults and an empty request log (fault and auth tests)."""
    server.reset()
    yield server
    server.faults.clear()
    server.auth = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every contract test runs through both clients; the fault and request-log tests only
    through the Elasticsearch client, whose requests the shim sees and can fail."""
    if "es_config" in metafunc.fixturenames:
        engines = ["elasticsearch"] if "test_server" in metafunc.fixturenames else ["elasticsearch", "opensearch"]
        metafunc.parametrize("es_config", engines, indirect=True)


@pytest.fixture
def es_config(request: pytest.FixtureRequest, server: FaultProxy, opensearch_url: str) -> Iterator[ElasticsearchConfig]:
    """The live cluster when NEWSMON_TEST_ES_URL is set, else the real test node (the elasticsearch
    client through the shim, or opensearch-py straight to the node); unique prefix."""
    prefix = f"nmtest-{uuid.uuid4().hex[:10]}"
    if LIVE_URL:
        if request.param == "opensearch":
            pytest.skip("NEWSMON_TEST_ES_URL is an Elasticsearch cluster")
        cfg = live_config(prefix)
    else:
        server.reset()
        url = server.url if request.param == "elasticsearch" else opensearch_url
        cfg = ElasticsearchConfig(urls=(url,), index_prefix=prefix, engine=request.param)
    yield cfg
    server.auth = None
    es = make_client(cfg)
    try:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-dedup")
    finally:
        es.close()


@pytest.fixture
def store(es_config: ElasticsearchConfig) -> Iterator[ElasticsearchDedupStore]:
    s = ElasticsearchDedupStore(es_config, window_days=7)
    s.ensure_index()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


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
        published=seen - timedelta(minutes=5),
        text_hash=text_hash,
        bands=bands,
        shingles=b"\x01\x00\x00\x00\xff\x00\x00\x00",
        story_terms=terms,
        story_id=duplicate_of or i,
        duplicate_of=duplicate_of,
        duplicate_kind="near" if duplicate_of else None,
        similarity=0.9 if duplicate_of else None,
    )


class FakeClock:
    """Wall clock for lock ages; ``sleep`` advances it (and may run a hook) instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep: list[object] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        while self.on_sleep:
            self.on_sleep.pop(0)()  # type: ignore[operator]


# --------------------------------------------------------------------------- contract (live-capable)


@pytest.mark.live
def test_ensure_index_is_idempotent_with_explicit_mapping(es_config: ElasticsearchConfig) -> None:
    s = ElasticsearchDedupStore(es_config)
    try:
        assert s.ensure_index() is True
        assert s.ensure_index() is False
        got = s._es.indices.get(index=s.index)[s.index]["mappings"]
        assert got["dynamic"] == MAPPINGS["dynamic"] == "strict"
        props = got["properties"]
        assert props["bands"]["type"] == props["text_hash"]["type"] == props["story_terms"]["type"] == "keyword"
        assert props["first_seen"]["type"] == "date" and props["shingles"]["type"] == "binary"
    finally:
        s.close()


@pytest.mark.live
def test_accept_url_once_within_window(store: ElasticsearchDedupStore) -> None:
    assert store.accept_url("u1", "https://x.id/a", now=T0) is True
    assert store.accept_url("u1", "https://x.id/a", now=T0 + timedelta(days=6)) is False
    assert store.accept_url("u1", "https://x.id/a", now=T0 + timedelta(days=8)) is True  # window passed
    assert store.accept_url("u1", "https://x.id/a", now=T0 + timedelta(days=9)) is False  # renewed at day 8
    assert store.accept_url("u2", "https://x.id/b", now=T0, owner="art-2") is True
    assert store.url_owner("u2") == "art-2"
    assert store.url_owner("u1") == "u1"
    assert store.url_owner("nope") is None


@pytest.mark.live
def test_record_is_idempotent_and_round_trips(store: ElasticsearchDedupStore) -> None:
    r = rec("a", bands=(1, -2, 3, 2**62), text_hash="h", terms=(5, 6, 4294967295))
    store.record(r)
    store.record(replace(r, story_id="other"))  # a second decision for the same id changes nothing
    assert store.lookup("a") == r
    assert store.lookup("missing") is None
    store.accept_url("a2", "https://x.id/a2", now=T0)
    assert store.lookup("url-a2") is None  # URL documents are not records


@pytest.mark.live
def test_candidates_by_hash_and_bands_exclude_self_and_copies(store: ElasticsearchDedupStore) -> None:
    store.record(rec("orig", bands=(1, 2, 3), text_hash="h1"))
    store.record(rec("other", bands=(3, 9, 10)))
    store.record(rec("copy", bands=(1, 2, 3), text_hash="h1", duplicate_of="orig"))
    got = store.candidates(text_hash="h1", bands=(1, 2, 3), exclude_id="new")
    assert [c.id for c in got] == ["orig", "other"]  # hash match first, then most shared bands; copies never
    assert got[0] == rec("orig", bands=(1, 2, 3), text_hash="h1")  # full records, shingles included
    assert [c.id for c in store.candidates(text_hash="", bands=(1, 2), exclude_id="orig")] == []
    assert store.candidates(text_hash="h1", bands=(1,), exclude_id="new", since=T0 + timedelta(hours=1)) == []
    assert store.candidates(text_hash="", bands=(), exclude_id="new") == []


@pytest.mark.live
def test_candidates_rank_by_shared_bands_then_earliest(store: ElasticsearchDedupStore) -> None:
    store.record(rec("one", bands=(1, 50, 51)))
    store.record(rec("three-late", bands=(1, 2, 3), seen=T0 + timedelta(hours=2)))
    store.record(rec("three-early", bands=(1, 2, 3, 60)))
    store.record(rec("two", bands=(2, 3, 70)))
    got = store.candidates(text_hash="", bands=(1, 2, 3), exclude_id="new")
    assert [c.id for c in got] == ["three-early", "three-late", "two", "one"]
    assert [c.id for c in store.candidates(text_hash="", bands=(1, 2, 3), exclude_id="new", limit=2)] == [
        "three-early",
        "three-late",
    ]


@pytest.mark.live
def test_story_candidates_need_min_shared(store: ElasticsearchDedupStore) -> None:
    store.record(rec("s1", terms=(1, 2, 3, 4, 5)))
    store.record(rec("s2", terms=(1, 2, 9)))
    store.record(rec("s3", terms=(1, 2, 3, 9), duplicate_of="s1"))  # copies carry no story weight
    store.record(rec("s4", terms=(1, 2, 3), seen=T0 - timedelta(days=2)))
    got = store.story_candidates(terms=(1, 2, 3, 4), exclude_id="n", since=T0, min_shared=3)
    assert [c.id for c in got] == ["s1"]
    older = store.story_candidates(terms=(1, 2, 3, 4), exclude_id="n", since=T0 - timedelta(days=3), min_shared=3)
    assert [c.id for c in older] == ["s1", "s4"]  # most shared first
    assert store.story_candidates(terms=(), exclude_id="n", since=T0, min_shared=1) == []
    df, total = store.term_frequencies((1, 9, 77))
    assert df == {1: 3, 9: 1} and total == 3
    assert store.term_frequencies(()) == ({}, 3)


@pytest.mark.live
def test_add_syndication_idempotent(store: ElasticsearchDedupStore) -> None:
    store.record(rec("orig"))
    syn = Syndication(id="c", url="https://y.id/c", source="y", first_seen=T0, kind="exact", similarity=1.0)
    store.add_syndication("orig", syn)
    store.add_syndication("orig", syn)
    store.add_syndication("missing", syn)  # an original already pruned: nothing to annotate
    got = store.lookup("orig")
    assert got is not None and got.also_published_at == (syn,)
    assert store.lookup("missing") is None


@pytest.mark.live
def test_prune_forgets_old_state(store: ElasticsearchDedupStore) -> None:
    store.record(rec("old", seen=T0 - timedelta(days=10), bands=(1,), terms=(7, 8)))
    store.record(rec("new", seen=T0, bands=(2,), terms=(8,)))
    store.accept_url("u-old", "https://x.id/old", now=T0 - timedelta(days=10))
    store.accept_url("u-new", "https://x.id/new", now=T0)
    assert store.prune(older_than=T0 - timedelta(days=7)) == 1
    assert store.lookup("old") is None and store.lookup("new") is not None
    assert store.term_frequencies((7, 8))[0] == {8: 1}
    assert store.candidates(text_hash="", bands=(1,), exclude_id="z") == []
    assert store.url_owner("u-old") is None and store.url_owner("u-new") == "u-new"
    assert store.prune(older_than=T0 - timedelta(days=7)) == 0


# --------------------------------------------------------------------------- decide() parity with SQLite


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each unwrapped to one line."""
    return [" ".join(p.split()) for p in text.strip().split("\n\n")]


TITLE = "Kabut Asap Karhutla Selimuti Pelalawan, Sekolah Diliburkan"
BODY = paragraphs(
    """
Kabut asap dari kebakaran hutan dan lahan menyelimuti Kabupaten Pelalawan, Riau, sejak Senin pagi
sehingga jarak pandang di sejumlah ruas jalan hanya tersisa sekitar dua ratus meter.

Satuan tugas penanggulangan karhutla mencatat api telah membakar lebih dari tiga ratus hektare lahan
gambut di tiga kecamatan, sebagian besar berada di sekitar konsesi perkebunan sawit.

Komandan satgas, Kolonel Arifin Situmorang, menyebut tim darat kesulitan memadamkan api karena bara
terus menjalar di bawah permukaan gambut yang kering.

"Kami sudah mengerahkan dua helikopter untuk pengeboman air dan meminta tambahan satu unit lagi dari
pusat," ujar Arifin di posko Pangkalan Kerinci.

Dinas Pendidikan setempat meliburkan seluruh sekolah dasar dan sekolah menengah pertama selama tiga hari
setelah indeks standar pencemar udara menembus kategori sangat tidak sehat.

Puskesmas di Pangkalan Kerinci melaporkan lonjakan pasien infeksi saluran pernapasan akut, terutama
anak-anak dan warga lanjut usia, dalam sepekan terakhir.

Warga Desa Kuala Terusan, Marlina, mengatakan keluarganya terpaksa memakai masker sepanjang hari bahkan
di dalam rumah karena asap masuk melalui celah jendela.

Polisi telah memeriksa empat orang yang diduga membuka lahan dengan cara membakar dan menyegel satu
areal perkebunan untuk penyelidikan lebih lanjut.

Badan Meteorologi memperkirakan hujan baru akan turun pada pekan depan, sehingga pemerintah daerah
meminta warga mengurangi aktivitas di luar ruangan.
"""
)
NEAR_TITLE = "Asap Pekat Kepung Pelalawan, Ratusan Warga Terserang ISPA"
NEAR_BODY = [*BODY[:3], "Baca juga: Harga Beras Medium Naik Menjelang Hari Raya", *BODY[3:8]]
EVENT_TITLE = "Dua Helikopter Bom Air Dikerahkan Padamkan Karhutla Pelalawan"
EVENT_BODY = paragraphs(
    """
Upaya pemadaman kebakaran lahan gambut di Kabupaten Pelalawan, Riau, diperkuat dengan dua helikopter bom
air yang diterbangkan dari Pangkalan Kerinci sejak Selasa pagi.

Setiap helikopter mampu membawa sekitar empat ribu liter air per sorti yang diambil dari sungai
terdekat, kata seorang petugas di posko satgas karhutla.

Kolonel Arifin Situmorang meminta perusahaan perkebunan sawit ikut menyiagakan regu pemadam dan
menyediakan embung air di sekitar konsesi mereka.

Di lapangan, regu pemadam menyemprotkan air ke bara yang menjalar di bawah permukaan gambut, sementara
relawan membagikan masker kepada pengendara yang melintas.

Pemerintah provinsi juga mengajukan teknik modifikasi cuaca untuk memicu hujan buatan di wilayah yang
paling parah terdampak asap.
"""
)
OTHER_TITLE = "Festival Perahu Naga Ramaikan Sungai Siak Akhir Pekan Ini"
OTHER_BODY = paragraphs(
    """
Ratusan pendayung dari berbagai kabupaten meramaikan festival perahu naga di Sungai Siak yang digelar
pemerintah kota untuk menarik wisatawan.

Panitia menyiapkan panggung musik melayu, bazar kuliner dan lomba menghias perahu di sepanjang tepian
sungai.

Pedagang makanan mengaku omzet mereka naik berlipat selama dua hari penyelenggaraan festival tersebut.

Dinas Pariwisata berharap acara tahunan ini masuk kalender nasional sehingga promosi ke luar daerah bisa
lebih gencar dilakukan.
"""
)


def news(key: str, title: str, paragraphs: list[str], *, minutes: int, source: str, dateline: str = "") -> Article:
    url = f"https://{source}/berita/{key}"
    when = T0 + timedelta(minutes=minutes)
    return Article(
        id=article_id(url),
        url=url,
        canonical_url=url,
        source=source,
        title=title,
        text=dateline + "\n\n".join(paragraphs),
        published=when,
        first_seen=when,
    )


def corpus() -> list[Article]:
    return [
        news("asap-pelalawan", TITLE, BODY, minutes=0, source="riaupos.example.id"),
        news(
            "karhutla-riau",
            TITLE,
            BODY,
            minutes=20,
            source="kompas.example.id",
            dateline="PEKANBARU, KOMPAS.com - ",
        ),
        news("ispa-pelalawan", NEAR_TITLE, NEAR_BODY, minutes=45, source="tribun.example.id"),
        news("helikopter-karhutla", EVENT_TITLE, EVENT_BODY, minutes=90, source="antara.example.id"),
        news("perahu-naga", OTHER_TITLE, OTHER_BODY, minutes=120, source="riaupos.example.id"),
    ]


def decisions(arts: list[Article]) -> list[tuple[str | None, str | None, float | None, str | None]]:
    return [(a.duplicate_kind, a.duplicate_of, a.similarity, a.story_id) for a in arts]


@pytest.mark.live
def test_decide_gives_the_same_decisions_as_sqlite(store: ElasticsearchDedupStore, tmp_path: Path) -> None:
    arts = corpus()
    orig, exact, near, event, other = (a.id for a in arts)
    sqlite = SqliteDedupStore(tmp_path / "dedup.sqlite")
    try:
        want = list(decide_batch(arts, sqlite, now=T0 + timedelta(hours=3)))
        want_orig = sqlite.lookup(orig)
    finally:
        sqlite.close()
    # the fixture means what it says: exact copy, near copy, same story, unrelated
    assert [(k, d) for k, d, _, _ in decisions(want)] == [
        (None, None),
        ("exact", orig),
        ("near", orig),
        (None, None),
        (None, None),
    ]
    assert [s for *_, s in decisions(want)] == [orig, orig, orig, orig, other]
    got = list(decide_batch(arts, store, now=T0 + timedelta(hours=3)))
    assert decisions(got) == decisions(want)
    assert store.lookup(orig) == want_orig  # also_published_at lists both copies, in order
    assert want_orig is not None and [s.id for s in want_orig.also_published_at] == [exact, near]
    # replays return the stored decision
    assert decisions([decide(a, store, now=T0 + timedelta(hours=4)) for a in arts]) == decisions(want)
    assert store.lookup(event) is not None and store.lookup(near).duplicate_of == orig  # type: ignore[union-attr]


@pytest.mark.live
def test_two_workers_deciding_exact_copies_at_once_agree(es_config: ElasticsearchConfig) -> None:
    """Two stores (two workers) decide two exact copies concurrently: one original, one copy of it."""
    a, b = corpus()[:2]
    workers = [ElasticsearchDedupStore(es_config, lock_wait=10.0) for _ in range(2)]
    workers[0].ensure_index()
    barrier = threading.Barrier(2)
    out: dict[str, Article] = {}

    def run(art: Article, s: ElasticsearchDedupStore) -> None:
        barrier.wait()
        out[art.id] = decide(art, s, now=T0 + timedelta(hours=1))

    threads = [threading.Thread(target=run, args=(art, s)) for art, s in zip((a, b), workers, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Whichever worker wins the text lock, the stored outcome is the same: the earlier published
    # article (a) is the original and b its exact copy (if b won, a re-pointed it when decided).
    assert set(out) == {a.id, b.id}
    rec_a, rec_b = workers[0].lookup(a.id), workers[0].lookup(b.id)
    for s in workers:
        s.close()
    assert rec_a is not None and rec_b is not None
    assert rec_a.duplicate_of is None
    assert rec_b.duplicate_of == a.id and rec_b.duplicate_kind == "exact"


@pytest.mark.live
def test_waiting_for_the_lock_owner_finds_its_record(es_config: ElasticsearchConfig) -> None:
    clock = FakeClock(datetime.now(UTC))
    first = ElasticsearchDedupStore(es_config, clock=clock, sleep=clock.sleep)
    second = ElasticsearchDedupStore(es_config, clock=clock, sleep=clock.sleep, lock_wait=5.0)
    first.ensure_index()
    try:
        assert first.candidates(text_hash="h", bands=(), exclude_id="a") == []  # "a" claims the text
        clock.on_sleep.append(lambda: first.record(rec("a", text_hash="h")))  # ...and records while "b" waits
        got = second.candidates(text_hash="h", bands=(), exclude_id="b", since=T0 - timedelta(days=7))
        assert [c.id for c in got] == ["a"] and len(clock.slept) == 1
    finally:
        first.close()
        second.close()


@pytest.mark.live
def test_stale_locks_are_taken_over(store: ElasticsearchDedupStore, es_config: ElasticsearchConfig) -> None:
    clock = FakeClock(datetime.now(UTC))
    s = ElasticsearchDedupStore(es_config, clock=clock, sleep=clock.sleep, lock_wait=2.0)
    try:
        # owner never recorded (crashed worker): taken over once lock_wait has passed
        assert s.candidates(text_hash="h1", bands=(), exclude_id="ghost") == []
        assert s.candidates(text_hash="h1", bands=(), exclude_id="b") == []
        assert 2.0 <= sum(clock.slept) < 2.5
        assert s.candidates(text_hash="h1", bands=(), exclude_id="b") == []  # b owns it now: no wait
        assert 2.0 <= sum(clock.slept) < 2.5
        # owner recorded but outside the window: taken over at once
        clock.slept.clear()
        s.candidates(text_hash="h2", bands=(), exclude_id="old")
        s.record(rec("old", text_hash="h2", seen=T0 - timedelta(days=10)))
        assert s.candidates(text_hash="h2", bands=(), exclude_id="c", since=T0 - timedelta(days=7)) == []
        assert clock.slept == []
        lock = s._es.get(index=s.index, id="hash-h2")
        assert lock["_source"]["owner"] == "c"
        # owner is itself a copy: no waiting, the lock stays
        s.candidates(text_hash="h3", bands=(), exclude_id="cp")
        s.record(rec("cp", text_hash="h3", duplicate_of="root"))
        assert s.candidates(text_hash="h3", bands=(), exclude_id="d") == [] and clock.slept == []
    finally:
        s.close()


# --------------------------------------------------------------------------- test-server only


def test_requests_have_the_documented_shape(test_server: FaultProxy, store: ElasticsearchDedupStore) -> None:
    store.accept_url("u1", "https://x.id/a", now=T0)
    store.accept_url("u1", "https://x.id/a", now=T0)
    store.record(rec("orig", bands=(7, 8), text_hash="h"))
    store.record(rec("copy", bands=(7, 8), text_hash="h", duplicate_of="orig"))
    test_server.requests.clear()
    store.candidates(text_hash="h", bands=(7, 8), exclude_id="new", since=T0 - timedelta(days=7))
    searches = test_server.requests_to("_search")
    light = searches[0].json()
    assert "shingles" not in light["_source"]
    flt = light["query"]["bool"]["filter"][0]["bool"]
    assert {"range": {"first_seen": {"gte": "2024-06-12T06:00:00Z"}}} in flt["filter"]
    assert {"ids": {"values": ["new"]}} in flt["must_not"]
    assert light["query"]["bool"]["should"] == [
        {"terms": {"bands": ["7", "8"]}},
        {"term": {"text_hash": "h"}},
    ]
    assert searches[1].json()["query"] == {"ids": {"values": ["orig"]}}  # full records for the chosen only
    writes = [(r.method, r.path, r.params) for r in test_server.requests if "/_doc/" in r.path]
    assert writes[0][1].endswith("/_doc/hash-h") and writes[0][2]["op_type"] == "create"
    docs = test_server.documents(f"{store.index}")
    assert docs[(store.index, "url-u1")]["kind"] == "url"
    assert docs[(store.index, "orig")]["bands"] == ["7", "8"]


def test_refresh_makes_originals_searchable_at_once(test_server: FaultProxy, es_config: ElasticsearchConfig) -> None:
    """The test server hides writes for 1 s unless refreshed: refresh="true" is what makes decisions see them."""
    eager = ElasticsearchDedupStore(es_config)
    lazy = ElasticsearchDedupStore(es_config, refresh="false")
    eager.ensure_index()
    try:
        lazy.record(rec("l", bands=(1,)))
        assert lazy.candidates(text_hash="", bands=(1,), exclude_id="n") == []
        eager.record(rec("e", bands=(1,)))
        assert [c.id for c in eager.candidates(text_hash="", bands=(1,), exclude_id="n")] == ["e", "l"]
        # the lock path reads records in real time, so an unrefreshed exact original is still found
        lazy.candidates(text_hash="hx", bands=(), exclude_id="x1")
        lazy.record(rec("x1", text_hash="hx", bands=(99,)))
        assert lazy.candidates(text_hash="", bands=(99,), exclude_id="x2") == []
        assert [c.id for c in lazy.candidates(text_hash="hx", bands=(99,), exclude_id="x2")] == ["x1"]
    finally:
        eager.close()
        lazy.close()


def test_factory_pickles_without_secrets_and_reads_them_from_env(
    test_server: FaultProxy, es_config: ElasticsearchConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "rahasia-kunci-123"
    test_server.auth = lambda h: h.get("authorization") == f"ApiKey {secret}"
    try:
        factory = ElasticsearchDedupStoreFactory(replace(es_config, api_key=secret), window_days=3.0)
        blob = pickle.dumps(factory)
        assert secret.encode() not in blob
        clone = pickle.loads(blob)
        monkeypatch.delenv("NEWSMON_ES_API_KEY", raising=False)
        with pytest.raises(DedupStoreError) as info:
            clone()
        assert info.value.transient is False and secret not in str(info.value)
        monkeypatch.setenv("NEWSMON_ES_API_KEY", secret)
        s = clone()
        try:
            assert s.window == timedelta(days=3) and s.accept_url("u", "https://x.id/u", now=T0) is True
        finally:
            s.close()
        monkeypatch.delenv("NEWSMON_ES_API_KEY")
        in_process = factory()  # used without pickling, the configured key is kept
        assert in_process.config.api_key == secret
        in_process.close()
    finally:
        test_server.auth = None  # before es_config's teardown deletes the index


def test_unavailable_cluster_is_a_transient_error(test_server: FaultProxy, store: ElasticsearchDedupStore) -> None:
    test_server.faults.fail_requests(503, times=20, path="_search")
    with pytest.raises(DedupStoreError) as info:
        store.candidates(text_hash="", bands=(1,), exclude_id="n")
    assert info.value.transient is True
    test_server.faults.clear()
    test_server.faults.reset_connections(times=20, path="/_doc/")
    with pytest.raises(DedupStoreError) as info:
        store.lookup("a")
    assert info.value.transient is True


def test_missing_index_is_a_permanent_error(test_server: FaultProxy, es_config: ElasticsearchConfig) -> None:
    s = ElasticsearchDedupStore(es_config)
    try:
        for call in (lambda: s.lookup("a"), lambda: s.candidates(text_hash="", bands=(1,), exclude_id="n")):
            with pytest.raises(DedupStoreError) as info:
                call()
            assert info.value.transient is False
    finally:
        s.close()


def test_constructor_validates_arguments(es_config: ElasticsearchConfig) -> None:
    for bad in ({"window_days": 0}, {"refresh": "sometimes"}, {"scan_size": 0}, {"lock_wait": -1}):
        with pytest.raises(ValueError):
            ElasticsearchDedupStore(es_config, **bad)  # type: ignore[arg-type]


# --- issue 13 item 2: an older article that turns up later becomes the original ----------------------


def test_an_older_article_decided_later_becomes_the_original(store: ElasticsearchDedupStore) -> None:
    from datetime import UTC as _UTC

    from tests.test_dedup import ORIGINAL, text

    now = datetime(2026, 1, 10, 9, 0, tzinfo=_UTC)

    def art(key: str, body: str, published: datetime, seen: datetime) -> Article:
        url = f"https://{key}.example/berita/{key}"
        return Article(
            id=article_id(url),
            url=url,
            canonical_url=url,
            source=key,
            title="Banjir rob",
            text=body,
            published=published,
            first_seen=seen,
        )

    copy = art("salinan", "SALINAN (update) - " + text(ORIGINAL), now, now)
    third = art("ketiga", text(ORIGINAL), now + timedelta(hours=1), now + timedelta(minutes=1))
    original = art("asli", text(ORIGINAL), datetime(2018, 3, 5, tzinfo=_UTC), now + timedelta(minutes=2))
    assert decide(copy, store, now=now).duplicate_of is None
    assert decide(third, store, now=now).duplicate_of == copy.id
    out = decide(original, store, now=now)
    assert out.duplicate_of is None
    assert {s.id for s in out.also_published_at} == {copy.id, third.id}
    old = store.lookup(copy.id)
    assert old is not None and old.duplicate_of == original.id and old.also_published_at == ()
    moved = store.lookup(third.id)
    assert moved is not None and moved.duplicate_of == original.id
    assert store.repoint(copy.id, original.id, kind="exact", similarity=1.0) == []  # idempotent
    fourth = art("keempat", text(ORIGINAL), now, now + timedelta(minutes=3))
    assert decide(fourth, store, now=now).duplicate_of == original.id
