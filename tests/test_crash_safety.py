"""Faults against the real pipeline (a subprocess) writing to the real OpenSearch test node
(directly with the opensearch-py client, or with the elasticsearch client through the fault
proxy of tests/faultserver.py, which also cuts every connection to play an outage):

- ``kill -9`` while articles are in flight, several times: every published article ends up
  indexed exactly once, and dedup still recognises articles from before the crash;
- the cluster goes away (every connection reset) and comes back: the backlog is kept on disk,
  drains, and nothing is lost; secrets never reach logs or metrics.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from tests.e2e import env, newsmon_cmd, start_run, stop, wait_for
from tests.faultserver import FaultProxy
from tests.localserver import LocalServer
from tests.newssite import NewsSite
from tests.promstack import free_port
from transforms.records import article_id
from transforms.urls import canonical_url

pytestmark = [pytest.mark.hostile, pytest.mark.e2e, pytest.mark.slow]

WORDS = (
    "pemerintah warga kota desa sekolah pasar harga beras minyak jalan tol banjir hujan musim panen petani nelayan "
    "pelabuhan kapal pesawat bandara kereta stasiun rumah sakit dokter pasien obat vaksin guru murid ujian kampus "
    "mahasiswa pabrik buruh upah pajak anggaran proyek jembatan listrik air bersih sampah sungai hutan gunung pantai "
    "wisata hotel festival musik film buku perpustakaan polisi jaksa hakim sidang putusan partai pemilu calon suara "
    "rapat dewan menteri gubernur bupati camat lurah koperasi bank kredit saham rupiah ekspor impor kopi teh cokelat"
).split()


def story_text(seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    title = " ".join(rng.sample(WORDS, 6)).capitalize() + f" ({seed})"
    paras = [" ".join(rng.choices(WORDS, k=45)).capitalize() + "." for _ in range(4)]
    return title, paras


def es_env(url: str, prefix: str, *, engine: str = "elasticsearch", **extra: str) -> dict[str, str]:
    var = "NEWSMON_OPENSEARCH_URL" if engine == "opensearch" else "NEWSMON_ES_URL"
    return env(**{var: url}, NEWSMON_ES_INDEX=prefix, **extra)


def setup_es(environ: dict[str, str]) -> None:
    out = subprocess.run(newsmon_cmd("setup", "elasticsearch"), env=environ, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]


def indexed(es: FaultProxy, prefix: str) -> list[tuple[str, dict]]:
    return [(doc_id, src) for (_, doc_id), src in es.documents(f"{prefix}-articles-*").items()]


def expected_id(site: NewsSite, story: object) -> str:
    return article_id(canonical_url(site.url_of(story)))  # type: ignore[arg-type]


def test_kill_9_in_flight_loses_nothing_and_indexes_nothing_twice(tmp_path: Path, opensearch_url: str) -> None:
    store = tmp_path / "store"
    prefix = f"uji-{uuid.uuid4().hex[:8]}"
    with FaultProxy(opensearch_url) as es, LocalServer() as server:  # the proxy only reads the node here
        environ = es_env(opensearch_url, prefix, engine="opensearch")
        setup_es(environ)
        site = NewsSite(server)
        stories = [site.publish(*story_text(i)) for i in range(3)]
        proc = start_run(store, [site.feed_url], environ=environ, log_path=tmp_path / "run.log")
        rng = random.Random(42)
        kills = 0
        try:
            for round_ in range(4):
                for i in range(6):
                    stories.append(site.publish(*story_text(100 * (round_ + 1) + i)))
                    time.sleep(rng.uniform(0.05, 0.4))
                time.sleep(rng.uniform(0.2, 1.5))  # somewhere in poll / fetch / pipeline / bulk
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = start_run(store, [site.feed_url], environ=environ, log_path=tmp_path / "run.log")
            want = {expected_id(site, s) for s in stories}
            wait_for(lambda: {i for i, _ in indexed(es, prefix)} >= want, timeout=120,
                     what=f"all {len(want)} published articles to be indexed after {kills} kills")
            time.sleep(2)  # anything still in flight would show up as an extra document now
            docs = indexed(es, prefix)
            ids = [i for i, _ in docs]
            assert len(ids) == len(set(ids)), "an article was indexed twice (in two indices)"
            assert set(ids) == want
            # dedup still knows what came before the crashes: an exact copy under a new URL and headline
            first = stories[0]
            copy = site.publish("Salinan: " + first.title, first.paragraphs, slug="salinan-berita-pertama")
            copy_id = expected_id(site, copy)
            wait_for(lambda: copy_id in dict(indexed(es, prefix)), timeout=60, what="the copy to be indexed")
            src = dict(indexed(es, prefix))[copy_id]
            assert src["duplicate_of"] == expected_id(site, first)
            assert src["duplicate_kind"] == "exact"
            original = dict(indexed(es, prefix))[expected_id(site, first)]
            assert copy_id in {s["id"] for s in original.get("also_published_at", [])}
        finally:
            stop(proc, signal.SIGTERM, timeout=15)
    print(f"\n{len(stories)} articles published, newsmon killed -9 {kills} times: each indexed exactly once")


def test_cluster_outage_backlog_drains_and_secrets_stay_secret(tmp_path: Path, opensearch_url: str) -> None:
    store = tmp_path / "store"
    port = free_port()
    prefix = f"uji-{uuid.uuid4().hex[:8]}"
    api_key = "bmV3c21vbjpzdXBlci1zZWNyZXQta2V5LTQyNDI="
    with FaultProxy(opensearch_url, elasticsearch=True) as es, LocalServer() as server:
        es.auth = lambda headers: headers.get("authorization") == f"ApiKey {api_key}"
        environ = es_env(es.url, prefix, NEWSMON_ES_API_KEY=api_key)
        setup_es(environ)
        site = NewsSite(server)
        before = [site.publish(*story_text(i)) for i in range(2)]
        proc = start_run(store, [site.feed_url], "--metrics-port", str(port), environ=environ,
                         log_path=tmp_path / "run.log")
        try:
            wait_for(lambda: len(indexed(es, prefix)) == 2, timeout=60, what="the first articles")
            es.faults.reset_connections(times=10**9, path="")  # the cluster is gone
            during = [site.publish(*story_text(50 + i)) for i in range(6)]
            backlog = wait_for(lambda: _gauge(port, "newsmon_index_backlog") >= 6 and _gauge(port, "newsmon_index_backlog"),
                               timeout=90, what="the backlog to hold the articles published during the outage")
            time.sleep(20)  # stays down a while: polls go on, nothing is dropped
            rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
            assert proc.poll() is None
            assert len(indexed(es, prefix)) == 2
            es.faults.clear()  # back
            want = {expected_id(site, s) for s in before + during}
            wait_for(lambda: {i for i, _ in indexed(es, prefix)} == want, timeout=120, what="the backlog to drain")
            wait_for(lambda: _gauge(port, "newsmon_index_backlog") == 0, timeout=30, what="backlog gauge back to 0")
            metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            failed = _gauge(port, 'newsmon_articles_indexed_total{outcome="failed",sink="elasticsearch"}')
        finally:
            stop(proc, signal.SIGTERM, timeout=15)
    log = (tmp_path / "run.log").read_text(errors="replace")
    print(f"\noutage: backlog peaked at >= {backlog:.0f}, RSS {rss_mb:.0f} MB while down, {failed:.0f} failed writes counted")
    assert failed >= 1
    assert rss_mb < 600
    assert "unavailable" in log.lower() or "unreachable" in log.lower()
    for secret in (api_key, "super-secret-key"):
        assert secret not in log and secret not in metrics_text


def _gauge(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    want_name, _, want_labels = name.partition("{")
    labels = dict(p.split("=", 1) for p in want_labels.rstrip("}").split(",") if p) if want_labels else {}
    labels = {k: v.strip('"') for k, v in labels.items()}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == want_name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return float("nan")
