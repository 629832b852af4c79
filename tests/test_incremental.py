"""Issue 13 item 5: articles become searchable as their pages are fetched, not after a whole batch.

A fresh feed lists many items on one polite host (a second or so between requests), so its pages
trickle in over many seconds. The local driver must not wait for all of them before the first
one is searchable: batches close BATCH_WAIT after their first page, or when nothing is left in
flight.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors import metrics
from connectors.localindex import LocalIndex
from pipelines.config import Config, FeedConfig, FetchConfig
from pipelines.local import LocalDriver
from tests.localserver import LocalServer
from tests.newssite import NewsSite

pytestmark = pytest.mark.slow

ITEMS = 16
SPACING = 0.75  # seconds between two requests to the host: all pages take >= ITEMS * SPACING = 12 s


def _paragraphs(i: int) -> list[str]:
    return [
        f"Pemerintah Kabupaten {i} meresmikan jembatan baru yang menghubungkan dua kecamatan di wilayah itu pada "
        f"Senin pagi, setelah pembangunan yang berlangsung selama {i + 2} bulan.",
        f"Bupati mengatakan jembatan sepanjang {40 + i} meter itu akan memperlancar distribusi hasil panen petani "
        "dan mempersingkat waktu tempuh warga menuju pasar dan sekolah.",
        "Warga menyambut baik peresmian tersebut karena selama ini mereka harus memutar jauh melalui jalan desa "
        "yang rusak dan sering tergenang ketika musim hujan tiba.",
    ]


def test_first_article_is_searchable_seconds_after_its_page_arrives(tmp_path: Path) -> None:
    metrics.set_default(metrics.Metrics(CollectorRegistry()))
    with LocalServer() as server:
        site = NewsSite(server)
        for i in range(ITEMS):
            site.publish(f"Jembatan baru diresmikan di kabupaten nomor {i}", _paragraphs(i))
        cfg = Config(
            feeds=(FeedConfig(url=site.feed_url, id="uji", name="Kabar Uji", min_interval=60, max_interval=60),),
            store_dir=tmp_path / "store",
            fetch=FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=SPACING, per_host_concurrency=2,
                              timeout=60.0),
            metrics_port=0,
        )
        driver = LocalDriver(cfg)
        runner = threading.Thread(target=driver.run_forever, daemon=True)
        start = time.monotonic()
        runner.start()
        first_at: float | None = None
        searchable_then = 0
        try:
            index_path = tmp_path / "store" / "index.sqlite"
            while time.monotonic() - start < 90:
                count = LocalIndex(index_path).count() if index_path.exists() else 0
                if count and first_at is None:
                    first_at, searchable_then = time.monotonic() - start, count
                if count == ITEMS:
                    break
                time.sleep(0.1)
            all_at = time.monotonic() - start
        finally:
            driver.stop_event.set()
            runner.join(30)
            driver.close()
    assert LocalIndex(index_path).count() == ITEMS, "not every article was stored"
    assert all_at >= (ITEMS - 2) * SPACING, f"the host's spacing was not honoured ({all_at:.1f} s for all)"
    assert first_at is not None and first_at < 6.0, f"first article searchable only after {first_at} s"
    assert searchable_then < ITEMS // 2, f"{searchable_then} of {ITEMS} appeared at once: batches wait for the feed"
