"""The ES test server: a small, in-memory, protocol-faithful stand-in for an Elasticsearch node.

It is a test tool, not Elasticsearch. The real ``elasticsearch`` client talks to it over
real HTTP on 127.0.0.1:<random port> (``ThreadingHTTPServer``, HTTP/1.1 keep-alive), so
tests exercise the client's headers, serialisation, product check and error handling.

Behaviour (what the tests rely on):

- ``GET /`` reports version 9.x (``major`` is configurable); every 2xx answer carries
  ``X-Elastic-Product: Elasticsearch`` (switch off with ``faults.product_header = False``).
- Media types: ``Accept`` and, with a body, ``Content-Type`` must be
  ``application/vnd.elasticsearch+json`` (bulk: ``+x-ndjson`` or ``+json``) with
  ``compatible-with`` equal to the major or the one before; otherwise 400
  ``media_type_header_exception``.
- ``/_bulk`` and ``/{index}/_bulk`` (PUT/POST): the body must end with ``\\n`` (else 400);
  exactly one item per action, in order; ``index`` 201/200, ``create`` 201 or 409
  ``version_conflict_engine_exception``, ``update`` with ``doc``/``doc_as_upsert``/``upsert``
  or with the project's :data:`connectors.elasticsearch.MERGE_SCRIPT` (implemented here with
  exactly the semantics documented beside that script; any other script is a 400),
  ``delete``. Values that violate the index mapping give 400 ``document_parsing_exception``
  (see :func:`check_document`); ``dynamic: false`` fields are ignored, ``strict`` rejects.
- Indices are created on first write from the highest-priority matching index template
  (``PUT/GET/HEAD/DELETE _index_template``).
- Near-real-time search: a write is visible to ``_search``/``_count`` after ``_refresh``,
  ``?refresh=true``, or ``refresh_interval`` seconds (GET by id is realtime); until then a
  search still sees an overwritten document's previous version, as a node's searcher does.
- ``_search``/``_count`` support this query subset: ``match_all``, ``match_none``, ``ids``,
  ``term``, ``terms``, ``exists``, ``range``, ``bool`` (must/filter/should/must_not),
  ``match``, ``multi_match`` and ``simple_query_string`` (words, ``"phrases"``, ``prefix*``,
  ``-exclusion``, ``default_operator``, field boosts ``title^3``; ``x.std`` sub-fields read
  ``x``). Scores are term counts times boosts: plausible ordering, not BM25. Also
  ``size``, ``from``, ``sort``, ``_source`` filtering, ``ignore_unavailable``,
  ``allow_no_indices``.
- Faults on demand (:class:`Faults`): per-item 429 ``es_rejected_execution_exception``,
  whole-request statuses (429/503/...), connection resets (before or after processing),
  slow replies, short ``items`` arrays, a missing product header.
- Every request is recorded raw (:class:`Recorded`) so tests can assert NDJSON, ids,
  parameters and headers.
- Added for the shared dedup store (``connectors/esdedupstore.py``), each a small subset:
  ``PUT /{index}/_doc/{id}?op_type=create`` and ``/{index}/_create/{id}`` (409 when the id
  exists), ``/{index}/_update/{id}`` (same update semantics as a bulk ``update``),
  optimistic concurrency with ``if_seq_no``/``if_primary_term`` (document APIs and bulk
  metadata; 409 on mismatch), ``POST /{index}/_delete_by_query`` (deletes what a search
  would see now; ``refresh``), and ``terms`` aggregations in ``_search`` (``field``,
  ``size``, ``include`` as a list of exact values; one count per document).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.elasticsearch import MERGE_SCRIPT

PRODUCT = "Elasticsearch"


class EsHttpError(Exception):
    def __init__(self, status: int, etype: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.etype, self.reason = status, etype, reason

    def body(self) -> dict[str, Any]:
        err = {"type": self.etype, "reason": self.reason}
        return {"error": {"root_cause": [err], **err}, "status": self.status}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode("utf-8").split("\n") if line.strip()]

    def bulk_actions(self) -> list[tuple[str, dict[str, Any]]]:
        """(op, metadata) per action of a bulk body."""
        lines = self.ndjson()
        out, i = [], 0
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
            self._item_rejections += count
            self._item_status = status

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._item_rejections = 0
        self.product_header = True

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def take(self, path: str) -> list[_Fault]:
        """The faults that apply to this request (one per kind), consuming one use of each."""
        taken: list[_Fault] = []
        with self._lock:
            kinds: set[str] = set()
            for f in list(self._queue):
                if f.path in path and f.after > 0:
                    f.after -= 1
                    continue
                if f.path in path and f.kind not in kinds:
                    kinds.add(f.kind)
                    taken.append(f)
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


# --------------------------------------------------------------------------- mapping checks


def _parse_date(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            d = datetime.fromisoformat(value)  # Python 3.11 accepts a trailing Z
        except ValueError:
            return None
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    return None


_NUMERIC = {
    "float",
    "double",
    "half_float",
    "scaled_float",
    "long",
    "integer",
    "short",
    "byte",
    "unsigned_long",
}


def _field_error(path: str, ftype: str, doc_id: str, value: Any) -> str:
    preview = str(value)[:60]
    return (
        f"[1:1] failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
        f"Preview of field's value: '{preview}'"
    )


def check_document(doc: Any, mappings: dict[str, Any], doc_id: str) -> str | None:
    """The reason a document violates ``mappings`` (as a real node would reject it), else None."""
    if not mappings:
        return None
    return _check_object(doc, mappings, "", doc_id, mappings.get("dynamic", True))


def _check_object(value: Any, mapping: dict[str, Any], path: str, doc_id: str, dynamic: Any) -> str | None:
    if not isinstance(value, dict):
        return (
            f"[1:1] object mapping for [{path}] tried to parse field [{path}] as object, "
            f"but found a concrete value"
        )
    if mapping.get("enabled") is False:
        return None
    props = mapping.get("properties", {})
    dyn = mapping.get("dynamic", dynamic)
    for key, sub in value.items():
        sub_path = f"{path}.{key}" if path else key
        if key not in props:
            if str(dyn).lower() == "strict":
                return f"[1:1] mapping set to strict, dynamic introduction of [{key}] within [{path or '_doc'}] is not allowed"
            continue
        problem = _check_value(sub, props[key], sub_path, doc_id, dyn)
        if problem:
            return problem
    return None


def _check_value(value: Any, mapping: dict[str, Any], path: str, doc_id: str, dynamic: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        for v in value:
            problem = _check_value(v, mapping, path, doc_id, dynamic)
            if problem:
                return problem
        return None
    ftype = mapping.get("type", "object")
    if ftype in ("object", "nested"):
        return _check_object(value, mapping, path, doc_id, dynamic)
    if isinstance(value, dict):
        return _field_error(path, ftype, doc_id, value)
    if ftype in ("keyword", "text", "match_only_text", "wildcard"):
        return None
    if ftype == "date":
        return None if _parse_date(value) else _field_error(path, ftype, doc_id, value)
    if ftype in _NUMERIC:
        if isinstance(value, bool):
            return _field_error(path, ftype, doc_id, value)
        if isinstance(value, (int, float)):
            return None
        try:
            float(str(value))
            return None
        except ValueError:
            return _field_error(path, ftype, doc_id, value)
    if ftype == "boolean":
        ok = isinstance(value, bool) or value in ("true", "false", "")
        return None if ok else _field_error(path, ftype, doc_id, value)
    return None


# --------------------------------------------------------------------------- the MERGE_SCRIPT


def run_merge_script(
    source: dict[str, Any] | None, params: dict[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """Python rendering of MERGE_SCRIPT: returns ("noop"|"index", new source)."""
    current = source or {}
    old = current.get("also_published_at") or []
    by_id: dict[Any, Any] = {}
    merged: list[Any] = []
    for s in old:
        if s["id"] not in by_id:
            by_id[s["id"]] = s
            merged.append(s)
    before = len(merged)
    doc = params.get("doc")
    extra = list((doc or {}).get("also_published_at") or []) + list(params.get("add") or [])
    for s in extra:
        if s["id"] not in by_id:
            by_id[s["id"]] = s
            merged.append(s)
    if doc is None and len(merged) == before:
        return "noop", None
    merged.sort(key=lambda s: (s["first_seen"], s["id"]))
    new = dict(doc) if doc is not None else dict(current)
    new["also_published_at"] = merged
    return "index", new


# --------------------------------------------------------------------------- search subset

_TOKEN = re.compile(r'(-?)"([^"]*)"|(-?)(\S+)')
_WORD = re.compile(r"\w+\*?", re.UNICODE)


def _get_field(src: dict[str, Any], name: str) -> list[Any]:
    name = re.sub(r"\.(std|keyword)$", "", name)
    cur: list[Any] = [src]
    for part in name.split("."):
        nxt: list[Any] = []
        for c in cur:
            if isinstance(c, dict) and part in c:
                v = c[part]
                nxt.extend(v if isinstance(v, list) else [v])
        cur = nxt
    return [v for v in cur if v is not None]


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"\w+", text, re.UNICODE)]


def _term_count(words: list[str], term: str) -> int:
    if term.endswith("*"):
        stem = term[:-1]
        return sum(1 for w in words if w.startswith(stem))
    return words.count(term)


def _phrase_count(words: list[str], phrase: list[str]) -> int:
    n = len(phrase)
    return sum(1 for i in range(len(words) - n + 1) if words[i : i + n] == phrase) if n else 0


def _fields_with_boost(fields: list[str]) -> list[tuple[str, float]]:
    out = []
    for f in fields:
        name, _, boost = f.partition("^")
        out.append((name, float(boost or 1.0)))
    return out


def _text_query(src: dict[str, Any], query: str, fields: list[str], operator: str) -> float | None:
    field_words = [
        (_words(" ".join(str(v) for v in _get_field(src, name))), boost)
        for name, boost in _fields_with_boost(fields)
    ]
    positives: list[float] = []
    for neg_p, phrase, neg_w, word in _TOKEN.findall(query):
        negative = bool(neg_p or neg_w)
        if phrase:
            terms = [_words(phrase)]
            kind = "phrase"
        else:
            terms = [[w.lower()] for w in _WORD.findall(word)]
            kind = "term"
        for t in terms:
            if not t or t == ["and"] or t == ["or"]:
                continue
            score = 0.0
            for words, boost in field_words:
                n = _phrase_count(words, t) if kind == "phrase" else _term_count(words, t[0])
                score += n * boost
            if negative:
                if score:
                    return None
                continue
            positives.append(score)
    if not positives:
        return None
    if operator == "and" and not all(positives):
        return None
    total = sum(positives)
    return total if total > 0 else None


def evaluate(query: dict[str, Any] | None, doc_id: str, src: dict[str, Any]) -> float | None:
    """Score of a document for a query (None: no match)."""
    if not query:
        return 1.0
    ((kind, body),) = query.items()
    if kind == "match_all":
        return 1.0
    if kind == "match_none":
        return None
    if kind == "ids":
        return 1.0 if doc_id in set(body.get("values", [])) else None
    if kind in ("term", "terms"):
        ((fname, spec),) = ((k, v) for k, v in body.items() if k != "boost")
        wanted = spec if kind == "terms" else [spec.get("value") if isinstance(spec, dict) else spec]
        if fname == "_id":
            return 1.0 if doc_id in wanted else None
        have = _get_field(src, fname)
        return 1.0 if any(h in wanted or str(h) in map(str, wanted) for h in have) else None
    if kind == "exists":
        return 1.0 if _get_field(src, body["field"]) else None
    if kind == "range":
        ((fname, spec),) = body.items()
        for v in _get_field(src, fname):
            if _in_range(v, spec):
                return 1.0
        return None
    if kind == "bool":
        score = 0.0
        for sub in _as_list(body.get("must")) + _as_list(body.get("filter")):
            s = evaluate(sub, doc_id, src)
            if s is None:
                return None
            score += s if sub in _as_list(body.get("must")) else 0.0
        for sub in _as_list(body.get("must_not")):
            if evaluate(sub, doc_id, src) is not None:
                return None
        shoulds = [evaluate(sub, doc_id, src) for sub in _as_list(body.get("should"))]
        matched = [s for s in shoulds if s is not None]
        need = body.get(
            "minimum_should_match", 0 if (body.get("must") or body.get("filter")) else (1 if shoulds else 0)
        )
        if len(matched) < int(need):
            return None
        return score + sum(matched) or 1.0
    if kind == "simple_query_string":
        fields = body.get("fields") or ["*"]
        return _text_query(
            src, body["query"], _expand_star(fields, src), str(body.get("default_operator", "or")).lower()
        )
    if kind == "multi_match":
        fields = body.get("fields") or ["*"]
        return _text_query(
            src, body["query"], _expand_star(fields, src), str(body.get("operator", "or")).lower()
        )
    if kind == "match":
        ((fname, spec),) = body.items()
        spec = spec if isinstance(spec, dict) else {"query": spec}
        words = " ".join(w for w in _words(str(spec["query"])))
        return _text_query(src, words, [fname], str(spec.get("operator", "or")).lower())
    raise EsHttpError(
        400, "parsing_exception", f"unknown query [{kind}] (not in the ES test server's subset)"
    )


def _expand_star(fields: list[str], src: dict[str, Any]) -> list[str]:
    return [k for k, v in src.items() if isinstance(v, str)] if fields == ["*"] else fields


def _as_list(x: Any) -> list[Any]:
    return [] if x is None else x if isinstance(x, list) else [x]


def _in_range(value: Any, spec: dict[str, Any]) -> bool:
    def norm(v: Any) -> Any:
        d = _parse_date(v) if isinstance(v, str) else None
        return d if d else v

    v = norm(value)
    try:
        for op, bound in spec.items():
            b = norm(bound)
            if (op == "gte" and not v >= b) or (op == "gt" and not v > b):
                return False
            if (op == "lte" and not v <= b) or (op == "lt" and not v < b):
                return False
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------- state


@dataclass
class _Doc:
    source: dict[str, Any]
    version: int
    seq_no: int
    written: float
    prior: dict[str, Any] | None = None  # the version searches still see until the next refresh


@dataclass
class _Index:
    name: str
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, _Doc] = field(default_factory=dict)
    refreshed: float = 0.0


class EsState:
    """Indices, templates and documents, guarded by one lock."""

    def __init__(self, refresh_interval: float) -> None:
        self.lock = threading.RLock()
        self.templates: dict[str, dict[str, Any]] = {}
        self.indices: dict[str, _Index] = {}
        self.refresh_interval = refresh_interval
        self._seq = 0
        self._auto_id = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def auto_id(self) -> str:
        self._auto_id += 1
        return f"auto-{self._auto_id:012d}"

    def get_or_create(self, name: str) -> _Index:
        idx = self.indices.get(name)
        if idx is None:
            if not re.fullmatch(r"[a-z0-9][a-z0-9._+-]*", name) or name.startswith(("-", "_", "+")):
                raise EsHttpError(400, "invalid_index_name_exception", f"Invalid index name [{name}]")
            template = self.matching_template(name)
            t = (template or {}).get("template", {})
            idx = _Index(name, t.get("mappings", {}), t.get("settings", {}))
            self.indices[name] = idx
        return idx

    def matching_template(self, index: str) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for t in self.templates.values():
            if any(fnmatch.fnmatchcase(index, p) for p in t.get("index_patterns", [])):
                prio = int(t.get("priority", 0))
                if best is None or prio > best[0]:
                    best = (prio, t)
        return best[1] if best else None

    def resolve(self, target: str, params: dict[str, str]) -> list[_Index]:
        names = [n for n in unquote(target).split(",") if n] if target else ["_all"]
        ignore_unavailable = params.get("ignore_unavailable") == "true"
        allow_no = params.get("allow_no_indices", "true") == "true"
        out: list[_Index] = []
        for n in names:
            if n in ("_all", "*"):
                out.extend(self.indices.values())
            elif "*" in n:
                hits = [i for k, i in self.indices.items() if fnmatch.fnmatchcase(k, n)]
                if not hits and not allow_no:
                    raise EsHttpError(404, "index_not_found_exception", f"no such index [{n}]")
                out.extend(hits)
            elif n in self.indices:
                out.append(self.indices[n])
            elif not ignore_unavailable:
                raise EsHttpError(404, "index_not_found_exception", f"no such index [{n}]")
        return out

    def visible(self, idx: _Index, doc: _Doc) -> bool:
        return doc.written <= idx.refreshed or time.monotonic() - doc.written >= self.refresh_interval


# --------------------------------------------------------------------------- HTTP


_MEDIA = re.compile(
    r"^\s*application/vnd\.elasticsearch\+(json|x-ndjson)\s*;\s*compatible-with\s*=\s*(\d+)\s*$",
    re.IGNORECASE,
)


class EsTestServer:
    """Start with ``EsTestServer().start()`` (or as a context manager); ``url`` is the base URL."""

    def __init__(
        self, *, major: int = 9, refresh_interval: float = 1.0, check_media_types: bool = True
    ) -> None:
        self.major = major
        self.version = f"{major}.1.0"
        self.check_media_types = check_media_types
        self.state = EsState(refresh_interval)
        self.faults = Faults()
        self.requests: list[Recorded] = []
        self.record_bodies = True
        self._req_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.auth: Callable[[dict[str, str]], bool] | None = None  # None: no auth required

    # -- lifecycle
    def start(self) -> EsTestServer:
        server = self

        class Handler(_Handler):
            es = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
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
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection helpers for tests
    def record(self, rec: Recorded) -> None:
        with self._req_lock:
            self.requests.append(rec)

    def requests_to(self, fragment: str) -> list[Recorded]:
        with self._req_lock:
            return [r for r in self.requests if fragment in r.path]

    def documents(self, pattern: str = "*") -> dict[tuple[str, str], dict[str, Any]]:
        """Every stored document (realtime) as {(index, id): source}."""
        with self.state.lock:
            return {
                (i.name, d): doc.source
                for i in self.state.indices.values()
                if fnmatch.fnmatchcase(i.name, pattern)
                for d, doc in i.docs.items()
            }

    def reset(self) -> None:
        with self.state.lock:
            self.state.indices.clear()
            self.state.templates.clear()
        with self._req_lock:
            self.requests.clear()
        self.faults.clear()


class _Handler(BaseHTTPRequestHandler):
    es: EsTestServer
    protocol_version = "HTTP/1.1"
    server_version = "es-test-server/1"
    # headers and body are separate writes: without TCP_NODELAY every keep-alive reply waits
    # ~40 ms for the client's delayed ACK (Nagle), which made each request cost 44 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

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

    # -- plumbing
    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.es.record(Recorded(method, path, params, headers, body if self.es.record_bodies else b""))
        faults = {f.kind: f for f in self.es.faults.take(path)}
        if "reset" in faults:
            self._reset()
            return
        try:
            if self.es.auth is not None and not self.es.auth(headers):
                raise EsHttpError(
                    401, "security_exception", "missing authentication credentials for REST request"
                )
            self._check_media(method, path, headers, body)
            if "status" in faults:
                st = int(faults["status"].value)
                etype = "es_rejected_execution_exception" if st == 429 else "unavailable_shards_exception"
                raise EsHttpError(st, etype, f"injected fault: whole request answered {st}")
            status, payload = self._route(method, path, params, body, faults)
        except EsHttpError as exc:
            status, payload = exc.status, exc.body()
        except json.JSONDecodeError as exc:
            status, payload = 400, EsHttpError(400, "x_content_parse_exception", f"[1:1] {exc}").body()
        except Exception as exc:  # noqa: BLE001 - a bug in the test server: answer like a node would, visibly
            status, payload = 500, EsHttpError(500, "exception", f"ES test server error: {exc!r}").body()
        if "reset_after" in faults:
            self._reset()
            return
        if "delay" in faults:
            time.sleep(float(faults["delay"].value))
        self._reply(method, status, payload)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _check_media(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if not self.es.check_media_types:
            return
        allowed = {str(self.es.major), str(self.es.major - 1)}
        checks = [("Accept", headers.get("accept"), ("json",))]
        if body:
            kinds = ("x-ndjson", "json") if path.endswith("_bulk") else ("json",)
            checks.append(("Content-Type", headers.get("content-type"), kinds))
        for name, value, kinds in checks:
            m = _MEDIA.match(value or "")
            if not m or m.group(1).lower() not in kinds or m.group(2) not in allowed:
                raise EsHttpError(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [{name}]: {value!r}; "
                    f"expected application/vnd.elasticsearch+{kinds[0]}; compatible-with={self.es.major} "
                    f"or {self.es.major - 1}",
                )

    def _reply(self, method: str, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if 200 <= status < 300 and self.es.faults.product_header:
            self.send_header("X-Elastic-Product", PRODUCT)
        self.send_header(
            "Content-Type", f"application/vnd.elasticsearch+json;compatible-with={self.es.major}"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    # -- routes
    def _route(
        self, method: str, path: str, params: dict[str, str], body: bytes, faults: dict[str, _Fault]
    ) -> tuple[int, Any]:
        segs = [unquote(s) for s in path.strip("/").split("/") if s]
        st = self.es.state
        if not segs:
            if method in ("GET", "HEAD"):
                return 200, self._info()
            raise EsHttpError(405, "method_not_allowed", f"{method} / not allowed")
        if segs[0] == "_index_template" and len(segs) == 2:
            return self._template(method, segs[1], body)
        if segs[-1] == "_bulk" and method in ("POST", "PUT") and len(segs) <= 2:
            return self._bulk(segs[0] if len(segs) == 2 else None, params, body, faults)
        if segs[-1] in ("_search", "_count") and method in ("GET", "POST") and len(segs) <= 2:
            q = json.loads(body) if body else {}
            target = segs[0] if len(segs) == 2 else ""
            return (self._search if segs[-1] == "_search" else self._count)(target, params, q)
        if segs[-1] == "_refresh" and method in ("POST", "GET") and len(segs) <= 2:
            with st.lock:
                idxs = st.resolve(segs[0] if len(segs) == 2 else "", params)
                for i in idxs:
                    i.refreshed = time.monotonic()
            return 200, {"_shards": {"total": len(idxs), "successful": len(idxs), "failed": 0}}
        if segs[-1] == "_delete_by_query" and method == "POST" and len(segs) == 2:
            return self._delete_by_query(segs[0], params, json.loads(body) if body else {})
        if len(segs) == 3 and segs[1] in ("_doc", "_create", "_update"):
            return self._doc(method, segs[0], segs[2], params, body, api=segs[1])
        if len(segs) == 1 and not segs[0].startswith("_"):
            return self._index(method, segs[0], body)
        raise EsHttpError(
            400, "illegal_argument_exception", f"{method} {path} is not supported by the ES test server"
        )

    def _info(self) -> dict[str, Any]:
        return {
            "name": "es-test-server",
            "cluster_name": "newsmon-test",
            "cluster_uuid": "test-cluster-uuid",
            "version": {
                "number": self.es.version,
                "build_flavor": "default",
                "build_type": "test",
                "lucene_version": "10.0.0",
                "minimum_wire_compatibility_version": f"{self.es.major - 1}.18.0",
                "minimum_index_compatibility_version": f"{self.es.major - 1}.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _template(self, method: str, name: str, body: bytes) -> tuple[int, Any]:
        st = self.es.state
        with st.lock:
            if method == "PUT" or method == "POST":
                t = json.loads(body)
                if not t.get("index_patterns"):
                    raise EsHttpError(
                        400, "action_request_validation_exception", "index patterns are missing"
                    )
                st.templates[name] = t
                return 200, {"acknowledged": True}
            if name not in st.templates and "*" not in name:
                raise EsHttpError(
                    404, "resource_not_found_exception", f"index template matching [{name}] not found"
                )
            if method == "HEAD":
                return 200, None
            if method == "DELETE":
                del st.templates[name]
                return 200, {"acknowledged": True}
            found = [
                {"name": n, "index_template": t}
                for n, t in st.templates.items()
                if fnmatch.fnmatchcase(n, name)
            ]
            return 200, {"index_templates": found}

    def _index(self, method: str, name: str, body: bytes) -> tuple[int, Any]:
        st = self.es.state
        with st.lock:
            if method == "HEAD":
                if name not in st.indices:
                    raise EsHttpError(404, "index_not_found_exception", f"no such index [{name}]")
                return 200, None
            if method == "PUT":
                if name in st.indices:
                    raise EsHttpError(
                        400, "resource_already_exists_exception", f"index [{name}] already exists"
                    )
                idx = st.get_or_create(name)
                spec = json.loads(body) if body else {}
                if spec.get("mappings"):
                    idx.mappings = spec["mappings"]
                return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            if method == "DELETE":
                if st.indices.pop(name, None) is None:
                    raise EsHttpError(404, "index_not_found_exception", f"no such index [{name}]")
                return 200, {"acknowledged": True}
            if name not in st.indices:
                raise EsHttpError(404, "index_not_found_exception", f"no such index [{name}]")
            idx = st.indices[name]
            return 200, {name: {"mappings": idx.mappings, "settings": {"index": idx.settings}, "aliases": {}}}

    def _doc(
        self, method: str, index: str, doc_id: str, params: dict[str, str], body: bytes, *, api: str = "_doc"
    ) -> tuple[int, Any]:
        st = self.es.state
        with st.lock:
            if method in ("PUT", "POST") or api != "_doc":
                op = {"_create": "create", "_update": "update"}.get(api) or (
                    "create" if params.get("op_type") == "create" else "index"
                )
                cas = {k: params[k] for k in ("if_seq_no", "if_primary_term") if k in params}
                item = self._apply(op, {"_index": index, "_id": doc_id, **cas}, json.loads(body), None)
                ((_, res),) = item.items()
                if params.get("refresh") in ("true", "wait_for", ""):
                    st.indices[index].refreshed = time.monotonic()
                return int(res["status"]), res if "error" not in res else {
                    "error": res["error"],
                    "status": res["status"],
                }
            idx = st.indices.get(index)
            if idx is None:
                raise EsHttpError(404, "index_not_found_exception", f"no such index [{index}]")
            doc = idx.docs.get(doc_id)
            if method == "DELETE":
                if doc is None:
                    return 404, {"_index": index, "_id": doc_id, "result": "not_found"}
                del idx.docs[doc_id]
                return 200, {"_index": index, "_id": doc_id, "result": "deleted", "_version": doc.version + 1}
            if doc is None:
                return 404, {"_index": index, "_id": doc_id, "found": False}
            if method == "HEAD":
                return 200, None
            return 200, {
                "_index": index,
                "_id": doc_id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": doc.source,
            }

    def _bulk(
        self, default_index: str | None, params: dict[str, str], body: bytes, faults: dict[str, _Fault]
    ) -> tuple[int, Any]:
        if not body.endswith(b"\n"):
            raise EsHttpError(
                400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"
            )
        lines = body.split(b"\n")[:-1]
        items: list[dict[str, Any]] = []
        started = time.monotonic()
        st = self.es.state
        touched: set[str] = set()
        i = 0
        with st.lock:
            while i < len(lines):
                if not lines[i].strip():
                    i += 1
                    continue
                action = json.loads(lines[i])
                if not isinstance(action, dict) or len(action) != 1:
                    raise EsHttpError(
                        400, "illegal_argument_exception", f"Malformed action/metadata line [{i + 1}]"
                    )
                ((op, meta),) = action.items()
                if op not in ("index", "create", "update", "delete"):
                    raise EsHttpError(
                        400, "illegal_argument_exception", f"Unknown key for a START_OBJECT in [{op}]."
                    )
                meta = dict(meta)
                meta.setdefault("_index", default_index)
                if not meta["_index"]:
                    raise EsHttpError(
                        400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"
                    )
                source = None
                if op != "delete":
                    if i + 1 >= len(lines):
                        raise EsHttpError(
                            400, "illegal_argument_exception", f"Missing source for action on line [{i + 1}]"
                        )
                    source = json.loads(lines[i + 1])
                    i += 2
                else:
                    i += 1
                rejected = self.es.faults.take_item_rejection()
                if rejected is not None:
                    etype, why = _INJECTED_ITEM_ERRORS.get(rejected, ("exception", "injected item failure"))
                    items.append(_item_error(op, meta, rejected, etype, why))
                    continue
                items.append(self._apply(op, meta, source, None))
                touched.add(str(meta["_index"]))
            if params.get("refresh") in ("true", "wait_for", ""):
                now = time.monotonic()
                for name in touched:
                    if name in st.indices:
                        st.indices[name].refreshed = now
        if "truncate" in faults:
            drop = int(faults["truncate"].value)
            items = items[: max(0, len(items) - drop)]
        errors = any("error" in next(iter(it.values())) for it in items)
        return 200, {"errors": errors, "took": int((time.monotonic() - started) * 1000), "items": items}

    def _apply(self, op: str, meta: dict[str, Any], source: Any, _unused: Any) -> dict[str, Any]:
        """Apply one bulk action under the state lock; returns the response item."""
        st = self.es.state
        try:
            idx = st.get_or_create(str(meta["_index"]))
        except EsHttpError as exc:
            return _item_error(op, meta, exc.status, exc.etype, exc.reason)
        doc_id = meta.get("_id")
        if doc_id is None:
            if op in ("update", "delete"):
                return _item_error(
                    op,
                    meta,
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: id is missing;",
                )
            doc_id = st.auto_id()
        doc_id = str(doc_id)
        meta = {**meta, "_id": doc_id}
        existing = idx.docs.get(doc_id)
        if "if_seq_no" in meta and (
            existing is None
            or existing.seq_no != int(meta["if_seq_no"])
            or int(meta.get("if_primary_term", 1)) != 1
        ):
            current = "none" if existing is None else str(existing.seq_no)
            return _item_error(
                op,
                meta,
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, required seqNo [{meta['if_seq_no']}], "
                f"primary term [{meta.get('if_primary_term')}]. current document has seqNo [{current}]",
            )
        if op == "delete":
            if existing is None:
                return {
                    op: {
                        "_index": idx.name,
                        "_id": doc_id,
                        "_version": 1,
                        "result": "not_found",
                        "status": 404,
                        "_shards": _shards(),
                        "_seq_no": st.next_seq(),
                        "_primary_term": 1,
                    }
                }
            del idx.docs[doc_id]
            return _item_ok(op, idx.name, doc_id, existing.version + 1, "deleted", 200, st.next_seq())
        if op == "create" and existing is not None:
            return _item_error(
                op,
                meta,
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [{existing.version}])",
            )
        if not isinstance(source, dict):
            return _item_error(op, meta, 400, "illegal_argument_exception", "source must be an object")
        if op == "update":
            kind, outcome = self._update(existing, source, doc_id, meta)
            if kind == "error":
                return outcome
            new_source = outcome
            if kind == "noop":
                assert existing is not None
                return _item_ok(op, idx.name, doc_id, existing.version, "noop", 200, existing.seq_no)
        else:
            new_source = source
        problem = check_document(new_source, idx.mappings, doc_id)
        if problem:
            return _item_error(op, meta, 400, "document_parsing_exception", problem)
        version = existing.version + 1 if existing else 1
        seq = st.next_seq()
        prior = None if existing is None else existing.source if st.visible(idx, existing) else existing.prior
        idx.docs[doc_id] = _Doc(new_source, version, seq, time.monotonic(), prior)
        return _item_ok(
            op, idx.name, doc_id, version, "updated" if existing else "created", 200 if existing else 201, seq
        )

    def _update(
        self, existing: _Doc | None, body: dict[str, Any], doc_id: str, meta: dict[str, Any]
    ) -> tuple[str, Any]:
        """("source", new source) | ("noop", None) | ("error", error item)."""
        op = "update"
        err = "error"
        if "script" in body:
            script = body["script"]
            src = script.get("source") if isinstance(script, dict) else script
            if src != MERGE_SCRIPT:
                return err, _item_error(
                    op,
                    meta,
                    400,
                    "illegal_argument_exception",
                    "only connectors.elasticsearch.MERGE_SCRIPT is implemented by the ES test server",
                )
            params = script.get("params", {})
            if existing is None:
                if not body.get("scripted_upsert"):
                    if "upsert" in body:
                        return "source", dict(body["upsert"])
                    return err, _item_error(
                        op, meta, 404, "document_missing_exception", f"[{doc_id}]: document missing"
                    )
                base: dict[str, Any] = dict(body.get("upsert") or {})
            else:
                base = existing.source
            result, new = run_merge_script(base, params)
            return ("noop", None) if result == "noop" else ("source", new)
        if "doc" in body:
            if existing is None:
                if body.get("doc_as_upsert"):
                    return "source", dict(body["doc"])
                if "upsert" in body:
                    return "source", dict(body["upsert"])
                return err, _item_error(
                    op, meta, 404, "document_missing_exception", f"[{doc_id}]: document missing"
                )
            merged = _deep_merge(existing.source, body["doc"])
            return (
                ("noop", None)
                if merged == existing.source and body.get("detect_noop", True)
                else ("source", merged)
            )
        return err, _item_error(
            op,
            meta,
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: script or doc is missing;",
        )

    def _hits(
        self, target: str, params: dict[str, str], query: dict[str, Any] | None
    ) -> list[tuple[float, str, str, dict[str, Any]]]:
        st = self.es.state
        with st.lock:
            idxs = st.resolve(target, params)
            out = []
            for idx in idxs:
                for doc_id, doc in idx.docs.items():
                    src = doc.source if st.visible(idx, doc) else doc.prior
                    if src is None:
                        continue
                    score = evaluate(query, doc_id, src)
                    if score is not None:
                        out.append((score, idx.name, doc_id, src))
        return out

    def _search(self, target: str, params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        hits = self._hits(target, params, body.get("query"))
        sort = body.get("sort") or (
            [s for s in params.get("sort", "").split(",") if s] or [{"_score": "desc"}]
        )
        for spec in reversed(_as_list(sort)):
            fname, order = _sort_spec(spec)
            key: Callable[[tuple[float, str, str, dict[str, Any]]], Any]
            if fname == "_score":
                key = lambda h: h[0]
            elif fname == "_doc":
                continue
            else:
                key = functools.partial(_field_sort_key, fname)
            hits.sort(key=key, reverse=(order == "desc"))
        start = int(body.get("from", params.get("from", 0)))
        size = int(body.get("size", params.get("size", 10)))
        page = hits[start : start + size]
        src_spec = body.get("_source", params.get("_source", True))
        excludes = [e for e in params.get("_source_excludes", "").split(",") if e]
        includes = [e for e in params.get("_source_includes", "").split(",") if e]
        if isinstance(src_spec, dict):
            excludes += _as_list(src_spec.get("excludes"))
            includes += _as_list(src_spec.get("includes"))
        elif isinstance(src_spec, list):
            includes += src_spec
        out_hits = []
        for score, index, doc_id, src in page:
            h: dict[str, Any] = {"_index": index, "_id": doc_id, "_score": score}
            if src_spec not in (False, "false"):
                filtered = {
                    k: v for k, v in src.items() if k not in excludes and (not includes or k in includes)
                }
                h["_source"] = filtered
            out_hits.append(h)
        answer: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": _shards(),
            "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": max((h[0] for h in hits), default=None),
                "hits": out_hits,
            },
        }
        aggs = body.get("aggs") or body.get("aggregations")
        if aggs:
            answer["aggregations"] = {name: _terms_agg(name, spec, hits) for name, spec in aggs.items()}
        return 200, answer

    def _delete_by_query(self, target: str, params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        """Delete what a search would return now (refreshed documents), as a node's snapshot does."""
        st = self.es.state
        with st.lock:
            hits = self._hits(target, params, body.get("query"))
            for _, index, doc_id, _ in hits:
                st.indices[index].docs.pop(doc_id, None)
            if params.get("refresh") in ("true", ""):
                for idx in st.resolve(target, params):
                    idx.refreshed = time.monotonic()
        n = len(hits)
        return 200, {
            "took": 1,
            "timed_out": False,
            "total": n,
            "deleted": n,
            "batches": 1 if n else 0,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "failures": [],
        }

    def _count(self, target: str, params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"count": len(self._hits(target, params, body.get("query"))), "_shards": _shards()}


_INJECTED_ITEM_ERRORS = {
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation [injected]"),
    400: ("document_parsing_exception", "[1:1] failed to parse (injected)"),
    503: ("unavailable_shards_exception", "primary shard is not active (injected)"),
}


def _terms_agg(name: str, spec: dict[str, Any], hits: list[tuple[float, str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A ``terms`` aggregation over every hit: buckets by doc_count desc, then key."""
    terms = spec.get("terms")
    include = (terms or {}).get("include")
    if set(spec) != {"terms"} or not isinstance(terms, dict) or not (include is None or isinstance(include, list)):
        raise EsHttpError(
            400,
            "parsing_exception",
            f"aggregation [{name}]: only terms with field, size and an include list are in the ES test server's subset",
        )
    wanted = None if include is None else {str(v) for v in include}
    counts: dict[str, int] = {}
    for _, _, _, src in hits:
        for value in {str(v) for v in _get_field(src, terms["field"])}:
            if wanted is None or value in wanted:
                counts[value] = counts.get(value, 0) + 1
    buckets = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: int(terms.get("size", 10))]
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": sum(counts.values()) - sum(c for _, c in buckets),
        "buckets": [{"key": k, "doc_count": c} for k, c in buckets],
    }


def _field_sort_key(fname: str, hit: tuple[float, str, str, dict[str, Any]]) -> tuple[int, str]:
    values = _get_field(hit[3], fname)
    return (1, str(values[0])) if values else (0, "")


def _sort_spec(spec: Any) -> tuple[str, str]:
    if isinstance(spec, str):
        name, _, order = spec.partition(":")
        return name, order or ("desc" if name == "_score" else "asc")
    ((name, how),) = spec.items()
    order = how if isinstance(how, str) else how.get("order", "asc")
    return name, order


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _shards() -> dict[str, int]:
    return {"total": 2, "successful": 1, "failed": 0}


def _item_ok(
    op: str, index: str, doc_id: str, version: int, result: str, status: int, seq: int
) -> dict[str, Any]:
    return {
        op: {
            "_index": index,
            "_id": doc_id,
            "_version": version,
            "result": result,
            "_shards": _shards(),
            "_seq_no": seq,
            "_primary_term": 1,
            "status": status,
        }
    }


def _item_error(op: str, meta: dict[str, Any], status: int, etype: str, reason: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "_index": meta.get("_index"),
        "status": status,
        "error": {"type": etype, "reason": reason},
    }
    if meta.get("_id") is not None:
        item["_id"] = str(meta["_id"])
    return {op: item}
