"""Helpers to run ``newsmon`` as a subprocess in end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def newsmon_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    e["PYTHONPATH"] = str(REPO)
    e.update(extra)
    return e


def start_run(
    store: Path,
    feeds: Sequence[str],
    *extra: str,
    log_path: Path | None = None,
    environ: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    args = [
        "run",
        "--store",
        str(store),
        "--poll-interval",
        "1",
        "--allow-host",
        "127.0.0.1",
        "--metrics-port",
        "0",
    ]
    for f in feeds:
        args += ["--feed", f]
    out = open(log_path or store.parent / "newsmon.log", "ab")
    return subprocess.Popen(
        newsmon_cmd(*args, *extra),
        cwd=REPO,
        env=environ or env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def search(
    store: Path, query: str, *, environ: dict[str, str] | None = None, all_: bool = False
) -> list[dict]:
    if not store.exists():
        return []  # `run` has not created its store yet (search never creates one)
    args = ["search", query, "--store", str(store), "--json", "--limit", "100"] + (["--all"] if all_ else [])
    out = subprocess.run(newsmon_cmd(*args), cwd=REPO, env=environ or env(), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]


def wait_for(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.5, what: str = ""
) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value {last!r}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
    """Send ``sig`` and return how long the process took to exit (fails after ``timeout``)."""
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"newsmon did not stop within {timeout}s of {signal.Signals(sig).name}") from exc
    return time.monotonic() - start
