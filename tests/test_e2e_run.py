"""End to end: `newsmon run` as a subprocess against a local news site built from the seeds."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e import search, start_run, stop, wait_for
from tests.localserver import LocalServer
from tests.newssite import NewsSite, seed_stories

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture()
def seeds() -> list[tuple[str, list[str]]]:
    stories = seed_stories()
    if len(stories) < 5:
        pytest.skip("../shared/seeds absent: the end-to-end test serves the five seed articles")
    return stories


def test_run_streams_new_items_into_the_searchable_store(
    tmp_path: Path, seeds: list[tuple[str, list[str]]]
) -> None:
    store = tmp_path / "store"
    with LocalServer() as server:
        site = NewsSite(server)
        for title, paras in seeds[:4]:
            site.publish(title, paras)
        proc = start_run(store, [site.feed_url], log_path=tmp_path / "run.log")
        try:
            hits = wait_for(
                lambda: len(search(store, "putin")) >= 4 and search(store, "putin"),
                timeout=90,
                what="the first four seeds to be searchable",
            )
            assert {h["url"] for h in hits} == {site.url_of(s) for s in site.stories}
            for h in hits:
                assert h["source"] and h["title"] and h["published"]
                assert "russia-dprk" in h["topics"], h
            # a new item appears while the pipeline runs
            title, paras = seeds[4]
            published_at = time.monotonic()
            new = site.publish(title, paras)
            found = wait_for(
                lambda: [h for h in search(store, "Stoltenberg") if h["url"] == site.url_of(new)],
                timeout=30,
                what="the new item to be searchable",
            )
            latency = time.monotonic() - published_at
            print(f"\nnew item searchable {latency:.1f}s after it appeared in the feed (poll interval 1s)")
            assert set(found[0]["topics"]) == {"russia-dprk", "nato-reaction"}
            assert proc.poll() is None, "newsmon exited on its own"
        finally:
            took = stop(proc, signal.SIGTERM, timeout=10)
        log = (tmp_path / "run.log").read_text(errors="replace")
        assert proc.returncode == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        print(f"stopped {took:.1f}s after SIGTERM")
        # a restart neither re-fetches nor re-writes what it already has
        fetched_before = sum(1 for r in server.requests if r.path.startswith("/berita/"))
        proc = start_run(store, [site.feed_url], log_path=tmp_path / "run2.log")
        try:
            wait_for(
                lambda: sum(1 for r in server.requests if r.path == "/rss.xml") >= 2,
                timeout=60,
                what="a poll after restart",
            )
            time.sleep(3)
        finally:
            stop(proc, signal.SIGINT, timeout=10)
        assert sum(1 for r in server.requests if r.path.startswith("/berita/")) == fetched_before
        assert len(search(store, "putin", all_=True)) == 5
