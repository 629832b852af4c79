"""A real OpenSearch 2.19 node for the tests, in one JVM on 127.0.0.1.

`.ci/opensearch.sh` fetches OpenSearch's server and module jars from Maven Central into
`.cache/m2` and compiles the launcher in `.ci/opensearch/`; this module starts that launcher
(`newsmon.testnode.TestNode`), waits until the cluster is green or yellow, and stops it.
The node keeps its data under its home folder, so `stop()` then `start()` is a restart with the
same indices on the same port (the crash-recovery tests use that).

Use it through the fixtures in `tests/conftest.py` (`opensearch_url`, `opensearch_node`).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / ".ci" / "opensearch.sh"
TARGET = REPO / ".cache" / "opensearch" / "target"
MAIN_CLASS = "newsmon.testnode.TestNode"
JVM_OPTIONS = (
    "-Xms512m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
)


class NodeUnavailable(RuntimeError):
    """The node could not be built or started; the message says why in one line."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def classpath() -> str:
    """The launcher's classpath; builds it with .ci/opensearch.sh when it is missing."""
    cp_file = TARGET / "classpath.txt"
    if not cp_file.is_file() or not (TARGET / "classes").is_dir():
        if shutil.which("java") is None:
            raise NodeUnavailable("no 'java' on PATH (OpenSearch test node needs a JDK 17: make test installs it)")
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if done.returncode != 0 or not cp_file.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise NodeUnavailable(f".ci/opensearch.sh failed: {tail[0]}")
    return f"{TARGET / 'classes'}{os.pathsep}{cp_file.read_text().strip()}"


def _get_json(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local test node
        return json.loads(resp.read().decode())


class OpenSearchNode:
    """One OpenSearch node process. `url` is stable across stop()/start()."""

    def __init__(self, home: Path, http_port: int | None = None, transport_port: int | None = None) -> None:
        self.home = Path(home)
        self.http_port = http_port or free_port()
        self.transport_port = transport_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "node.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 240.0) -> None:
        if self.running():
            return
        java = shutil.which("java")
        if java is None:
            raise NodeUnavailable("no 'java' on PATH")
        cp = classpath()
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [java, *JVM_OPTIONS, "-cp", cp, MAIN_CLASS, str(self.home), str(self.http_port), str(self.transport_port)],
            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.home,
        )
        atexit.register(self.stop)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise NodeUnavailable(f"OpenSearch test node exited early; see {self.log_path}: {self.log_tail()}")
            try:
                health = _get_json(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5)
                if health.get("status") in ("green", "yellow"):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise NodeUnavailable(f"OpenSearch test node not healthy after {timeout:.0f} s; see {self.log_path}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """Close the node (SIGTERM; SIGKILL after `timeout`). Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 240.0) -> None:
        self.stop()
        self.start(timeout)
