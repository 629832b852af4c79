"""A fault-injecting HTTP proxy in front of the real OpenSearch test node.

The engine's behaviour (mapping, analyzers, the Painless script, queries) always comes from
the real node behind it; this proxy only adds what a real node cannot do on demand:

- per-item rejections (429, or any status) for the next N bulk items: those items are cut out
  of the request before it is forwarded, and a rejection is spliced into the answer in place;
- whole requests refused with a status (429/503...), without forwarding;
- connection resets, before forwarding or after the node has processed the request;
- slow replies (processed, answered late) and short ``items`` arrays in bulk answers;
- credentials checks (``auth``), and every request recorded for assertions.

With ``elasticsearch=True`` it is also the **Elasticsearch-client shim**: it rewrites the
request media types the ``elasticsearch`` client sends (``application/vnd.elasticsearch+json;
compatible-with=N`` -> ``application/json``, ``...+x-ndjson`` -> ``application/x-ndjson``),
refuses other vendor media types or versions as Elasticsearch does (400
``media_type_header_exception``), and adds ``X-Elastic-Product: Elasticsearch`` to the answers
(unless ``faults.product_header`` is off, to test the client's product check). It changes
nothing else: bodies, statuses and paths pass through untouched. It is not Elasticsearch.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

PRODUCT = "Elasticsearch"
_VENDOR = re.compile(r"application/vnd\.elasticsearch\+([\w-]+)\s*;\s*compatible-with\s*=\s*(\d+)", re.I)
COMPATIBLE = ("7", "8", "9")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query))

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode("utf-8").split("\n") if line.strip()]

    def bulk_actions(self) -> list[tuple[str, dict[str, Any]]]:
        """(op, metadata) per action of a bulk body."""
        lines, out, i = self.ndjson(), [], 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            out.append((op, meta))
            i += 1 if op == "delete" else 2
        return out


@dataclass
class _Fault:
    kind: str
    times: int
    path: str
    value: Any = None
    after: int = 0  # matching requests to let through before the fault starts


@dataclass
class Faults:
    """Faults to inject; each applies to the next ``times`` requests whose path contains ``path``."""

    product_header: bool = True
    _queue: list[_Fault] = field(default_factory=list)
    _item_rejections: int = 0
    _item_status: int = 429
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_requests(self, status: int, *, times: int = 1, path: str = "_bulk", after: int = 0) -> None:
        self._add(_Fault("status", times, path, status, after))

    def reset_connections(
        self, *, times: int = 1, path: str = "", after_processing: bool = False, after: int = 0
    ) -> None:
        self._add(_Fault("reset_after" if after_processing else "reset", times, path, None, after))

    def delay_replies(self, seconds: float, *, times: int = 1, path: str = "") -> None:
        self._add(_Fault("delay", times, path, seconds))

    def truncate_items(self, *, drop: int = 1, times: int = 1) -> None:
        self._add(_Fault("truncate", times, "_bulk", drop))

    def reject_items(self, count: int, *, status: int = 429) -> None:
        """The next ``count`` bulk items (over any requests) answer ``status`` without being applied."""
        with self._lock:
            self._item_rejections, self._item_status = self._item_rejections + count, status

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._item_rejections = 0
        self.product_header = True

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def take(self, path: str) -> dict[str, _Fault]:
        """The faults that apply to this request (one per kind), consuming one use of each."""
        taken: dict[str, _Fault] = {}
        with self._lock:
            for f in list(self._queue):
                if f.path not in path:
                    continue
                if f.after > 0:
                    f.after -= 1
                    continue
                if f.kind not in taken:
                    taken[f.kind] = f
                    f.times -= 1
                    if f.times <= 0:
                        self._queue.remove(f)
        return taken

    def take_item_rejection(self) -> int | None:
        with self._lock:
            if self._item_rejections > 0:
                self._item_rejections -= 1
                return self._item_status
        return None


def error_body(status: int, etype: str, reason: str) -> dict[str, Any]:
    err = {"type": etype, "reason": reason}
    return {"error": {"root_cause": [err], **err}, "status": status}


class FaultProxy:
    """``with FaultProxy(node_url) as proxy: ... proxy.url ... proxy.faults.reject_items(3)``."""

    def __init__(self, upstream: str, *, elasticsearch: bool = True) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.elasticsearch = elasticsearch
        self.faults = Faults()
        self.auth: Callable[[dict[str, str]], bool] | None = None
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fault-proxy").start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def requests_to(self, fragment: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if fragment in r.path]

    def documents(self, index: str = "*") -> dict[tuple[str, str], dict[str, Any]]:
        """What the node holds in ``index`` (refreshed first; read straight from the node)."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request("POST", f"/{index}/_refresh?allow_no_indices=true&ignore_unavailable=true")
            conn.getresponse().read()
            body = json.dumps({"query": {"match_all": {}}, "size": 10_000})
            conn.request("POST", f"/{index}/_search?allow_no_indices=true&ignore_unavailable=true", body=body,
                         headers={"Content-Type": "application/json"})
            hits = json.loads(conn.getresponse().read()).get("hits", {}).get("hits", [])
        finally:
            conn.close()
        return {(h["_index"], h["_id"]): h["_source"] for h in hits}

    def reset(self) -> None:
        self.faults.clear()
        self.auth = None
        with self._lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        p = self.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with p._lock:
            path, _, query = self.path.partition("?")
            p.requests.append(Recorded(method, path, query, headers, body))
        faults = p.faults.take(self.path.split("?")[0])
        if "reset" in faults:
            return self._reset()
        if p.auth is not None and not p.auth(headers):
            return self._reply(method, 401, error_body(401, "security_exception", "unable to authenticate user"))
        if p.elasticsearch:
            problem = self._map_media_types(headers)
            if problem:
                return self._reply(method, 400, error_body(400, "media_type_header_exception", problem))
        if "status" in faults:
            status = int(faults["status"].value)
            return self._reply(method, status, error_body(status, "es_rejected_execution_exception", "injected"))
        rejected: dict[int, int] = {}
        if self.path.split("?")[0].endswith("_bulk") and body:
            body, rejected = self._cut_rejected_items(body)
        status, payload = self._forward(method, headers, body) if body or not rejected else (200, {"items": []})
        if rejected and isinstance(payload, dict):
            payload = self._splice(payload, rejected)
        if "truncate" in faults and isinstance(payload, dict) and payload.get("items"):
            payload["items"] = payload["items"][: -int(faults["truncate"].value)]
        if "reset_after" in faults:
            return self._reset()
        if "delay" in faults:
            time.sleep(float(faults["delay"].value))
        self._reply(method, status, payload)

    def _map_media_types(self, headers: dict[str, str]) -> str | None:
        for name in ("accept", "content-type"):
            value = headers.get(name)
            if not value or "vnd." not in value:
                continue
            m = _VENDOR.search(value)
            if not m or m.group(2) not in COMPATIBLE:
                return f"Invalid media-type value on headers [{name}]: {value!r}"
            headers[name] = f"application/{m.group(1).lower()}"
        return None

    def _cut_rejected_items(self, body: bytes) -> tuple[bytes, dict[int, int]]:
        """Remove the items to reject from a bulk body; returns (body, {item position: status})."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        kept: list[bytes] = []
        rejected: dict[int, int] = {}
        self._cut_meta: list[dict[str, Any]] = []
        i = pos = 0
        while i < len(lines):
            meta = json.loads(lines[i])
            self._cut_meta.append(meta)
            ((op, _),) = meta.items()
            width = 1 if op == "delete" else 2
            status = self.owner.faults.take_item_rejection()
            if status is None:
                kept.extend(lines[i : i + width])
            else:
                rejected[pos] = status
            i, pos = i + width, pos + 1
        return (b"\n".join(kept) + b"\n") if kept else b"", rejected

    def _splice(self, payload: dict[str, Any], rejected: dict[int, int]) -> dict[str, Any]:
        answered = iter(payload.get("items", []))
        items = []
        for pos, meta in enumerate(self._cut_meta):
            if pos in rejected:
                ((op, m),) = meta.items()
                status = rejected[pos]
                etype = "es_rejected_execution_exception" if status == 429 else "mapper_parsing_exception"
                items.append({op: {"_index": m.get("_index"), "_id": m.get("_id"), "status": status,
                                   "error": {"type": etype, "reason": "injected by the fault proxy"}}})
            else:
                nxt = next(answered, None)
                if nxt is not None:
                    items.append(nxt)
        return {**payload, "items": items, "errors": True}

    def _forward(self, method: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            send = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
            conn.request(method, self.path, body=body or None, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _reply(self, method: str, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if self.owner.elasticsearch and self.owner.faults.product_header:
            self.send_header("X-Elastic-Product", PRODUCT)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)
