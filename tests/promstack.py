"""Test harness: real Prometheus and Alertmanager (Debian packages) on 127.0.0.1.

What it gives a test:

* :class:`WebhookReceiver` - a local HTTP server that records every Alertmanager
  webhook notification (path = receiver name, arrival time, JSON payload) and lets a
  test wait for one that matches.
* :func:`prometheus_test_config` / :func:`alertmanager_test_config` - derive test
  configurations from the *shipped* ones (``deploy/prometheus/prometheus.yml``,
  ``deploy/alertmanager/alertmanager.yml``): same rule files and route tree, but
  scrape targets on 127.0.0.1, 1 s scrape/evaluation intervals, and every receiver
  replaced by a webhook to the local receiver at ``/<receiver name>`` so tests see
  which route an alert took.
* :func:`start_prometheus` / :func:`start_alertmanager` - start the real binaries on
  free ports with their own temporary storage and wait until they are ready.
  Debian's packages may run system services on :9090/:9093; we never touch those.
  Alertmanager gossip is disabled (``--cluster.listen-address=``).
* :class:`PromStack` - all three together, as a context manager that tears
  everything down.

Binaries are found on PATH (Debian names the Alertmanager binary
``prometheus-alertmanager``). When they are missing, :func:`require_binaries`
installs them with ``.ci/install-prometheus.sh`` if allowed (root and
``NEWSMON_INSTALL_PROMETHEUS=1`` or ``CI`` set) and otherwise skips the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
SHIPPED_PROMETHEUS = PROMETHEUS_DIR / "prometheus.yml"
SHIPPED_RULES = PROMETHEUS_DIR / "rules.yml"
SHIPPED_ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
INSTALL_SCRIPT = REPO / ".ci" / "install-prometheus.sh"

BINARIES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
}


class StackError(RuntimeError):
    """A server of the stack did not start or answer."""


# --------------------------------------------------------------------------- binaries


def find_binary(role: str) -> str | None:
    for name in BINARIES[role]:
        path = shutil.which(name)
        if path:
            return path
    return None


def _install_allowed() -> bool:
    return (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and bool(os.environ.get("NEWSMON_INSTALL_PROMETHEUS") or os.environ.get("CI"))
        and shutil.which("apt-get") is not None
    )


def require_binaries(*roles: str) -> dict[str, str]:
    """Paths of the requested binaries; install them if allowed, else skip the test."""
    missing = [r for r in roles if find_binary(r) is None]
    if missing and _install_allowed():
        subprocess.run(["sh", str(INSTALL_SCRIPT)], check=False, timeout=900)
        missing = [r for r in roles if find_binary(r) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: run .ci/install-prometheus.sh as root "
            "(or set NEWSMON_INSTALL_PROMETHEUS=1 when running the tests as root)"
        )
    return {r: find_binary(r) or "" for r in roles}


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- webhook


@dataclass(frozen=True, slots=True)
class Notification:
    """One webhook POST from Alertmanager."""

    receiver_path: str  # "/coverage-russia-dprk"
    received_at: float  # time.time() at arrival
    payload: dict[str, Any]

    @property
    def receiver(self) -> str:
        return self.receiver_path.strip("/")

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.payload.get("alerts", []))

    def has_alert(self, alertname: str, status: str = "firing", **labels: str) -> bool:
        for alert in self.alerts:
            got = alert.get("labels", {})
            if alert.get("status") != status or got.get("alertname") != alertname:
                continue
            if all(got.get(k) == v for k, v in labels.items()):
                return True
        return False


class WebhookReceiver:
    """Records Alertmanager webhook notifications; thread-safe; binds 127.0.0.1:0."""

    def __init__(self) -> None:
        self._notifications: list[Notification] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsed": body.decode("utf-8", "replace")}
                receiver._record(Notification(self.path, time.time(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{urllib.parse.quote(receiver)}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, notification: Notification) -> None:
        with self._cond:
            self._notifications.append(notification)
            self._cond.notify_all()

    def notifications(self) -> list[Notification]:
        with self._cond:
            return list(self._notifications)

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float) -> Notification | None:
        """The first notification (already received or arriving within timeout) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n in self._notifications:
                    if predicate(n):
                        return n
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


# --------------------------------------------------------------------------- configs


def prometheus_test_config(
    *,
    scrape_targets: list[str],
    alertmanager_target: str,
    interval: str = "1s",
    shipped: Path = SHIPPED_PROMETHEUS,
) -> dict[str, Any]:
    """The shipped prometheus.yml with local targets and fast intervals (rule files absolute)."""
    config = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    glob = dict(config.get("global") or {})
    glob["scrape_interval"] = interval
    glob["evaluation_interval"] = interval
    glob["scrape_timeout"] = interval
    config["global"] = glob
    config["rule_files"] = [str((shipped.parent / f).resolve()) for f in config.get("rule_files", [])]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]}
    config["scrape_configs"] = [
        {"job_name": "newsmon", "static_configs": [{"targets": list(scrape_targets)}]}
    ]
    return config


def _walk_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        yield from _walk_routes(child)


def alertmanager_test_config(
    *,
    webhook: WebhookReceiver,
    group_wait: str = "1s",
    shipped: Path = SHIPPED_ALERTMANAGER,
) -> dict[str, Any]:
    """The shipped alertmanager.yml, same routes, every receiver a local webhook at /<name>.

    Each receiver keeps the send_resolved choice of its first shipped integration, so
    tests also see whether resolved notifications would be sent.
    """
    config = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    config["global"] = {"resolve_timeout": (config.get("global") or {}).get("resolve_timeout", "5m")}
    receivers = []
    for receiver in config.get("receivers", []):
        integrations = [c for key, cs in receiver.items() if key.endswith("_configs") for c in cs]
        send_resolved = bool(integrations[0].get("send_resolved", True)) if integrations else True
        receivers.append(
            {
                "name": receiver["name"],
                "webhook_configs": [{"url": webhook.url(receiver["name"]), "send_resolved": send_resolved}],
            }
        )
    config["receivers"] = receivers
    for route in _walk_routes(config["route"]):
        if "group_wait" in route or route is config["route"]:
            route["group_wait"] = group_wait
    config.pop("templates", None)
    return config


# --------------------------------------------------------------------------- servers


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # 127.0.0.1 only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _wait_ready(server: ServerProcess, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StackError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log()[-3000:]}"
            )
        try:
            status, _ = http_get(server.url + path, timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise StackError(f"{server.name} not ready after {timeout}s:\n{server.log()[-3000:]}")


def _start(
    name: str, argv_for_port: Callable[[int], list[str]], workdir: Path, ready_path: str, port: int | None = None
) -> ServerProcess:
    """Start a server on a free port (or on ``port``, once); retry on another port if the first
    was taken meanwhile."""
    last: Exception | None = None
    fixed = port
    for attempt in range(1 if fixed else 3):
        port = fixed or free_port()
        log_path = workdir / f"{name}-{attempt}.log"
        log = open(log_path, "wb")  # noqa: SIM115 (closed in ServerProcess.stop)
        proc = subprocess.Popen(argv_for_port(port), stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        server = ServerProcess(name, proc, port, workdir, log_path, log)
        try:
            _wait_ready(server, ready_path, timeout=30.0)
            return server
        except StackError as exc:
            server.stop()
            last = exc
            if "address already in use" not in server.log():
                break
    raise StackError(str(last))


def start_prometheus(config: dict[str, Any], workdir: Path) -> ServerProcess:
    binary = require_binaries("prometheus")["prometheus"]
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return _start(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            "--log.level=warn",
        ],
        workdir,
        "/-/ready",
    )


def start_alertmanager(config: dict[str, Any], workdir: Path, port: int | None = None) -> ServerProcess:
    binary = require_binaries("alertmanager")["alertmanager"]
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return _start(
        "alertmanager",
        lambda port: [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        workdir,
        "/-/ready",
        port,
    )


# --------------------------------------------------------------------------- stack


class PromStack:
    """Webhook receiver + Alertmanager + Prometheus scraping ``scrape_targets``.

    >>> with PromStack(tmp_path, scrape_targets=["127.0.0.1:9464"]) as stack:
    ...     stack.webhook.wait_for(lambda n: n.has_alert("NewCoverage", topic="x"), 60)
    """

    def __init__(self, workdir: Path, *, scrape_targets: list[str], interval: str = "1s") -> None:
        require_binaries("prometheus", "alertmanager")
        self.workdir = workdir
        self.scrape_targets = scrape_targets
        self.interval = interval
        self.webhook = WebhookReceiver()
        self.alertmanager: ServerProcess | None = None
        self.prometheus: ServerProcess | None = None

    def __enter__(self) -> Self:
        try:
            self.webhook.start()
            self.alertmanager = start_alertmanager(
                alertmanager_test_config(webhook=self.webhook), self.workdir / "alertmanager"
            )
            self.prometheus = start_prometheus(
                prometheus_test_config(
                    scrape_targets=self.scrape_targets,
                    alertmanager_target=f"127.0.0.1:{self.alertmanager.port}",
                    interval=self.interval,
                ),
                self.workdir / "prometheus",
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()
        self.webhook.stop()

    # Prometheus HTTP API --------------------------------------------------------------

    def _api(self, path: str, **params: str) -> Any:
        assert self.prometheus is not None
        url = f"{self.prometheus.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        if status != 200:
            raise StackError(f"GET {url}: {status} {body[:300]!r}")
        return json.loads(body)["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; list of {"metric": {...}, "value": [ts, "v"]}."""
        return list(self._api("query", query=expr)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus' current pending/firing alerts."""
        return list(self._api("alerts")["alerts"])

    def wait_query(
        self, expr: str, timeout: float, predicate: Callable[[list[dict[str, Any]]], bool] = bool
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.25)
        raise StackError(f"query {expr!r} not satisfied after {timeout}s; last result {result}")

    def logs(self) -> str:
        parts = []
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                parts.append(f"--- {server.name}\n{server.log()[-3000:]}")
        return "\n".join(parts)


class AlertmanagerStack:
    """Webhook receiver + Alertmanager alone, for alerts that newsmon posts itself (NewArticle).

    ``stop_alertmanager``/``start_alertmanager`` take Alertmanager down and bring it back on
    the same port with the same storage, as an outage would.

    >>> with AlertmanagerStack(tmp_path) as stack:
    ...     run newsmon with NEWSMON_ALERTMANAGER_URL=stack.url
    ...     stack.webhook.wait_for(lambda n: n.has_alert("NewArticle", topic="x"), 60)
    """

    def __init__(self, workdir: Path, *, group_wait: str = "1s") -> None:
        require_binaries("alertmanager")
        self.workdir = workdir
        self.group_wait = group_wait
        self.webhook = WebhookReceiver()
        self.alertmanager: ServerProcess | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        try:
            self.webhook.start()
            self.start_alertmanager()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_alertmanager(self) -> None:
        config = alertmanager_test_config(webhook=self.webhook, group_wait=self.group_wait)
        self.alertmanager = start_alertmanager(config, self.workdir / "alertmanager", port=self.port)
        self.port = self.alertmanager.port

    def stop_alertmanager(self) -> None:
        if self.alertmanager is not None:
            self.alertmanager.stop()
            self.alertmanager = None

    def close(self) -> None:
        self.stop_alertmanager()
        self.webhook.stop()

    def logs(self) -> str:
        return "" if self.alertmanager is None else f"--- alertmanager\n{self.alertmanager.log()[-3000:]}"
