"""The Elasticsearch sink: idempotent bulk writes, per-item retries, dead letters, search.

Index design (installed by :func:`setup_elasticsearch`, ``newsmon setup elasticsearch``):

- One composable index template ``<prefix>-articles`` for ``<prefix>-articles-*``; the
  documents go to **monthly indices** ``<prefix>-articles-YYYY.MM`` chosen from the
  article's ``@timestamp`` (published, else first seen); search and Kibana use the
  pattern ``<prefix>-articles-*``. Retention = deleting old months; no ILM is needed.
- Why not a rollover alias: with rollover the index a re-sent document lands in depends
  on *when* it is re-sent, so a retry after a rollover would create a second document
  with the same ``_id``. Here the index is a function of the document, and before each
  bulk the sink asks the cluster where the batch's ids already live (one ``ids`` query)
  and keeps such documents where they are. So re-sending never creates a second copy,
  even if ``published`` was corrected in between. (Residual window: an ``ids`` search is
  near-real-time; two *processes* writing the same new id with different timestamps
  within one refresh interval could still race. Ids this process wrote are cached.)
- ``title``/``text``/``summary`` use the built-in ``indonesian`` analyzer with a
  ``.std`` sub-field (``standard``); topics, source, language, story_id, duplicate_of and
  the ids are keywords; ``@timestamp`` = published; topic evidence is stored (``topic``,
  ``score`` indexed, matched terms kept in ``_source`` only). ``dynamic: false`` so a new
  Article field never turns every write into a mapping error.

Writes. Every document is an ``update`` with ``scripted_upsert`` running
:data:`MERGE_SCRIPT`: it replaces the stored article by the new one but keeps the union
of ``also_published_at`` (so re-sending an original never loses the syndications that its
near-duplicates added). A near-duplicate is stored too, and adds a ``Syndication`` to its
original with the same script (no upsert: a missing original is skipped and logged, as
the local index does). One bulk action per target id per round, so the answer of every
action can be matched to what was sent by ``_id``.

``helpers.streaming_bulk(raise_on_error=False, raise_on_exception=False, max_retries=0)``
does the chunking (count and bytes); everything else is explicit here:

- an item 2xx is acknowledged; 429 / 5xx / 409 conflicts / missing answers are retried
  with bounded exponential backoff (jittered, injectable ``sleep``);
- an item rejected for its content (400 ``document_parsing_exception`` and other 4xx) goes
  to the dead-letter store (:mod:`connectors.deadletter`), replayable with
  ``newsmon deadletter replay``;
- items the server did not answer (a short ``items`` array: the helper silently drops
  them) are detected by comparing sent and answered ids, and retried;
- a whole request refused with 429/5xx or a connection error/timeout is retried; when
  nothing could be written after the retries, :class:`ClusterUnreachable` (a
  ``SinkUnavailable``) is raised and the driver keeps the batch;
- 401/403, a server that is not Elasticsearch (product header), or a whole request
  refused with another 4xx raise :class:`ClusterRefused` (also a ``SinkUnavailable``):
  an operator must act, so nothing is dead-lettered.

Exceptions::

    SinkError (connectors.sink)
     ├── SinkUnavailable
     │    ├── ClusterUnreachable   transient: connection, timeout, whole-request 429/5xx
     │    └── ClusterRefused       needs an operator: auth, wrong product/version, bad request
     └── SetupError                template installation failed

Secrets (API key, password, URL user-info) never reach logs, metrics, errors or the
dead-letter store: URLs are stripped of user-info before the client sees them and every
message built from a library error goes through :func:`redact`.

Client version: the ``elasticsearch`` client's major must equal the cluster's (9.x client
for 9.x clusters, the default; for an 8.x cluster install ``elasticsearch>=8.13,<9``).
This module uses only APIs that both majors share.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch, helpers
from elasticsearch.exceptions import UnsupportedProductError

from connectors.deadletter import DeadLetterStore
from connectors.sink import SearchHit, SinkError, SinkUnavailable, WriteResult
from pipelines import metrics
from pipelines.config import ElasticsearchConfig
from transforms.records import Article, Syndication

log = logging.getLogger(__name__)

SINK_NAME = "elasticsearch"
TEMPLATE_VERSION = 1
SUPPORTED_MAJORS = (8, 9)


# --------------------------------------------------------------------------- errors


class ClusterUnreachable(SinkUnavailable):
    """The cluster could not be reached or kept refusing whole requests (transient)."""


class ClusterRefused(SinkUnavailable):
    """The cluster refused us for a reason an operator must fix (auth, product, version)."""


class SetupError(SinkError):
    """Installing the index template failed."""


class _WholeRequestTransient(Exception):
    """Internal: a whole request was answered 408/429/5xx (retried like a connection error)."""


_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def secrets_of(config: ElasticsearchConfig) -> list[str]:
    """Every string that must never be shown: API key, password, the Basic auth token."""
    found = [s for s in (config.api_key, config.password) if s]
    if config.username and config.password:
        found.append(base64.b64encode(f"{config.username}:{config.password}".encode()).decode())
    if config.api_key:
        found.append(base64.b64encode(config.api_key.encode()).decode())
    for url in config.urls:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, config: ElasticsearchConfig) -> str:
    """``text`` with URL user-info and every secret of ``config`` replaced by ``***``."""
    text = _USERINFO.sub("***@", text)
    for secret in secrets_of(config):
        text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------- client


def _split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    parts = urlsplit(url)
    if not parts.username:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (parts.username, parts.password or "")


def make_client(
    config: ElasticsearchConfig, *, request_timeout: float = 30.0, max_retries: int = 3
) -> Elasticsearch:
    """A client for ``config.urls`` with API key or basic auth; TLS verified unless disabled.

    User-info in a URL (``https://user:pass@host``) is turned into basic auth so it never
    appears in the client's own log lines.
    """
    if not config.urls:
        raise ClusterRefused("no Elasticsearch URL configured (NEWSMON_ES_URL)")
    hosts: list[str] = []
    url_auth: tuple[str, str] | None = None
    for url in config.urls:
        clean, auth = _split_userinfo(url)
        hosts.append(clean)
        url_auth = url_auth or auth
    kwargs: dict[str, Any] = {
        "request_timeout": request_timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "verify_certs": config.verify_certs,
    }
    if config.ca_cert:
        kwargs["ca_certs"] = config.ca_cert
    if config.api_key:
        kwargs["api_key"] = config.api_key
    elif config.username:
        kwargs["basic_auth"] = (config.username, config.password or "")
    elif url_auth:
        kwargs["basic_auth"] = url_auth
    try:
        return Elasticsearch(hosts, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ClusterRefused(f"invalid Elasticsearch settings: {redact(str(exc), config)}") from None


# --------------------------------------------------------------------------- index design


def index_pattern(prefix: str) -> str:
    return f"{prefix}-articles-*"


def template_name(prefix: str) -> str:
    return f"{prefix}-articles"


def index_for(prefix: str, article: Article) -> str:
    """The monthly index an article belongs to (deterministic: from ``@timestamp``)."""
    ts = article.published or article.first_seen
    return f"{prefix}-articles-{ts.year:04d}.{ts.month:02d}"


def _text(analyzer: str = "indonesian") -> dict[str, Any]:
    return {"type": "text", "analyzer": analyzer, "fields": {"std": {"type": "text", "analyzer": "standard"}}}


KW = {"type": "keyword"}
KW_STORED = {"type": "keyword", "index": False, "doc_values": False}

MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "id": KW,
        "url": KW,
        "canonical_url": KW,
        "source": KW,
        "title": _text(),
        "text": _text(),
        "summary": _text(),
        "published": {"type": "date"},
        "first_seen": {"type": "date"},
        "feed_id": KW,
        "feed_url": KW,
        "language": KW,
        "language_confidence": {"type": "float"},
        "authors": KW,
        "extraction": KW,
        "topics": KW,
        "topic_evidence": {
            "properties": {
                "topic": KW,
                "score": {"type": "float"},
                "threshold": {"type": "float"},
                "rule_version": KW,
                "matched": {"type": "object", "enabled": False},
                "reasons": KW_STORED,
            }
        },
        "duplicate_of": KW,
        "duplicate_kind": KW,
        "is_duplicate": {"type": "boolean"},
        "similarity": {"type": "float"},
        "story_id": KW,
        "also_published_at": {
            "properties": {
                "id": KW,
                "url": KW,
                "source": KW,
                "first_seen": {"type": "date"},
                "kind": KW,
                "similarity": {"type": "float"},
            }
        },
        "text_hash": KW,
        "fingerprint": KW_STORED,
    },
}


def index_template(prefix: str) -> dict[str, Any]:
    """The body of ``PUT _index_template/<prefix>-articles``."""
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "refresh_interval": "1s"},
            "mappings": MAPPINGS,
        },
        "_meta": {"managed_by": "newsmon", "version": TEMPLATE_VERSION},
    }


def article_document(article: Article) -> dict[str, Any]:
    """The stored document: ``Article.to_dict()`` plus ``@timestamp`` and ``is_duplicate``."""
    doc = article.to_dict()
    doc["@timestamp"] = doc["published"] or doc["first_seen"]
    doc["is_duplicate"] = article.duplicate_of is not None
    return doc



# The one script every write runs. Semantics (the ES test server implements exactly these):
# params.doc (or null) replaces the whole _source; also_published_at becomes the union, by
# id, of the stored list, params.doc's list and params.add (first occurrence wins), sorted by
# (first_seen, id). With no doc and nothing new to add the operation is a noop.
MERGE_SCRIPT = """
List old = ctx._source.also_published_at == null ? new ArrayList() : ctx._source.also_published_at;
Map byId = new HashMap();
List merged = new ArrayList();
for (def s : old) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
int before = merged.size();
if (params.doc != null) {
  for (def s : params.doc.also_published_at) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
}
for (def s : params.add) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
if (params.doc == null && merged.size() == before) { ctx.op = 'noop'; return; }
merged.sort((a, b) -> { int c = a.first_seen.compareTo(b.first_seen); return c != 0 ? c : a.id.compareTo(b.id); });
if (params.doc != null) { ctx._source.clear(); ctx._source.putAll(params.doc); }
ctx._source.also_published_at = merged;
""".strip()


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True, slots=True)
class Unit:
    """One thing an article needs done: store itself (``doc``) or annotate its original (``add``)."""

    article: Article
    kind: str  # "doc" | "add"

    @property
    def target(self) -> str:
        return self.article.id if self.kind == "doc" else (self.article.duplicate_of or "")


@dataclass(slots=True)
class Action:
    index: str
    id: str
    doc: dict[str, Any] | None
    add: list[dict[str, Any]]
    units: list[Unit]

    def bulk_lines(self) -> tuple[dict[str, Any], dict[str, Any]]:
        header = {"update": {"_index": self.index, "_id": self.id, "retry_on_conflict": 3}}
        body: dict[str, Any] = {
            "script": {
                "source": MERGE_SCRIPT,
                "lang": "painless",
                "params": {"doc": self.doc, "add": self.add},
            }
        }
        if self.doc is not None:
            body["scripted_upsert"] = True
            body["upsert"] = {}
        return header, body


def units_for(articles: Iterable[Article]) -> list[Unit]:
    units: list[Unit] = []
    for a in articles:
        units.append(Unit(a, "doc"))
        if a.duplicate_of and a.duplicate_of != a.id:
            units.append(Unit(a, "add"))
    return units


def plan_actions(
    units: Sequence[Unit], *, prefix: str, locations: Mapping[str, str]
) -> tuple[list[Action], list[Unit]]:
    """Group units into one action per target id; returns (actions, units whose target is unknown).

    ``locations`` maps ids to the index they already live in. A ``doc`` unit goes there, or
    to its monthly index; an ``add`` unit needs its original's location (known, or a ``doc``
    unit in this round).
    """
    by_target: dict[str, Action] = {}
    for u in units:
        if u.kind == "doc":
            index = locations.get(u.article.id) or index_for(prefix, u.article)
            act = by_target.setdefault(u.target, Action(index, u.target, None, [], []))
            act.index = index
            act.doc = article_document(u.article)
            act.units.insert(0, u)
    unplaced: list[Unit] = []
    for u in units:
        if u.kind != "add":
            continue
        act = by_target.get(u.target)
        if act is None:
            where = locations.get(u.target)
            if where is None:
                unplaced.append(u)
                continue
            act = by_target.setdefault(u.target, Action(where, u.target, None, [], []))
        act.add.append(Syndication.of(u.article).to_dict())
        act.units.append(u)
    return list(by_target.values()), unplaced


# --------------------------------------------------------------------------- outcome classes

OK, RETRY, REJECT, MISSING = "ok", "retry", "reject", "missing"

_TRANSIENT_TYPES = {
    "es_rejected_execution_exception",
    "circuit_breaking_exception",
    "unavailable_shards_exception",
    "no_shard_available_action_exception",
    "node_not_connected_exception",
    "version_conflict_engine_exception",
    "process_cluster_event_timeout_exception",
    "index_not_found_exception",  # setup not run or index being created: not the document's fault
    "cluster_block_exception",
}


def classify_item(status: int, error_type: str | None, *, add_only: bool) -> str:
    """Sort one bulk item's answer: ok, retry (transient), reject (permanent) or missing original."""
    if 200 <= status < 300:
        return OK
    if status == 404 and add_only and error_type == "document_missing_exception":
        return MISSING
    if status in (408, 409, 429) or status >= 500 or (error_type in _TRANSIENT_TYPES):
        return RETRY
    return REJECT


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (1-based): jittered ``base * 2**(attempt-1)``, at most ``cap``."""
    full = min(cap, base * 2 ** (attempt - 1))
    return full * (0.5 + 0.5 * rng.random())


# --------------------------------------------------------------------------- the sink


@dataclass(slots=True)
class _Tally:
    acked: dict[str, str] = field(default_factory=dict)  # id -> result (created/updated/noop)
    retry: dict[str, str] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)


class ElasticsearchSink:
    """Writes articles to monthly indices; implements ``connectors.sink.SearchableSink``."""

    name = SINK_NAME

    def __init__(
        self,
        config: ElasticsearchConfig,
        *,
        deadletter_dir: Path,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = 500,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        request_timeout: float = 30.0,
        client: Elasticsearch | None = None,
        locate_existing: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0 or chunk_size < 1 or max_chunk_bytes < 1024:
            raise ValueError("max_retries >= 0, chunk_size >= 1 and max_chunk_bytes >= 1024 are required")
        self.config = config
        self.prefix = config.index_prefix
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.locate_existing = locate_existing
        self._rng = rng or random.Random()
        base = client if client is not None else make_client(config, request_timeout=request_timeout)
        self.client = base
        # our loop does every retry (counted, backed off); the transport must not add its own
        self._bulk_client = base.options(max_retries=0)
        self.deadletters = DeadLetterStore(deadletter_dir)
        self._where: OrderedDict[str, str] = OrderedDict()  # ids this process wrote -> index
        self._where_max = 100_000
        self._lock = threading.Lock()

    # -- writing ------------------------------------------------------------------------------
    def write(self, articles: Sequence[Article]) -> WriteResult:
        latest: dict[str, Article] = {}
        for a in articles:
            latest[a.id] = a
        # originals before their duplicates, so an original is stored before it is annotated
        ordered = sorted(latest.values(), key=lambda a: a.duplicate_of is not None)
        tally = _Tally()
        unreachable: str | None = None
        for start in range(0, len(ordered), self.chunk_size):
            problem = self._write_slice(ordered[start : start + self.chunk_size], tally)
            unreachable = unreachable or problem
        self._adopt_copies([a for a in ordered if a.duplicate_of is None and a.also_published_at and a.id in tally.acked])
        m = metrics.get()
        for outcome in tally.acked.values():
            m.articles_indexed.labels(SINK_NAME, "indexed" if outcome == "created" else "updated").inc()
        if tally.retry:
            m.articles_indexed.labels(SINK_NAME, "failed").inc(len(tally.retry))
        if unreachable and not tally.acked and not tally.dead:
            raise ClusterUnreachable(
                f"Elasticsearch unreachable after {self.max_retries} retries: {unreachable}"
            )
        errors = {**tally.retry, **tally.dead}
        return WriteResult(
            acknowledged=tuple(i for i in latest if i in tally.acked),
            retry=tuple(i for i in latest if i in tally.retry),
            dead_lettered=tuple(i for i in latest if i in tally.dead),
            errors=errors,
        )

    def _write_slice(self, articles: Sequence[Article], tally: _Tally) -> str | None:
        """Write one slice with bounded retries; returns the last whole-request problem, if any."""
        pending = units_for(articles)
        unit_result: dict[tuple[str, str], str] = {}  # (article id, kind) -> created/updated/noop/missing
        reasons: dict[str, str] = {}
        whole_problem: str | None = None
        m = metrics.get()
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            if attempt:
                m.bulk_retries.labels(SINK_NAME).inc(len(pending))
                self.sleep(backoff_delay(attempt, base=self.backoff, cap=self.max_backoff, rng=self._rng))
            try:
                locations = self._locate({u.target for u in pending})
                actions, unplaced = plan_actions(pending, prefix=self.prefix, locations=locations)
                for u in unplaced:
                    log.info("original %s of %s not found; syndication not recorded", u.target, u.article.id)
                    unit_result[(u.article.id, u.kind)] = "missing"
            except (TransportConnectionError, ConnectionTimeout, _WholeRequestTransient) as exc:
                whole_problem = redact(f"{type(exc).__name__}: {exc}", self.config)
                log.warning("bulk attempt %d failed: %s", attempt + 1, whole_problem)
                for u in pending:
                    reasons[u.article.id] = whole_problem
                continue
            answers: dict[str, tuple[int, str | None, str, str]] = {}
            whole_problem = self._send(actions, answers)
            if whole_problem:
                log.warning("bulk attempt %d: %s", attempt + 1, whole_problem)
            pending = self._settle(actions, answers, whole_problem, unit_result, reasons, tally)
        # anything still pending failed transiently
        for u in pending:
            if u.article.id not in tally.dead:
                tally.retry[u.article.id] = reasons.get(u.article.id, "not acknowledged")
        for a in articles:
            if a.id in tally.dead or a.id in tally.retry:
                continue
            own = unit_result.get((a.id, "doc"))
            if own is not None:
                tally.acked[a.id] = own
        return whole_problem

    def _settle(
        self,
        actions: Sequence[Action],
        answers: Mapping[str, tuple[int, str | None, str, str]],
        whole_problem: str | None,
        unit_result: dict[tuple[str, str], str],
        reasons: dict[str, str],
        tally: _Tally,
    ) -> list[Unit]:
        still: list[Unit] = []
        for act in actions:
            answer = answers.get(act.id)
            if answer is None:
                why = whole_problem or "no answer for this item in the bulk response"
                for u in act.units:
                    reasons[u.article.id] = why
                still.extend(act.units)
                continue
            status, etype, reason, result = answer
            add_only = act.doc is None
            verdict = classify_item(status, etype, add_only=add_only)
            if verdict == OK:
                with self._lock:
                    self._remember(act.id, act.index)
                for u in act.units:
                    unit_result[(u.article.id, u.kind)] = result
            elif verdict == MISSING:
                log.info("original %s vanished; syndication not recorded", act.id)
                for u in act.units:
                    unit_result[(u.article.id, u.kind)] = "missing"
            elif verdict == RETRY:
                for u in act.units:
                    reasons[u.article.id] = f"{status} {etype}: {reason}"
                still.extend(act.units)
            else:
                why = redact(f"{status} {etype}: {reason}", self.config)
                doc_units = [u for u in act.units if u.kind == "doc"]
                blamed = doc_units or act.units
                for u in blamed:
                    self._dead_letter(u.article, why, tally)
                # syndications that rode along with a rejected document are sent again alone
                still.extend(u for u in act.units if u not in blamed and u.article.id not in tally.dead)
        return [u for u in still if u.article.id not in tally.dead]

    def _dead_letter(self, article: Article, reason: str, tally: _Tally) -> None:
        if article.id in tally.dead:
            return
        self.deadletters.add(SINK_NAME, article, reason)
        tally.dead[article.id] = reason
        tally.acked.pop(article.id, None)
        m = metrics.get()
        m.dead_letters.labels(SINK_NAME).inc()
        m.articles_indexed.labels(SINK_NAME, "dead_letter").inc()
        log.warning("dead-lettered %s: %s", article.id, reason)

    def _remember(self, doc_id: str, index: str) -> None:
        self._where[doc_id] = index
        self._where.move_to_end(doc_id)
        while len(self._where) > self._where_max:
            self._where.popitem(last=False)

    def _adopt_copies(self, originals: Sequence[Article]) -> None:
        """Point stored articles that an original lists as copies at it: dedup re-pointed an
        earlier original to this older article, so the earlier one must now be hidden as a copy.
        Partial updates (a noop for copies already pointing here). Best effort: a failure is
        logged, and the next write of the original repeats it."""
        wanted = {s.id: (a, s) for a in originals for s in a.also_published_at if s.id != a.id}
        if not wanted:
            return
        try:
            where = self._locate(set(wanted))
            actions = [
                {
                    "_op_type": "update",
                    "_index": where[cid],
                    "_id": cid,
                    "doc": {
                        "duplicate_of": orig.id,
                        "is_duplicate": True,
                        "duplicate_kind": syn.kind,
                        "similarity": syn.similarity,
                        "also_published_at": [],
                    },
                }
                for cid, (orig, syn) in wanted.items()
                if cid in where
            ]
            helpers.bulk(self._bulk_client, actions, raise_on_error=False, raise_on_exception=False)
        except Exception as exc:  # best effort: never fails the write it follows
            log.warning("could not re-point %d copies: %s", len(wanted), redact(str(exc), self.config))

    def _locate(self, ids: set[str]) -> dict[str, str]:
        """Where each id already lives (this process's cache, then one ``ids`` query)."""
        with self._lock:
            found = {i: self._where[i] for i in ids if i in self._where}
        unknown = sorted(ids - set(found))
        if not unknown or not self.locate_existing:
            return found
        try:
            resp = self._bulk_client.search(
                index=index_pattern(self.prefix),
                query={"ids": {"values": unknown}},
                source=False,
                size=len(unknown),
                allow_no_indices=True,
                ignore_unavailable=True,
            )
        except ApiError as exc:
            self._raise_whole(exc)
        for hit in resp["hits"]["hits"]:
            found.setdefault(hit["_id"], hit["_index"])
        return found

    def _raise_whole(self, exc: ApiError) -> None:
        """A whole request failed with an API error: transient ones become a connection-like error."""
        status = getattr(exc, "status_code", 0) or 0
        message = redact(f"{status} {exc}", self.config)
        if isinstance(exc, UnsupportedProductError):
            raise ClusterRefused(
                f"the server at {redact(','.join(self.config.urls), self.config)} is not Elasticsearch"
            ) from None
        if status in (408, 429) or status >= 500:
            raise _WholeRequestTransient(f"whole request refused: {message}") from None
        raise ClusterRefused(f"Elasticsearch refused the request: {message}") from None

    def _send(
        self, actions: Sequence[Action], answers: dict[str, tuple[int, str | None, str, str]]
    ) -> str | None:
        """One streaming_bulk pass; fills ``answers`` by _id, returns the whole-request problem, if any.

        Answers of chunks sent before a connection error are kept (they were acknowledged).
        """
        try:
            return self._stream(actions, answers)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            return redact(f"{type(exc).__name__}: {exc}", self.config)

    def _stream(
        self, actions: Sequence[Action], answers: dict[str, tuple[int, str | None, str, str]]
    ) -> str | None:
        whole: str | None = None
        for _ok, item in helpers.streaming_bulk(
            self._bulk_client,
            actions,
            chunk_size=self.chunk_size,
            max_chunk_bytes=self.max_chunk_bytes,
            expand_action_callback=Action.bulk_lines,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=0,
            yield_ok=True,
        ):
            ((_, info),) = item.items()
            exc = info.get("exception")
            if isinstance(exc, ApiError):
                try:
                    self._raise_whole(exc)
                except _WholeRequestTransient as transient:
                    whole = str(transient)
                    continue  # this chunk's items stay unanswered -> retried
            status = int(info.get("status", 500))
            err = info.get("error")
            etype = err.get("type") if isinstance(err, dict) else None
            reason = (err.get("reason") or "") if isinstance(err, dict) else (str(err) if err else "")
            answers[str(info.get("_id"))] = (status, etype, reason, str(info.get("result", "")))
        return whole

    # -- reading ------------------------------------------------------------------------------
    def search(self, query: str, *, limit: int = 10, include_duplicates: bool = False) -> list[SearchHit]:
        must: list[dict[str, Any]] = [
            {
                "simple_query_string": {
                    "query": query,
                    "fields": ["title^3", "title.std^2", "text", "text.std"],
                    "default_operator": "and",
                }
            }
        ]
        q: dict[str, Any] = {"bool": {"must": must}}
        if not include_duplicates:
            q["bool"]["must_not"] = [{"exists": {"field": "duplicate_of"}}]
        try:
            resp = self.client.search(
                index=index_pattern(self.prefix),
                query=q,
                size=limit,
                sort=[{"_score": "desc"}, {"@timestamp": "desc"}],
                source_excludes=["fingerprint", "topic_evidence"],
                allow_no_indices=True,
                ignore_unavailable=True,
            )
        except ApiError as exc:
            self._raise_whole(exc)
        except TransportError as exc:
            raise ClusterUnreachable(redact(f"{type(exc).__name__}: {exc}", self.config)) from None
        return [_hit(h, query) for h in resp["hits"]["hits"]]

    def count(self) -> int:
        try:
            resp = self.client.count(
                index=index_pattern(self.prefix), allow_no_indices=True, ignore_unavailable=True
            )
        except ApiError as exc:
            self._raise_whole(exc)
        except TransportError as exc:
            raise ClusterUnreachable(redact(f"{type(exc).__name__}: {exc}", self.config)) from None
        return int(resp["count"])

    def get(self, article_id: str) -> Article | None:
        """The stored article (realtime for ids this process wrote; else via an ``ids`` search)."""
        where = self._locate({article_id}).get(article_id)
        if where is None:
            return None
        resp = self.client.options(ignore_status=404).get(index=where, id=article_id)
        return Article.from_dict(resp["_source"]) if resp.get("found") else None

    def refresh(self) -> None:
        self.client.indices.refresh(index=index_pattern(self.prefix), allow_no_indices=True)

    def close(self) -> None:
        self.deadletters.close()
        self.client.close()


_WORD = re.compile(r"\w+", re.UNICODE)


def snippet(text: str, query: str, *, width: int = 160) -> str:
    """A window of ``text`` around the first query word (client-side; no highlighter needed)."""
    words = [w.lower() for w in _WORD.findall(query) if w.lower() not in ("and", "or", "not")]
    low = text.lower()
    pos = min((p for p in (low.find(w) for w in words) if p >= 0), default=0)
    start = max(0, pos - width // 3)
    piece = " ".join(text[start : start + width].split())
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def _hit(h: Mapping[str, Any], query: str) -> SearchHit:
    d = h.get("_source") or {}
    score = h.get("_score")
    return SearchHit(
        id=str(h["_id"]),
        url=d.get("url", ""),
        title=d.get("title", ""),
        source=d.get("source", ""),
        published=d.get("published"),
        snippet=snippet(d.get("text") or d.get("summary") or "", query),
        score=round(float(score), 3) if score is not None else 0.0,
        topics=tuple(d.get("topics") or ()),
        duplicate_of=d.get("duplicate_of"),
    )


# --------------------------------------------------------------------------- setup


def setup_elasticsearch(config: ElasticsearchConfig, *, client: Elasticsearch | None = None) -> list[str]:
    """Check the cluster and install the index template; idempotent. Returns what it did."""
    es = client or make_client(config)
    done: list[str] = []
    name = template_name(config.index_prefix)
    body = index_template(config.index_prefix)
    try:
        info = es.info()
        version = str(info["version"]["number"])
        major = int(version.split(".")[0])
        if major not in SUPPORTED_MAJORS:
            raise ClusterRefused(f"Elasticsearch {version} is not supported (need 8.x or 9.x)")
        done.append(f"cluster {info.get('cluster_name', '?')} runs Elasticsearch {version}")
        current = es.options(ignore_status=404).indices.get_index_template(name=name)
        existing = (
            [t["index_template"] for t in current.body.get("index_templates", [])]
            if current.meta.status == 200
            else []
        )
        if existing and _same_template(existing[0], body):
            done.append(f"index template {name} already up to date")
        else:
            es.indices.put_index_template(
                name=name,
                index_patterns=body["index_patterns"],
                priority=body["priority"],
                template=body["template"],
                meta=body["_meta"],
            )
            done.append(
                f"index template {name} {'updated' if existing else 'installed'} for {body['index_patterns'][0]}"
            )
    except ApiError as exc:
        if isinstance(exc, UnsupportedProductError):
            raise ClusterRefused(
                "the server is not Elasticsearch (missing X-Elastic-Product header)"
            ) from None
        if getattr(exc, "status_code", 0) in (401, 403):
            raise ClusterRefused(
                f"Elasticsearch refused our credentials: {redact(str(exc), config)}"
            ) from None
        raise SetupError(f"installing the index template failed: {redact(str(exc), config)}") from None
    except TransportError as exc:
        raise ClusterUnreachable(
            redact(f"cannot reach Elasticsearch: {type(exc).__name__}: {exc}", config)
        ) from None
    finally:
        if client is None:
            es.close()
    return done


def _same_template(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Compare on what we manage (servers add defaults and stringify settings)."""
    meta = stored.get("_meta") or {}
    return (
        list(stored.get("index_patterns", [])) == list(wanted["index_patterns"])
        and meta.get("version") == wanted["_meta"]["version"]
        and meta.get("managed_by") == "newsmon"
        and (stored.get("template") or {}).get("mappings", {}).get("properties", {}).keys()
        == wanted["template"]["mappings"]["properties"].keys()
    )


# --------------------------------------------------------------------------- Beam
#
# Built on first access (PEP 562 ``__getattr__``) so the CLI, search and setup never import Beam.


def _without_secrets(config: ElasticsearchConfig) -> ElasticsearchConfig:
    return replace(config, api_key=None, password=None)


def _build_beam_classes() -> dict[str, Any]:
    import apache_beam as beam
    from apache_beam.utils.windowed_value import WindowedValue

    class _BulkWriteFn(beam.DoFn):  # type: ignore[misc]
        """Buffers articles and writes them in batches; emits acknowledged ids.

        Secrets are not pickled with the DoFn: ``setup`` reads them from the worker's
        environment (``NEWSMON_ES_API_KEY`` / ``NEWSMON_ES_PASSWORD``), which is where the
        CLI read them in the first place.
        """

        def __init__(self, config: ElasticsearchConfig, deadletter_dir: str, batch_size: int) -> None:
            self._config = _without_secrets(config)
            self._deadletter_dir = deadletter_dir
            self._batch_size = batch_size
            self._sink: ElasticsearchSink | None = None
            self._buffer: list[tuple[Article, Any]] = []

        def setup(self) -> None:
            import os

            from pipelines.config import Config, from_environment

            env_es = from_environment(Config(feeds=()), os.environ).elasticsearch
            config = replace(self._config, api_key=env_es.api_key, password=env_es.password)
            self._sink = ElasticsearchSink(config, deadletter_dir=Path(self._deadletter_dir))

        def start_bundle(self) -> None:
            self._buffer = []

        def process(self, article: Article, window: Any = beam.DoFn.WindowParam) -> Iterator[WindowedValue]:
            self._buffer.append((article, window))
            if len(self._buffer) >= self._batch_size:
                yield from self._flush()

        def finish_bundle(self) -> Iterator[WindowedValue]:
            yield from self._flush()

        def _flush(self) -> Iterator[WindowedValue]:
            if not self._buffer:
                return
            assert self._sink is not None
            batch, self._buffer = self._buffer, []
            result = self._sink.write([a for a, _ in batch])
            if result.retry:
                # let the runner retry the bundle: every write is idempotent on Article.id
                raise ClusterUnreachable(f"{len(result.retry)} documents not acknowledged after retries")
            acked = set(result.acknowledged)
            for article, window in batch:
                if article.id in acked:
                    yield WindowedValue(article.id, window.max_timestamp(), [window])

        def teardown(self) -> None:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    class WriteToElasticsearch(beam.PTransform):  # type: ignore[misc]
        """``PCollection[Article]`` -> ``PCollection[str]`` of acknowledged ids.

        Ids are fixed (``Article.id``) before the ``Reshuffle``, so a retried bundle overwrites
        instead of duplicating. Rejected documents go to the dead-letter store in
        ``deadletter_dir``; documents still failing transiently fail the bundle (the runner
        retries it).
        """

        def __init__(
            self,
            config: ElasticsearchConfig,
            *,
            deadletter_dir: str,
            batch_size: int = 500,
            reshuffle: bool = True,
        ) -> None:
            super().__init__()
            if not config.urls:
                raise ValueError("WriteToElasticsearch needs at least one URL")
            if batch_size < 1:
                raise ValueError("batch_size must be >= 1")
            self._config = config
            self._deadletter_dir = str(deadletter_dir)
            self._batch_size = batch_size
            self._reshuffle = reshuffle

        def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
            if self._reshuffle:
                pcoll = pcoll | "Reshuffle" >> beam.Reshuffle()
            return pcoll | "Bulk write" >> beam.ParDo(
                _BulkWriteFn(self._config, self._deadletter_dir, self._batch_size)
            )

    for cls in (_BulkWriteFn, WriteToElasticsearch):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return {"_BulkWriteFn": _BulkWriteFn, "WriteToElasticsearch": WriteToElasticsearch}


def __getattr__(name: str) -> Any:
    if name in ("WriteToElasticsearch", "_BulkWriteFn"):
        classes = _build_beam_classes()
        globals().update(classes)
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
