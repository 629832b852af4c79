"""End to end on a real Beam runner: `newsmon run --runner PrismRunner` against a local news site.

Prism is Beam's Go runner, built at the version of the installed apache-beam by `.ci/prism.sh`
(which `make test` runs first; this module runs it too and it is instant once cached) and
given to newsmon with `--prism_location`, so nothing is downloaded at run time. The sink is
the real OpenSearch test node (tests/opensearchnode.py, through `NEWSMON_OPENSEARCH_URL`) or the
embedded index. The five seed articles are served from `../shared/seeds`; the test skips when
they are absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import REPO, env, newsmon_cmd, search, start_run, stop, wait_for
from tests.localserver import LocalServer
from tests.newssite import NewsSite, seed_stories

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLL = 1.0  # --poll-interval given to newsmon (start_run)


@pytest.fixture(scope="session")
def prism_binary() -> str:
    """The Prism binary: $NEWSMON_TEST_PRISM, else built (or found in .cache/) by .ci/prism.sh."""
    given = os.environ.get("NEWSMON_TEST_PRISM")
    if given:
        assert Path(given).is_file(), f"NEWSMON_TEST_PRISM={given} is not a file"
        return given
    out = subprocess.run(["bash", str(REPO / ".ci" / "prism.sh")], cwd=REPO, capture_output=True, text=True,
                         timeout=1800, check=False)
    if out.returncode == 2:  # the script's "cannot build here" code: no Go toolchain / no apache-beam
        reason = f"cannot build Prism: {out.stderr.strip().splitlines()[-1]}"
        if os.environ.get("NEWSMON_REQUIRE_PRISM") == "1":  # make test: the real runner is required
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    assert out.returncode == 0, f".ci/prism.sh failed:\n{out.stderr[-3000:]}"
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture()
def seeds() -> list[tuple[str, list[str]]]:
    stories = seed_stories()
    if len(stories) < 5:
        pytest.skip("../shared/seeds absent: the streaming end-to-end test serves the five seed articles")
    return stories


def node_call(url: str, method: str = "GET") -> Any:
    """Straight to the node (no client under test), for cleanup and assertions."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - local test node
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"null")


@pytest.fixture(params=["opensearch", "localindex"])
def sink_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment for newsmon: the real OpenSearch node (own index prefix) or the embedded index."""
    if request.param == "localindex":
        yield env()
        return
    url = request.getfixturevalue("opensearch_url")
    prefix = f"nmprism-{uuid.uuid4().hex[:10]}"
    environ = env(NEWSMON_OPENSEARCH_URL=url, NEWSMON_ES_INDEX=prefix)
    setup_opensearch(environ)
    yield environ
    node_call(f"{url}/{prefix}-*?allow_no_indices=true&ignore_unavailable=true&expand_wildcards=all", "DELETE")
    node_call(f"{url}/_index_template/{prefix}-articles", "DELETE")


def setup_opensearch(environ: dict[str, str]) -> None:
    """`newsmon setup opensearch`, as an operator runs it before the first `run`."""
    out = subprocess.run(newsmon_cmd("setup", "opensearch"), cwd=REPO, env=environ, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()


def opensearch_documents(environ: dict[str, str]) -> list[dict[str, Any]]:
    """Every article document under the test's prefix, as the node has it (all monthly indices)."""
    url, prefix = environ["NEWSMON_OPENSEARCH_URL"], environ["NEWSMON_ES_INDEX"]
    node_call(f"{url}/{prefix}-articles-*/_refresh?allow_no_indices=true", "POST")
    resp = node_call(f"{url}/{prefix}-articles-*/_search?allow_no_indices=true&size=1000")
    return list((resp or {}).get("hits", {}).get("hits", []))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """Each newsmon_* counter of the exporter on ``port``, summed over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:  # noqa: S310 - local
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def children_of(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.update(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture()
def runs(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `newsmon run` processes; any still running at the end is killed (by pid)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = start_run(*args, **kwargs)  # type: ignore[arg-type]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            for child in children_of(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.kill()
            proc.wait()


def still_running(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Fails the test at once, with the log's tail, if newsmon has exited."""
    if proc.poll() is not None:
        raise AssertionError(f"newsmon exited ({proc.returncode}):\n" + log.read_text(errors="replace")[-4000:])
    return True


def poll_search(store: Path, query: str, environ: dict[str, str], *, all_: bool = False) -> list[dict[str, Any]]:
    """`newsmon search` for wait loops: a refusal while the engine creates a new monthly index
    (503 "all shards failed" for a moment) counts as "not yet"."""
    try:
        return search(store, query, environ=environ, all_=all_)
    except AssertionError as exc:
        if "all shards failed" in str(exc) or "no_shard_available" in str(exc):
            return []
        raise


def diagnose(server: LocalServer, store: Path, slug: str, log: Path) -> str:
    """Where an item got stuck: was its page requested, is it still pending, what did newsmon log."""
    import sqlite3

    requested = [r.path for r in server.requests if r.path.endswith(slug)]
    with sqlite3.connect(store / "state.sqlite") as conn:
        pending = conn.execute("SELECT id, attempts, accepted_at, next_attempt_at FROM pending").fetchall()
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if not ln.startswith((" ", "\t"))][-25:]
    return f"page requests: {requested}\npending: {pending}\nnow: {time.time()}\nlog tail:\n" + "\n".join(tail)


def page_fetches(server: LocalServer) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/berita/"))


def feed_polls(server: LocalServer) -> int:
    return sum(1 for r in server.requests if r.path == "/rss.xml")


def test_prism_streams_seeds_new_items_and_copies_and_stops_cleanly(
    tmp_path: Path, seeds: list[tuple[str, list[str]]], prism_binary: str,
    runs: Callable[..., subprocess.Popen[bytes]], sink_env: dict[str, str],
) -> None:
    store = tmp_path / "store"
    environ = sink_env
    metrics_port = free_port()
    runner = ("--runner", "PrismRunner", f"--prism_location={prism_binary}")
    with LocalServer() as server:
        site = NewsSite(server)
        for title, paras in seeds[:4]:
            site.publish(title, paras)
        log1 = tmp_path / "run1.log"
        proc = runs(store, [site.feed_url], *runner, "--metrics-port", str(metrics_port), log_path=log1, environ=environ)
        try:
            started = time.monotonic()
            hits = wait_for(lambda: still_running(proc, log1) and (h := poll_search(store, "putin", environ))
                            and len(h) >= 4 and h,
                            timeout=180, what="the first four seeds to be searchable")
            print(f"\nfirst four seeds searchable {time.monotonic() - started:.1f}s after start (Prism start-up included)")
            assert {h["url"] for h in hits} == {site.url_of(s) for s in site.stories}
            for h in hits:
                assert h["title"] and h["published"] and h["source"], h
                assert "russia-dprk" in h["topics"], h
                assert h["duplicate_of"] is None, h

            # the DoFns run in this process: the launcher's exporter shows their counters
            counters = scrape(metrics_port)
            assert counters.get("newsmon_articles_indexed_total", 0) >= 4, counters
            assert counters.get("newsmon_feed_polls_total", 0) >= 1, counters
            assert counters.get("newsmon_articles_tagged_total", 0) >= 4, counters

            # an item added to the feed while the job runs
            title, paras = seeds[4]
            published_at = time.monotonic()
            fifth = site.publish(title, paras)
            try:
                found = wait_for(lambda: still_running(proc, log1) and [
                    h for h in poll_search(store, "Stoltenberg", environ) if h["url"] == site.url_of(fifth)],
                    timeout=15 * POLL + 15, what="the new item to be searchable")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{diagnose(server, store, fifth.slug, log1)}") from None
            latency = time.monotonic() - published_at
            print(f"new item searchable {latency:.1f}s after it appeared in the feed (poll interval {POLL:.0f}s)")
            assert set(found[0]["topics"]) == {"russia-dprk", "nato-reaction"}, found[0]

            # the same story published again under a second URL
            original = site.stories[0]
            copy = site.publish(original.title, original.paragraphs, slug="salinan-" + original.slug)
            copies = wait_for(lambda: still_running(proc, log1) and [h for h in poll_search(store, "putin", environ, all_=True)
                                       if h["url"] == site.url_of(copy)],
                              timeout=15 * POLL + 15, what="the copy to be indexed")
            original_id = next(h["id"] for h in hits if h["url"] == site.url_of(original))
            assert copies[0]["duplicate_of"] == original_id, copies[0]
            visible = search(store, "putin", environ=environ)
            assert site.url_of(copy) not in {h["url"] for h in visible}, "a duplicate is shown by default"
            assert proc.poll() is None, "newsmon exited on its own:\n" + log1.read_text(errors="replace")[-3000:]
            runner_pids = children_of(proc.pid)
            assert runner_pids, "no Prism subprocess found under newsmon"
        finally:
            took = stop(proc, signal.SIGTERM, timeout=10)
        log = log1.read_text(errors="replace")
        print(f"stopped {took:.1f}s after SIGTERM")
        assert proc.returncode == 0, log[-3000:]
        assert "Traceback" not in log, log[-5000:]
        assert "newsmon: stopped" in log, log[-3000:]
        assert not [pid for pid in runner_pids if alive(pid)], "the Prism subprocess outlived newsmon"
        all_before = {h["id"] for h in search(store, "putin", environ=environ, all_=True)}
        assert len(all_before) == 6

        # a restart fetches nothing again and indexes nothing twice
        fetched_before, polls_before = page_fetches(server), feed_polls(server)
        log2 = tmp_path / "run2.log"
        proc = runs(store, [site.feed_url], *runner, log_path=log2, environ=environ)
        try:
            wait_for(lambda: still_running(proc, log2) and feed_polls(server) >= polls_before + 3, timeout=120, what="three polls after restart")
            assert proc.poll() is None, log2.read_text(errors="replace")[-3000:]
        finally:
            stop(proc, signal.SIGINT, timeout=10)
        assert proc.returncode == 0, log2.read_text(errors="replace")[-3000:]
        assert page_fetches(server) == fetched_before
        after = search(store, "putin", environ=environ, all_=True)
        assert len(after) == 6 and {h["id"] for h in after} == all_before
        if "NEWSMON_OPENSEARCH_URL" in environ:  # one document per article across the monthly indices
            docs = opensearch_documents(environ)
            assert sorted(d["_id"] for d in docs) == sorted(all_before), [d["_index"] for d in docs]
            by_id = {d["_id"]: d["_source"] for d in docs}
            syndicated = by_id[original_id].get("also_published_at") or []
            assert [s["url"] for s in syndicated] == [site.url_of(copy)], syndicated


def test_prism_job_survives_a_search_engine_outage(
    tmp_path: Path, seeds: list[tuple[str, list[str]]], prism_binary: str, opensearch_url: str,
    runs: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Prism fails a whole job on one bundle error: bulk writes refused for ~20 s must not kill it."""
    from tests.faultserver import FaultProxy

    store = tmp_path / "store"
    prefix = f"nmprism-{uuid.uuid4().hex[:10]}"
    runner = ("--runner", "PrismRunner", f"--prism_location={prism_binary}")
    with FaultProxy(opensearch_url, elasticsearch=False) as proxy, LocalServer() as server:
        environ = env(NEWSMON_OPENSEARCH_URL=proxy.url, NEWSMON_ES_INDEX=prefix)
        try:
            setup_opensearch(environ)
            site = NewsSite(server)
            site.publish(*seeds[0])
            log = tmp_path / "run.log"
            proc = runs(store, [site.feed_url], *runner, log_path=log, environ=environ)
            try:
                wait_for(lambda: still_running(proc, log) and poll_search(store, "putin", environ),
                         timeout=180, what="the first seed to be searchable")
                # the engine refuses every bulk request for a while: more than the sink's own retries
                proxy.faults.fail_requests(503, times=8, path="_bulk")
                second = site.publish(*seeds[1])
                wait_for(lambda: still_running(proc, log) and [h for h in poll_search(store, "putin", environ)
                                                               if h["url"] == site.url_of(second)],
                         timeout=120, what="the article written during the outage to be searchable")
                refused = [r for r in proxy.requests_to("_bulk")]
                assert len(refused) >= 9, f"only {len(refused)} bulk requests: the outage was not exercised"
                assert "articles waiting" in log.read_text(errors="replace")
            finally:
                stop(proc, signal.SIGTERM, timeout=10)
            assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
            assert "Traceback" not in log.read_text(errors="replace")
        finally:
            node_call(f"{opensearch_url}/{prefix}-*?allow_no_indices=true&ignore_unavailable=true&expand_wildcards=all",
                      "DELETE")
            node_call(f"{opensearch_url}/_index_template/{prefix}-articles", "DELETE")


def test_a_missing_prism_binary_is_one_line_and_exit_1(tmp_path: Path) -> None:
    out = subprocess.run(
        newsmon_cmd("run", "--store", str(tmp_path / "store"), "--metrics-port", "0", "--feed", "http://127.0.0.1:9/rss.xml",
                    "--runner", "PrismRunner", f"--prism_location={tmp_path / 'no-such-prism'}"),
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("newsmon: could not run on PrismRunner:") and "--prism_location=PATH" in last, out.stderr


def test_prism_retries_a_failing_page_and_loses_nothing_to_kill_9(
    tmp_path: Path, seeds: list[tuple[str, list[str]]], prism_binary: str,
    runs: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """A page that answers 503 once is fetched again; an entry in flight when newsmon is killed
    (kill -9, Prism with it) is processed after the restart. Entries leave the state store's
    pending queue only when the sink has acknowledged them."""
    from tests.localserver import Request, Route
    from tests.newssite import article_page

    store = tmp_path / "store"
    config = tmp_path / "newsmon.yaml"
    config.write_text("fetch: {timeout: 5}\n")  # lease before re-emission: 2 x 5 + 3 x 1 + 10 = 23 s
    runner = ("--config", str(config), "--runner", "PrismRunner", f"--prism_location={prism_binary}")
    environ = env()
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish(*seeds[0])
        flaky = site.publish(*seeds[1])
        page = Route(body=article_page(flaky, site.name).encode(), headers={"Content-Type": "text/html; charset=utf-8"})
        calls: list[float] = []

        def once_503(_request: Request) -> Route:
            calls.append(time.monotonic())
            return Route(status=503, headers={"Retry-After": "1"}) if len(calls) == 1 else page

        server.route(f"/berita/{flaky.slug}", once_503)
        log1 = tmp_path / "run1.log"
        proc = runs(store, [site.feed_url], *runner, log_path=log1, environ=environ)
        try:
            hits = wait_for(lambda: still_running(proc, log1) and [h for h in poll_search(store, "putin", environ)
                                                                   if h["url"] == site.url_of(flaky)],
                            timeout=180, what="the page that failed once to be indexed from its page")
            assert len(calls) == 2, calls
            assert hits[0]["title"] == flaky.title
            # an entry whose page is slow is in flight when newsmon and Prism are killed
            slow = site.publish(*seeds[2])
            server.route(f"/berita/{slow.slug}", Route(body=article_page(slow, site.name).encode(), delay=3.0,
                                                       headers={"Content-Type": "text/html; charset=utf-8"}))
            wait_for(lambda: still_running(proc, log1) and any(r.path == f"/berita/{slow.slug}" for r in server.requests),
                     timeout=60, what="the slow page to be requested")
        finally:
            for child in children_of(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.kill()
            proc.wait()
        assert site.url_of(slow) not in {h["url"] for h in search(store, "putin", environ=environ, all_=True)}
        log2 = tmp_path / "run2.log"
        proc = runs(store, [site.feed_url], *runner, log_path=log2, environ=environ)
        try:
            wait_for(lambda: still_running(proc, log2) and [h for h in poll_search(store, "putin", environ)
                                                            if h["url"] == site.url_of(slow)],
                     timeout=120, what="the entry in flight at kill -9 to be indexed after the restart")
        finally:
            stop(proc, signal.SIGTERM, timeout=10)
        assert proc.returncode == 0, log2.read_text(errors="replace")[-3000:]
        everything = search(store, "putin", environ=environ, all_=True)
        assert sorted(h["url"] for h in everything) == sorted(site.url_of(s) for s in site.stories)
