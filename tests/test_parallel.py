"""Extraction in worker processes (``--workers 2``): nothing lost, decisions unchanged.

The same feed is processed by two drivers on fresh stores, one extracting in-process and one
with two extraction processes. Both must store every article exactly once, extract each from
its page, and take the same dedup decisions, including a copy that arrives in the same batch as
its original (the parallel path hands articles to dedup in completion order; dedup must still
see the original first).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors import metrics
from connectors.localindex import LocalIndex
from pipelines import extractpool
from pipelines.config import Config, FeedConfig, FetchConfig
from pipelines.local import LocalDriver
from tests.localserver import LocalServer
from tests.newssite import NewsSite
from transforms.records import article_id
from transforms.urls import canonical_url

pytestmark = pytest.mark.slow

TOWNS = ("Bandung Garut Cianjur Sumedang Tasikmalaya Ciamis Kuningan Majalengka Indramayu Subang Purwakarta "
         "Karawang Bekasi Bogor Sukabumi Cirebon Banjar Pangandaran Depok Cimahi Serang Lebak Pandeglang").split()


def _story(i: int, town: str) -> tuple[str, list[str]]:
    return (
        f"Pasar tradisional {town} direnovasi, pedagang pindah sementara",
        [
            f"Pemerintah Kabupaten {town} mulai merenovasi pasar tradisional terbesar di wilayahnya pada pekan ini, "
            f"dengan anggaran sekitar {i + 3} miliar rupiah dari dana daerah.",
            f"Sebanyak {200 + 17 * i} pedagang dipindahkan sementara ke lapangan di dekat kantor kecamatan, tempat "
            "kios darurat dari bambu dan terpal telah disiapkan sejak bulan lalu.",
            f"Kepala dinas perdagangan {town} mengatakan renovasi ditargetkan selesai dalam {i % 5 + 4} bulan dan "
            "pedagang lama akan mendapat prioritas menempati kios baru tanpa biaya tambahan.",
            f"Sejumlah pedagang sayur di {town} mengeluhkan sepinya pembeli di lokasi sementara, tetapi berharap "
            "bangunan baru lebih bersih dan tidak lagi tergenang ketika hujan deras.",
        ],
    )


def _run(tmp_path: Path, feed_url: str, workers: int) -> tuple[LocalIndex, dict[str, float | None], dict[str, int]]:
    registry = CollectorRegistry()
    metrics.set_default(metrics.Metrics(registry))
    cfg = Config(
        feeds=(FeedConfig(url=feed_url, id="uji", name="Kabar Uji"),),
        store_dir=tmp_path / f"store-{workers}",
        fetch=FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, per_host_concurrency=8),
        metrics_port=0,
    )
    driver = LocalDriver(cfg, workers=workers)
    try:
        report = driver.cycle(force_all=True)
        assert not report.errors, report.errors
        counts = driver.state.counts()
    finally:
        driver.close()
    get = registry.get_sample_value
    outcomes = {o: get("newsmon_articles_extracted_total", {"outcome": o}) or 0 for o in ("ok", "feed_fallback", "error")}
    return LocalIndex.in_store(cfg.store_dir), outcomes, counts


def test_two_extraction_processes_lose_nothing_and_dedup_a_copy_in_the_same_batch(tmp_path: Path) -> None:
    with LocalServer() as server:
        site = NewsSite(server)
        t0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
        stories = [site.publish(*_story(i, town), published=t0 + timedelta(minutes=i)) for i, town in enumerate(TOWNS)]
        original = stories[3]
        # the copy: same body under another headline and URL, published later, listed first in the
        # same feed poll (so fetched, extracted and decided in the same batch as its original)
        copy = site.publish("SALINAN: " + original.title, list(original.paragraphs), published=t0 + timedelta(hours=5))
        n = len(stories) + 1
        results = {workers: _run(tmp_path, site.feed_url, workers) for workers in (1, 2)}
    extractpool.shutdown()
    original_id = article_id(canonical_url(site.url_of(original)))
    copy_id = article_id(canonical_url(site.url_of(copy)))
    decisions = {}
    for workers, (index, outcomes, counts) in results.items():
        assert index.count() == n, f"workers={workers}: stored {index.count()} of {n}"
        assert counts == {"pending": 0, "outbox": 0, "failed": 0}, (workers, counts)
        assert outcomes == {"ok": n, "feed_fallback": 0, "error": 0}, (workers, outcomes)
        dup = index.get(copy_id)
        assert dup is not None and dup.duplicate_of == original_id and dup.duplicate_kind == "exact", workers
        assert index.get(original_id).duplicate_of is None  # type: ignore[union-attr]
        decisions[workers] = {
            aid: (a.duplicate_of, a.duplicate_kind, a.story_id, a.title, a.text, a.language)
            for aid in index.ids()
            if (a := index.get(aid)) is not None
        }
    assert decisions[2] == decisions[1], "the parallel path changed an article or a dedup decision"


def test_worker_processes_do_not_outlive_a_killed_driver(tmp_path: Path) -> None:
    import os
    import signal
    import time

    import psutil

    from tests.e2e import start_run, wait_for

    with LocalServer() as server:
        site = NewsSite(server)
        proc = start_run(tmp_path / "store", [site.feed_url], "--workers", "2")
        try:
            root = psutil.Process(proc.pid)

            def extraction_workers() -> list[psutil.Process] | None:
                found = [p for p in root.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
                return found if len(found) >= 2 else None

            workers = wait_for(extraction_workers, timeout=60, what="two extraction workers")
            assert len(workers) == 2  # type: ignore[arg-type]
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):  # type: ignore[union-attr]
        time.sleep(0.2)
    left = [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]  # type: ignore[union-attr]
    for pid in left:  # do not leave them behind if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"extraction workers {left} outlived the killed driver"


def test_ctrl_c_on_the_process_group_stops_workers_without_tracebacks(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the driver and its extraction workers at once: the driver
    stops cleanly and the workers print no KeyboardInterrupt traceback."""
    import os
    import signal

    import psutil

    from tests.e2e import start_run, wait_for

    log = tmp_path / "newsmon.log"
    with LocalServer() as server:
        site = NewsSite(server)
        proc = start_run(tmp_path / "store", [site.feed_url], "--workers", "2", log_path=log)
        try:
            root = psutil.Process(proc.pid)

            def ignores_sigint(pid: int) -> bool:  # the worker's initializer has run
                status = Path(f"/proc/{pid}/status").read_text()
                ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
                return bool(ignored & (1 << (signal.SIGINT - 1)))

            def workers_ready() -> bool | None:
                found = [p for p in root.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
                return True if len(found) >= 2 and all(ignores_sigint(p.pid) for p in found) else None

            wait_for(workers_ready, timeout=60, what="two extraction workers")
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
