"""CLI defects a new user hit (issue 13, items 7, 8, 9, 12, 13, 14, 16, 17).

Each test failed on the code before the fix: a traceback (an exception out of ``main``), a
wrong exit code, a store created by a read-only command, a second writer let in, or output
that hid what the index holds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from connectors import metrics
from connectors.localindex import LocalIndex
from connectors.storelock import StoreLock, store_owner
from pipelines.cli import EXIT_BROKEN_PIPE, build_parser, main
from tests.e2e import REPO, env, newsmon_cmd, start_run, stop, wait_for
from tests.e2e import search as e2e_search
from tests.localserver import LocalServer
from tests.newssite import NewsSite
from tests.test_local_driver import BANJIR, RUSIA_KORUT
from transforms.records import Article, Syndication, article_id

T0 = datetime(2024, 6, 19, 3, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _fresh_metrics(registry: CollectorRegistry) -> None:
    """Every test here counts on a fresh registry (the shared `registry` fixture)."""


def one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("newsmon: "), err
    return lines[0]


def art(url: str, title: str, text: str, *, hours: int = 0, **kw: object) -> Article:
    return Article(
        id=article_id(url), url=url, canonical_url=url, source=url.split("/")[2], title=title, text=text,
        published=T0 + timedelta(hours=hours), first_seen=T0 + timedelta(hours=hours), **kw,  # type: ignore[arg-type]
    )


def indexed_store(store: Path) -> tuple[Article, Article, Article]:
    """A store whose index holds an original, its syndicated copy and an unrelated article."""
    text = " ".join(RUSIA_KORUT)
    original = art("https://satu.example/rusia-korut", "Putin dan Kim teken perjanjian", text, story_id="story-1")
    copy = art("https://dua.example/salinan", "Putin dan Kim teken perjanjian", text, hours=2,
               duplicate_of=original.id, duplicate_kind="near", similarity=0.93, story_id="story-1")
    other = art("https://tiga.example/banjir", "Banjir rendam Bandung", " ".join(BANJIR), hours=1, story_id="story-2")
    index = LocalIndex.in_store(store)
    index.write([original, other])
    index.write([copy])
    index.close()
    return original, copy, other


# -- 7. metrics port in use -----------------------------------------------------------------------
def test_run_with_a_taken_metrics_port_says_which_and_how_to_change_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", "--store", str(store), "--feed", "http://127.0.0.1:9/rss.xml",
                     "--metrics-port", str(port)])
    assert code != 0
    line = one_clear_line(capsys.readouterr().err)
    assert f"metrics port {port} on 127.0.0.1 is already in use" in line
    assert "--metrics-port" in line and "0 picks any free port" in line
    StoreLock.acquire(store, command="test").release()  # the failed run let go of the store


def test_metrics_port_zero_binds_a_free_port() -> None:
    url = metrics.serve("127.0.0.1", 0, CollectorRegistry())
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert url == f"http://127.0.0.1:{port}/metrics" and port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


# -- 8. a store path that is a file or not writable -----------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["run", "--feed", "http://127.0.0.1:9/rss.xml", "--metrics-port", "0"],
        ["backfill", "--url", "http://127.0.0.1:9/a", "--quiet"],
        ["search", "banjir"],
        ["status"],
        ["deadletter", "list"],
    ],
    ids=lambda c: c[0],
)
def test_a_store_that_is_a_file_is_one_clear_line(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    store.write_text("not a directory\n")
    code = main([*command, "--store", str(store)])
    assert code not in (0, None)
    line = one_clear_line(capsys.readouterr().err)
    assert str(store) in line and "is a file" in line
    assert store.read_text() == "not a directory\n"


def test_dedup_store_under_a_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    empty = tmp_path / "in.jsonl"
    empty.write_text("")
    code = main(["dedup", str(empty), "--store", str(blocker / "dedup.sqlite")])
    assert code not in (0, None)
    line = one_clear_line(capsys.readouterr().err)
    assert str(blocker) in line


def _as_non_writer(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run newsmon so that file permissions bind it (as root: without the capability to override them)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv: permissions cannot be made to bind")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    return subprocess.run([*prefix, *newsmon_cmd(*args)], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture()
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    ro = tmp_path / "ro"
    ro.mkdir()
    try:
        yield ro
    finally:  # let pytest clean up
        for d in (ro, *ro.iterdir()):
            d.chmod(0o755)


@pytest.mark.parametrize("command", [["run", "--feed", "http://127.0.0.1:9/rss.xml", "--metrics-port", "0"],
                                     ["backfill", "--url", "http://127.0.0.1:9/a", "--quiet"]],
                         ids=lambda c: c[0])
def test_a_store_that_is_not_writable_is_one_clear_line(readonly_dir: Path, command: list[str]) -> None:
    store = readonly_dir / "store"
    store.mkdir()
    store.chmod(0o555)
    readonly_dir.chmod(0o555)
    out = _as_non_writer([*command, "--store", str(store)])
    assert out.returncode not in (0, None), out
    line = one_clear_line(out.stderr)
    assert f"store {store} is not writable" in line
    missing = readonly_dir / "new-store"  # its parent is read-only: cannot be created
    out = _as_non_writer([*command, "--store", str(missing)])
    assert out.returncode != 0
    assert f"cannot create store {missing}: {readonly_dir} is not writable" in one_clear_line(out.stderr)


# -- 9. a closed stdout (| head) ------------------------------------------------------------------
@pytest.mark.parametrize("command", [["search", "putin OR banjir", "--all"], ["status", "--metrics-url", "http://127.0.0.1:9/m"]],
                         ids=lambda c: c[0])
def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "store"
    indexed_store(store)
    from connectors.statestore import StateStore

    StateStore(store / "state.sqlite").close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before newsmon writes (`| head` after its lines)
    try:
        proc = subprocess.run(newsmon_cmd(*command, "--store", str(store)), cwd=REPO, env=env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == EXIT_BROKEN_PIPE


# -- 13. read-only commands never create a store ---------------------------------------------------
@pytest.mark.parametrize("command", [["search", "banjir"], ["status"], ["deadletter", "list"]], ids=lambda c: c[0])
def test_read_only_commands_do_not_create_a_store(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo"
    code = main([*command, "--store", str(typo)])
    assert code != 0
    assert one_clear_line(capsys.readouterr().err) == f"newsmon: no store at {typo}"
    assert not typo.exists()


def test_search_in_a_store_with_nothing_indexed_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connectors.statestore import StateStore

    store = tmp_path / "store"
    StateStore(store / "state.sqlite").close()  # `run` has started but indexed nothing
    assert main(["search", "banjir", "--store", str(store)]) == 0
    assert "no results" in capsys.readouterr().out
    assert main(["search", "banjir", "--store", str(store), "--json"]) == 0
    assert capsys.readouterr().out == ""  # --json: no lines, nothing else
    assert not (store / "index.sqlite").exists()


# -- 16. duplicate details in search output --------------------------------------------------------
def test_search_shows_duplicate_details(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    original, copy, _ = indexed_store(store)
    assert main(["search", "putin pyongyang", "--store", str(store), "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["id"] for h in hits] == [original.id]
    assert hits[0]["story_id"] == "story-1"
    assert hits[0]["duplicate_kind"] is None
    [syn] = hits[0]["also_published_at"]
    assert syn["url"] == copy.url and syn["source"] == "dua.example" and syn["kind"] == "near"

    assert main(["search", "putin pyongyang", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "also published at (1):" in out
    assert f"dua.example · near · 2024-06-19 05:00:00 · {copy.url}" in out
    assert "story story-1" in out

    assert main(["search", "putin pyongyang", "--store", str(store), "--all", "--json"]) == 0
    by_id = {h["id"]: h for h in map(json.loads, capsys.readouterr().out.splitlines())}
    assert by_id[copy.id]["duplicate_of"] == original.id and by_id[copy.id]["duplicate_kind"] == "near"
    assert main(["search", "putin pyongyang", "--store", str(store), "--all"]) == 0
    assert f"near duplicate of {original.id}" in capsys.readouterr().out


def test_syndication_in_json_is_what_the_index_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    original, copy, _ = indexed_store(store)
    index = LocalIndex.in_store(store, create=False)
    held = index.get(original.id)
    index.close()
    assert held is not None
    assert main(["search", "perjanjian", "--store", str(store), "--json"]) == 0
    hit = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hit["also_published_at"] == [s.to_dict() for s in held.also_published_at]
    assert Syndication.from_dict(hit["also_published_at"][0]).id == copy.id


# -- 17. input validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, problem",
    [
        (["run", "--poll-interval", "-5"], "--poll-interval: must be a positive number"),
        (["run", "--poll-interval", "0"], "--poll-interval: must be a positive number"),
        (["run", "--poll-interval", "nan"], "--poll-interval: must be a positive number"),
        (["run", "--metrics-port", "70000"], "--metrics-port: must be 0-65535"),
        (["search", "banjir", "--limit", "-3"], "--limit: must be at least 1"),
        (["search", "banjir", "--limit", "0"], "--limit: must be at least 1"),
    ],
)
def test_bad_numbers_are_refused(argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert problem in capsys.readouterr().err


def test_ipv6_feed_url_gets_a_valid_id(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["feeds", "check", "--feed", "http://[::1]:9/feed.xml"])
    captured = capsys.readouterr()
    assert "configuration error" not in captured.err
    assert code == 1  # the feed itself fails (nothing listens, and ::1 is private): reported, not a crash
    assert "ipv6-1-feed-xml-9" in captured.out


@pytest.mark.parametrize("argv", [["search", "-jokowi"], ["search", "banjir", "-jokowi"]])
def test_a_dash_word_in_a_query_gets_a_hint(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--store", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "newsmon search -- banjir -jokowi" in err


def test_exclusion_after_double_dash_and_or(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    original, _, other = indexed_store(store)
    assert main(["search", "--store", str(store), "--json", "--", "putin", "OR", "banjir"]) == 0
    assert {json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()} == {original.id, other.id}
    assert main(["search", "jokowi OR banjir", "--store", str(store), "--json"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [other.id]
    assert main(["search", "--store", str(store), "--json", "--", "putin", "OR", "banjir", "-bandung"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [original.id]
    assert main(["search", "banjir OR", "--store", str(store)]) == 2
    assert "OR needs words on both sides" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"newsmon {version('newsmon')}"


# -- 12 + 14. one writer per store; status reads the owner's metrics ------------------------------
def test_store_lock_names_its_holder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with StoreLock.acquire(store, command="run") as lock:
        lock.set_metrics_url("http://127.0.0.1:1234/metrics")
        owner, held = store_owner(store)
        assert held and owner is not None
        assert (owner.pid, owner.command, owner.metrics_url) == (os.getpid(), "run", "http://127.0.0.1:1234/metrics")
        with pytest.raises(Exception, match=rf"in use by pid {os.getpid()} on {socket.gethostname()} \(newsmon run, started "):
            StoreLock.acquire(store, command="run", wait=0.2)
    owner, held = store_owner(store)
    assert not held and owner is not None and owner.pid == os.getpid()
    StoreLock.acquire(store, command="backfill").release()


@pytest.mark.e2e
@pytest.mark.slow
def test_second_writer_refused_and_status_reads_the_owner(
    tmp_path: Path, quick_fetch: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    decoy_registry = CollectorRegistry()  # another process's exporter on the port status used to read
    Counter("newsmon_articles_tagged", "decoy", ["topic"], registry=decoy_registry).labels("decoy-topic").inc(99)
    decoy, _thread = start_http_server(0, addr="127.0.0.1", registry=decoy_registry)
    monkeypatch.setenv("NEWSMON_METRICS_PORT", str(decoy.server_port))
    with LocalServer() as server:
        site = NewsSite(server)
        site.publish("Putin dan Kim Jong Un teken perjanjian di Pyongyang", RUSIA_KORUT)
        proc = start_run(store, [site.feed_url], "--config", str(quick_fetch))
        try:
            wait_for(lambda: e2e_search(store, "pyongyang"), timeout=120, what="the article to be indexed")
            owner = wait_for(lambda: store_owner(store)[0], timeout=10, what="the lock file")
            assert owner.pid == proc.pid and owner.metrics_url  # type: ignore[attr-defined]

            for command in (["run", "--metrics-port", "0"], ["backfill", "--quiet"]):
                second = subprocess.run(
                    newsmon_cmd(*command, "--store", str(store), "--feed", site.feed_url, "--allow-host", "127.0.0.1"),
                    cwd=REPO, env=env(), capture_output=True, text=True, timeout=60,
                )
                assert second.returncode != 0, second
                line = one_clear_line(second.stderr)
                assert f"store {store} is in use by pid {proc.pid} on {socket.gethostname()}" in line
                assert "(newsmon run, started " in line

            def tagged() -> str | None:
                assert main(["status", "--store", str(store)]) == 0
                out = capsys.readouterr().out
                return out if "russia-dprk=1" in out else None

            out = str(wait_for(tagged, timeout=30, what="status to show the owner's topic count"))
            assert f"process: pid {proc.pid} on {socket.gethostname()}" in out
            assert f"metrics read from {owner.metrics_url}" in out  # type: ignore[attr-defined]
            assert "decoy-topic" not in out
        finally:
            stop(proc)
        decoy.shutdown()
    assert main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"no newsmon process holds this store (last: pid {proc.pid}" in out
    assert "decoy-topic" not in out


def test_search_on_opensearch_creates_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], opensearch_url: str
) -> None:
    monkeypatch.setenv("NEWSMON_OPENSEARCH_URL", opensearch_url)
    monkeypatch.setenv("NEWSMON_ES_INDEX", f"uji-nostore-{tmp_path.name.lower()}")
    monkeypatch.chdir(tmp_path)  # the default store, ./newsmon-data, must not appear either
    assert main(["setup", "opensearch"]) == 0
    capsys.readouterr()
    typo = tmp_path / "typo"
    assert main(["search", "putin", "--store", str(typo)]) == 0
    assert capsys.readouterr().out.strip() == "no results"
    assert main(["search", "putin", "--json"]) == 0
    assert not typo.exists() and not (tmp_path / "newsmon-data").exists()


def test_an_unusable_metrics_host_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--store", str(tmp_path / "s"), "--feed", "http://127.0.0.1:9/rss.xml",
                 "--metrics-host", "192.0.2.1", "--metrics-port", "0"])  # TEST-NET: not an address of ours
    assert code == 1
    line = one_clear_line(capsys.readouterr().err)
    assert "cannot serve metrics on 192.0.2.1:0" in line and "--metrics-host" in line
