"""The retrying bulk sink for Elasticsearch and OpenSearch (one implementation, two clients).

``write`` plans one update action per target id (:mod:`connectors.elasticsearch.bulk`), sends them with
the engine's bulk helper (chunked by count and bytes) and settles every answer:

- an item 2xx is acknowledged; 429 / 5xx / 409 conflicts / missing answers are retried with
  bounded exponential backoff (jittered, injectable ``sleep``);
- an item rejected for its content (400 ``document_parsing_exception`` and other 4xx) goes to
  the dead-letter store (:mod:`connectors.deadletter`), replayable with ``newsmon deadletter replay``;
- items the server did not answer (a short ``items`` array: the helper silently drops them)
  are found by comparing sent and answered ids, and retried;
- a whole request refused with 429/5xx or a connection error/timeout is retried; when nothing
  could be written after the retries, :class:`ClusterUnreachable` (a ``SinkUnavailable``) is
  raised and the driver keeps the batch;
- 401/403, a server that is not the expected product, or a whole request refused with another
  4xx raise :class:`ClusterRefused` (also a ``SinkUnavailable``): an operator must act.

Metrics: the sink counts its own retries (``newsmon_bulk_retries_total``) and dead letters
(``newsmon_dead_letters_total``); ``newsmon_articles_indexed_total`` belongs to the caller
(``pipelines.process.write_batch``), which reads the outcome from the returned ``WriteResult``.

Exceptions::

    SinkError (connectors.sink)
     ├── SinkUnavailable
     │    ├── ClusterUnreachable   transient: connection, timeout, whole-request 429/5xx
     │    └── ClusterRefused       needs an operator: auth, wrong product/version, bad request
     └── SetupError                template installation failed
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from connectors import metrics
from connectors.deadletter import DeadLetterStore
from connectors.elasticsearch.bulk import (
    MISSING,
    OK,
    RETRY,
    Action,
    Unit,
    backoff_delay,
    classify_item,
    plan_actions,
    units_for,
)
from connectors.elasticsearch.client import (
    ClusterRefused,
    ClusterUnreachable,
    EngineApiError,
    EngineClient,
    EngineConnectionError,
    EngineProductError,
    engine_label,
    make_engine,
    redact,
)
from connectors.elasticsearch.schema import index_pattern
from connectors.elasticsearch.search import hit_of, search_body
from connectors.settings import ElasticsearchConfig
from connectors.sink import SearchHit, WriteResult
from transforms.records import Article

log = logging.getLogger(__name__)

Answer = tuple[int, str | None, str, str]  # status, error type, reason, result


class _WholeRequestTransient(Exception):
    """Internal: a whole request was answered 408/429/5xx (retried like a connection error)."""


@dataclass(slots=True)
class _Tally:
    acked: dict[str, str] = field(default_factory=dict)  # id -> result (created/updated/noop)
    retry: dict[str, str] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)


class ElasticsearchSink:
    """Writes articles to monthly indices; implements ``connectors.sink.SearchableSink``.

    ``config.engine`` picks the client (``elasticsearch`` or ``opensearch``); ``name`` (the
    metrics label and dead-letter sink name) is the engine's name.
    """

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
        client: EngineClient | None = None,
        locate_existing: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0 or chunk_size < 1 or max_chunk_bytes < 1024:
            raise ValueError("max_retries >= 0, chunk_size >= 1 and max_chunk_bytes >= 1024 are required")
        self.config = config
        self.name = config.engine
        self.prefix = config.index_prefix
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.locate_existing = locate_existing
        self._rng = rng or random.Random()
        self.client = client if client is not None else make_engine(config, request_timeout=request_timeout)
        # our loop does every retry (counted, backed off); the transport must not add its own
        self._bulk_client = self.client.without_retries()
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
        if unreachable and not tally.acked and not tally.dead:
            raise ClusterUnreachable(
                f"{engine_label(self.config)} unreachable after {self.max_retries} retries: {unreachable}"
            )
        errors = {**tally.retry, **tally.dead}
        return WriteResult(
            acknowledged=tuple(i for i in latest if i in tally.acked),
            retry=tuple(i for i in latest if i in tally.retry),
            dead_lettered=tuple(i for i in latest if i in tally.dead),
            errors=errors,
            updated=tuple(i for i in latest if tally.acked.get(i) not in (None, "created")),
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
                m.bulk_retries.labels(self.name).inc(len(pending))
                self.sleep(backoff_delay(attempt, base=self.backoff, cap=self.max_backoff, rng=self._rng))
            try:
                locations = self._locate({u.target for u in pending})
                actions, unplaced = plan_actions(pending, prefix=self.prefix, locations=locations)
                for u in unplaced:
                    log.info("original %s of %s not found; syndication not recorded", u.target, u.article.id)
                    unit_result[(u.article.id, u.kind)] = "missing"
            except (EngineConnectionError, _WholeRequestTransient) as exc:
                whole_problem = redact(f"{type(exc).__name__}: {exc}", self.config)
                log.warning("bulk attempt %d failed: %s", attempt + 1, whole_problem)
                for u in pending:
                    reasons[u.article.id] = whole_problem
                continue
            answers: dict[str, Answer] = {}
            whole_problem = self._send(actions, answers)
            if whole_problem:
                log.warning("bulk attempt %d: %s", attempt + 1, whole_problem)
            pending = self._settle(actions, answers, whole_problem, unit_result, reasons, tally)
        for u in pending:  # anything still pending failed transiently
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
        answers: Mapping[str, Answer],
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
            verdict = classify_item(status, etype, add_only=act.doc is None)
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
        self.deadletters.add(self.name, article, reason)
        tally.dead[article.id] = reason
        tally.acked.pop(article.id, None)
        metrics.get().dead_letters.labels(self.name).inc()
        log.warning("dead-lettered %s: %s", article.id, reason)

    def _remember(self, doc_id: str, index: str) -> None:
        self._where[doc_id] = index
        self._where.move_to_end(doc_id)
        while len(self._where) > self._where_max:
            self._where.popitem(last=False)

    def _adopt_copies(self, originals: Sequence[Article]) -> None:
        """Point stored articles that an original lists as copies at it: dedup re-pointed an
        earlier original to this older article, so the earlier one must now be hidden as a copy.
        Partial updates (a no-op for copies already pointing here). Best effort: a failure is
        logged, and the next write of the original repeats it."""
        wanted = {c.id: (a, c) for a in originals for c in a.also_published_at if c.id != a.id}
        if not wanted:
            return

        def update(action: tuple[str, str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
            index, doc_id, doc = action
            return {"update": {"_index": index, "_id": doc_id}}, {"doc": doc}

        try:
            where = self._locate(set(wanted))
            actions = [
                (where[cid], cid, {"duplicate_of": orig.id, "is_duplicate": True, "duplicate_kind": copy.kind,
                                   "similarity": copy.similarity, "also_published_at": []})
                for cid, (orig, copy) in wanted.items()
                if cid in where
            ]
            for _ in self._bulk_client.streaming_bulk(
                actions, chunk_size=self.chunk_size, max_chunk_bytes=self.max_chunk_bytes, expand=update
            ):
                pass
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
                index_pattern(self.prefix),
                {"query": {"ids": {"values": unknown}}, "_source": False, "size": len(unknown)},
            )
        except EngineApiError as exc:
            self._raise_whole(exc)
        for hit in resp["hits"]["hits"]:
            found.setdefault(hit["_id"], hit["_index"])
        return found

    def _raise_whole(self, exc: EngineApiError) -> NoReturn:
        """A whole request failed with an API error: transient ones become a connection-like error."""
        message = redact(str(exc), self.config)
        label = engine_label(self.config)
        if isinstance(exc, EngineProductError):
            raise ClusterRefused(
                f"the server at {redact(','.join(self.config.urls), self.config)} is not {label}"
            ) from None
        if exc.status in (408, 429) or exc.status >= 500:
            raise _WholeRequestTransient(f"whole request refused: {message}") from None
        raise ClusterRefused(f"{label} refused the request: {message}") from None

    def _send(self, actions: Sequence[Action], answers: dict[str, Answer]) -> str | None:
        """One streaming bulk pass; fills ``answers`` by _id, returns the whole-request problem, if any.

        Answers of chunks sent before a connection error are kept (they were acknowledged).
        """
        whole: str | None = None
        try:
            for info in self._bulk_client.streaming_bulk(
                actions, chunk_size=self.chunk_size, max_chunk_bytes=self.max_chunk_bytes, expand=Action.bulk_lines
            ):
                exc = info.get("exception")
                if isinstance(exc, EngineApiError):
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
        except EngineConnectionError as exc:
            return redact(f"{type(exc).__name__}: {exc}", self.config)
        except EngineApiError as exc:
            try:
                self._raise_whole(exc)
            except _WholeRequestTransient as transient:
                return str(transient)
        return whole

    # -- reading ------------------------------------------------------------------------------
    def _read(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except EngineApiError as exc:
            try:
                self._raise_whole(exc)
            except _WholeRequestTransient as transient:
                raise ClusterUnreachable(f"{engine_label(self.config)}: {transient}") from None
        except _WholeRequestTransient as transient:
            raise ClusterUnreachable(f"{engine_label(self.config)}: {transient}") from None
        except EngineConnectionError as exc:
            label = engine_label(self.config)
            urls = redact(",".join(self.config.urls), self.config)
            raise ClusterUnreachable(redact(f"cannot reach {label} at {urls}: {exc}", self.config)) from None

    def search(self, query: str, *, limit: int = 10, include_duplicates: bool = False) -> list[SearchHit]:
        body = search_body(query, limit=limit, include_duplicates=include_duplicates)
        resp = self._read(lambda: self.client.search(index_pattern(self.prefix), body))
        return [hit_of(h, query) for h in resp["hits"]["hits"]]

    def count(self) -> int:
        return int(self._read(lambda: self.client.count(index_pattern(self.prefix))))

    def get(self, article_id: str) -> Article | None:
        """The stored article (realtime for ids this process wrote; else via an ``ids`` search)."""
        where = self._read(lambda: self._locate({article_id})).get(article_id)
        if where is None:
            return None
        source = self._read(lambda: self.client.get_source(where, article_id))
        return Article.from_dict(source) if source is not None else None

    def refresh(self) -> None:
        self._read(lambda: self.client.refresh(index_pattern(self.prefix)))

    def close(self) -> None:
        self.deadletters.close()
        self.client.close()


OpenSearchSink = ElasticsearchSink  # the same class; config.engine == "opensearch" selects opensearch-py
