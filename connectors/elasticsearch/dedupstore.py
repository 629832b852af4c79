"""The shared dedup store: :class:`~connectors.dedupstore.DedupStore` in one Elasticsearch index.

When the pipeline runs on several workers (Flink, Dataflow) every worker must see the URL
ids, text hashes, LSH bands and story terms the others recorded. The SQLite store cannot be
shared, so this one keeps the same state in the index ``<prefix>-dedup`` (explicit mapping,
``dynamic: strict``, installed by the idempotent :meth:`ElasticsearchDedupStore.ensure_index`).
Three kinds of document, told apart by the keyword ``kind``:

``record`` (``_id`` = article id)
    One per decided article: ``text_hash``, ``bands`` and ``story_terms`` as ``keyword``
    arrays (exact-match lookups, never ranges), ``first_seen`` (date), ``shingles`` (``binary``,
    not indexed; the exact confirmation), the decision fields and ``also_published_at``
    (stored, not indexed). Copies keep their bands in ``_source`` but every query filters
    ``duplicate_of`` out, so as in SQLite only originals are candidates.
``url`` (``_id`` = ``url-<article id>``)
    :meth:`accept_url` is a ``create`` (``op_type=create``; 409 = seen). A conflicting
    document older than the window is replaced with ``if_seq_no``/``if_primary_term``, so
    of two workers reviving the same expired URL exactly one wins.
``lock`` (``_id`` = ``hash-<text hash>``)
    Closes the race below for exact copies.

Queries. ``candidates`` is one search: ``term`` on ``text_hash`` OR ``terms`` on ``bands``,
filtered by ``first_seen >= since``, originals only, the own id excluded. It asks only for
the small fields, counts shared bands client-side (a ``terms`` query scores every hit alike)
and ranks like SQLite (hash matches first, then most shared bands, earliest first); a second
``ids`` search fetches the full records (shingles) of the chosen few. ``story_candidates``
does the same on ``story_terms`` with ``min_shared``; ``term_frequencies`` is a ``terms``
aggregation with an ``include`` list over the originals plus their total.

Read-your-writes. ``lookup``, ``url_owner`` and lock reads are realtime GETs. Searches are
near-real-time, so an original is written with ``refresh="true"`` (configurable): the next
decision, on any worker, finds it. ``"wait_for"`` is gentler on the cluster but makes every
decision wait up to the index's ``refresh_interval`` (1 s; a cycle of 200 articles could
wait over three minutes). A dedup index takes a few thousand small writes a day, so the
extra small segments of ``true`` are cheap. Copies, URLs and syndications need no refresh
(an updated original stays searchable in its previous version until the next refresh).

The race. Two workers deciding two copies of one text at the same moment both search before
either has recorded: both find nothing and both become originals. The local driver never
meets this (a cycle is decided sequentially), a distributed runner does whenever two
workers' windows overlap. For exact copies :meth:`candidates` closes it: before searching it
``create``\\s the lock ``hash-<text hash>`` naming the article. The loser of that create (409)
reads the owner from the lock and waits (realtime GETs, up to ``lock_wait`` seconds) for the
owner's record; an original within the window then heads its candidates and the copy is
found. A lock whose owner never recorded (crashed worker) is taken over after ``lock_wait``,
one whose owner fell out of the window at once, both with ``if_seq_no``. Near copies keep a
residual race (their hashes differ; locking every LSH band would cost 24 creates per article
and still not order the two): decided within the same refresh on two workers, both stay
originals with separate stories (later copies attach to whichever matches best). The window
of that race is one decision (milliseconds to tens of milliseconds), not a cycle.

Pruning (every cycle, like SQLite): a refresh, then ``delete_by_query`` on
``first_seen < older_than`` (records, then URLs and locks; ``conflicts=proceed``). Locks
carry the wall-clock time of their claim. Daily indices dropped whole would be cheaper at
scale, but every lookup would then fan out over the window's indices and ``accept_url``'s
``create`` would no longer be atomic across index boundaries, so one index it is.

Errors are :class:`~connectors.dedupstore.DedupStoreError`; ``transient`` for connection
errors, timeouts, 408/429/5xx. Messages go through :func:`connectors.elasticsearch.redact`.
Secrets are never pickled: :class:`ElasticsearchDedupStoreFactory` drops them and reads
``NEWSMON_ES_API_KEY`` / ``NEWSMON_ES_PASSWORD`` from the worker's environment when called.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch

from connectors.elasticsearch.client import make_client, redact
from connectors.elasticsearch.schema import MERGE_SCRIPT
from connectors.settings import ElasticsearchConfig
from transforms.dedupstate import DedupRecord, DedupStoreError
from transforms.records import Syndication, dt_to_str, str_to_dt, to_utc, utcnow

log = logging.getLogger(__name__)

KW = {"type": "keyword"}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "kind": KW,  # record | url | lock
        "id": KW,
        "url": {"type": "keyword", "index": False, "doc_values": False},
        "source": KW,
        "owner": KW,
        "first_seen": {"type": "date"},
        "published": {"type": "date"},
        "text_hash": KW,
        "bands": KW,
        "shingles": {"type": "binary"},
        "story_terms": KW,
        "story_id": KW,
        "duplicate_of": KW,
        "duplicate_kind": KW,
        "similarity": {"type": "float"},
        "also_published_at": {"type": "object", "enabled": False},
    },
}
SETTINGS: dict[str, Any] = {"number_of_shards": 1, "refresh_interval": "1s"}
_BAND_FIELDS = ["text_hash", "bands", "first_seen"]  # what ranking needs (no shingles)
_STORY_FIELDS = ["story_terms", "first_seen"]


def index_name(prefix: str) -> str:
    return f"{prefix}-dedup"


def record_document(rec: DedupRecord) -> dict[str, Any]:
    return {
        "kind": "record",
        "id": rec.id,
        "url": rec.url,
        "source": rec.source,
        "first_seen": dt_to_str(rec.first_seen),
        "published": dt_to_str(rec.published),
        "text_hash": rec.text_hash,
        "bands": [str(b) for b in rec.bands],
        "shingles": base64.b64encode(rec.shingles).decode("ascii"),
        "story_terms": [str(t) for t in rec.story_terms],
        "story_id": rec.story_id,
        "duplicate_of": rec.duplicate_of,
        "duplicate_kind": rec.duplicate_kind,
        "similarity": rec.similarity,
        "also_published_at": [s.to_dict() for s in rec.also_published_at],
    }


def record_from(src: dict[str, Any]) -> DedupRecord:
    first_seen = str_to_dt(src["first_seen"])
    assert first_seen is not None
    return DedupRecord(
        id=src["id"],
        url=src["url"],
        source=src["source"],
        first_seen=first_seen,
        published=str_to_dt(src.get("published")),
        text_hash=src.get("text_hash") or "",
        bands=tuple(int(b) for b in src.get("bands") or ()),
        shingles=base64.b64decode(src.get("shingles") or ""),
        story_terms=tuple(int(t) for t in src.get("story_terms") or ()),
        story_id=src["story_id"],
        duplicate_of=src.get("duplicate_of"),
        duplicate_kind=src.get("duplicate_kind"),
        similarity=src.get("similarity"),
        also_published_at=tuple(Syndication.from_dict(s) for s in src.get("also_published_at") or ()),
    )


def _originals(exclude_id: str, since: datetime | None, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"term": {"kind": "record"}}, *extra]
    if since is not None:
        filters.append({"range": {"first_seen": {"gte": dt_to_str(since)}}})
    return [
        {
            "bool": {
                "filter": filters,
                "must_not": [{"exists": {"field": "duplicate_of"}}, {"ids": {"values": [exclude_id]}}],
            }
        }
    ]


def _rank_key(hit: dict[str, Any]) -> tuple[datetime | None, str]:
    return (str_to_dt(hit["_source"]["first_seen"]), str(hit["_id"]))


def _ranked(hits: list[dict[str, Any]], field: str, wanted: set[str], min_shared: int) -> list[str]:
    """Ids of hits sharing >= ``min_shared`` values of ``field`` with ``wanted``: most first, then earliest."""
    scored = [(len(wanted.intersection(h["_source"].get(field) or ())), h) for h in hits]
    kept = sorted(((n, h) for n, h in scored if n >= min_shared), key=lambda nh: (-nh[0], _rank_key(nh[1])))
    return [h["_id"] for _, h in kept]


class ElasticsearchDedupStore:
    """The shared dedup store (see the module docstring); implements ``DedupStore``."""

    def __init__(
        self,
        config: ElasticsearchConfig,
        *,
        window_days: float = 7.0,
        refresh: str = "true",
        lock_wait: float = 5.0,
        scan_size: int = 1000,
        client: Elasticsearch | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if window_days <= 0 or lock_wait < 0 or scan_size < 1 or refresh not in ("true", "wait_for", "false"):
            raise ValueError("window_days > 0, lock_wait >= 0, scan_size >= 1, refresh true|wait_for|false")
        self.config = config
        self.index = index_name(config.index_prefix)
        self.window = timedelta(days=window_days)
        self.refresh = refresh
        self.lock_wait = lock_wait
        self.scan_size = scan_size
        self._own_client = client is None
        self._es = client if client is not None else make_client(config)
        self._clock = clock
        self._sleep = sleep

    # -- plumbing --------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], **kw: Any) -> Any:
        """Call the client; wrap failures. A 404 for a missing index is never 'not found'."""
        try:
            resp = fn(index=self.index, **kw)
        except ApiError as exc:
            status = int(exc.meta.status)
            transient = status in (408, 429) or status >= 500
            raise DedupStoreError(
                redact(f"{self.index}: {what}: {status} {exc}", self.config), transient=transient
            ) from None
        except TransportError as exc:
            transient = isinstance(exc, (TransportConnectionError, ConnectionTimeout))
            raise DedupStoreError(
                redact(f"{self.index}: {what}: {type(exc).__name__}: {exc}", self.config), transient=transient
            ) from None
        body = getattr(resp, "body", None)
        if isinstance(body, dict) and (body.get("error") or {}).get("type") == "index_not_found_exception":
            raise DedupStoreError(f"{self.index} does not exist (run ensure_index)", transient=False)
        return resp

    def _create(self, doc_id: str, doc: dict[str, Any], *, refresh: str = "false") -> bool:
        """``op_type=create``: True if written, False if the id already exists."""
        es = self._es.options(ignore_status=409)
        resp = self._call("create", es.index, id=doc_id, document=doc, op_type="create", refresh=refresh)
        return bool(resp.meta.status != 409)

    def _replace(self, doc_id: str, doc: dict[str, Any], current: dict[str, Any]) -> bool:
        """Overwrite ``current`` only if nobody changed it since it was read."""
        es = self._es.options(ignore_status=409)
        seq, term = current["_seq_no"], current["_primary_term"]
        resp = self._call("replace", es.index, id=doc_id, document=doc, if_seq_no=seq, if_primary_term=term)
        return bool(resp.meta.status != 409)

    def _get(self, doc_id: str) -> dict[str, Any] | None:
        resp = self._call("get", self._es.options(ignore_status=404).get, id=doc_id)
        return dict(resp.body) if resp.body.get("found") else None

    def _search(self, what: str, query: dict[str, Any], *, size: int, source: Any = True) -> list[dict[str, Any]]:
        resp = self._call(
            what,
            self._es.search,
            query=query,
            size=size,
            source=source,
            sort=[{"first_seen": "asc"}, {"id": "asc"}],
        )
        hits = list(resp["hits"]["hits"])
        if size == self.scan_size and len(hits) == size:
            log.warning("%s: more than %d matches; ranking only the earliest", what, size)
        return hits

    def _fetch(self, ids: Sequence[str]) -> list[DedupRecord]:
        """Full records for ``ids``, in that order (one ``ids`` search; they were just found)."""
        if not ids:
            return []
        hits = self._search("fetch", {"ids": {"values": list(ids)}}, size=len(ids))
        by_id = {h["_id"]: record_from(h["_source"]) for h in hits}
        return [by_id[i] for i in ids if i in by_id]

    # -- setup -------------------------------------------------------------------------
    def ensure_index(self) -> bool:
        """Create ``<prefix>-dedup`` with its mapping unless it exists; True if created."""
        if self._call("exists", self._es.indices.exists):
            return False
        resp = self._call(
            "create index",
            self._es.options(ignore_status=400).indices.create,
            mappings=MAPPINGS,
            settings=SETTINGS,
        )
        if resp.meta.status == 400:
            if (resp.body.get("error") or {}).get("type") == "resource_already_exists_exception":
                return False  # another worker was quicker
            raise DedupStoreError(redact(f"{self.index}: create index: {resp.body}", self.config), transient=False)
        return True

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to group: every write is its own request, visible to the next read."""
        return contextlib.nullcontext()

    def close(self) -> None:
        if self._own_client:
            self._es.close()

    # -- URLs --------------------------------------------------------------------------
    def accept_url(self, article_id: str, url: str, *, now: datetime, owner: str | None = None) -> bool:
        """Atomically claim the URL id; False if it was already claimed within the window."""
        doc_id = f"url-{article_id}"
        doc = {"kind": "url", "url": url, "owner": owner or article_id, "first_seen": dt_to_str(now)}
        for _ in range(5):
            if self._create(doc_id, doc):
                return True
            current = self._get(doc_id)
            if current is None:
                continue  # pruned in between: claim again
            seen = str_to_dt(current["_source"]["first_seen"])
            if seen is not None and seen >= to_utc(now) - self.window:
                return False
            if self._replace(doc_id, doc, current):
                return True
        return False

    def url_owner(self, article_id: str) -> str | None:
        current = self._get(f"url-{article_id}")
        return None if current is None else str(current["_source"]["owner"])

    # -- records -----------------------------------------------------------------------
    def lookup(self, article_id: str) -> DedupRecord | None:
        current = self._get(article_id)
        if current is None or current["_source"].get("kind") != "record":
            return None
        return record_from(current["_source"])

    def candidates(
        self,
        *,
        text_hash: str,
        bands: Sequence[int],
        exclude_id: str,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[DedupRecord]:
        """Originals with the same text hash first, then those sharing LSH bands (most shared first).

        With a ``text_hash`` this first claims the text's lock for ``exclude_id`` (the article
        being decided), or waits for the original that holds it (module docstring, "The race").
        """
        claimed = self._claim_text(text_hash, exclude_id, since) if text_hash else None
        should: list[dict[str, Any]] = [{"terms": {"bands": [str(b) for b in bands]}}] if bands else []
        if text_hash:
            should.append({"term": {"text_hash": text_hash}})
        if not should:
            return []
        query = {"bool": {"filter": _originals(exclude_id, since), "should": should, "minimum_should_match": 1}}
        hits = self._search("candidates", query, size=self.scan_size, source=_BAND_FIELDS)
        same = [h for h in hits if text_hash and h["_source"].get("text_hash") == text_hash]
        exact = [h["_id"] for h in sorted(same, key=_rank_key)][:5]
        ids = list(dict.fromkeys(exact + _ranked(hits, "bands", {str(b) for b in bands}, 1)[:limit]))
        if claimed is None:
            return self._fetch(ids)
        return [claimed, *(r for r in self._fetch(ids) if r.id != claimed.id)]

    def _claim_text(self, text_hash: str, article_id: str, since: datetime | None) -> DedupRecord | None:
        """Claim ``text_hash`` for ``article_id`` (None), or return the original that claimed it first."""
        doc_id = f"hash-{text_hash}"
        doc = {
            "kind": "lock",
            "owner": article_id,
            "text_hash": text_hash,
            "first_seen": dt_to_str(self._clock()),
        }
        poll = max(0.01, min(0.05, self.lock_wait / 10))
        for _ in range(int(self.lock_wait / poll) + 5):
            if self._create(doc_id, doc):
                return None
            lock = self._get(doc_id)
            if lock is None:
                continue  # pruned in between
            owner = str(lock["_source"]["owner"])
            if owner == article_id:
                return None
            rec = self.lookup(owner)
            if rec is not None and rec.duplicate_of is not None:
                return None  # the text's first article was itself a copy: its root is found by bands
            if rec is not None and (since is None or rec.first_seen >= to_utc(since)):
                return rec
            claimed_at = str_to_dt(lock["_source"]["first_seen"]) or self._clock()
            if rec is not None or (self._clock() - claimed_at).total_seconds() >= self.lock_wait:
                if self._replace(doc_id, doc, lock):  # owner out of window, or never recorded
                    return None
                continue
            self._sleep(poll)  # the owner is being decided on another worker right now
        log.warning("text hash %s stayed locked by an unrecorded article; deciding without it", text_hash[:12])
        return None

    def story_candidates(
        self, *, terms: Sequence[int], exclude_id: str, since: datetime, min_shared: int, limit: int = 30
    ) -> list[DedupRecord]:
        """Originals first seen since ``since`` sharing at least ``min_shared`` story terms."""
        if not terms:
            return []
        wanted = {str(t) for t in terms}
        query = {"bool": {"filter": [*_originals(exclude_id, since), {"terms": {"story_terms": sorted(wanted)}}]}}
        hits = self._search("story candidates", query, size=self.scan_size, source=_STORY_FIELDS)
        return self._fetch(_ranked(hits, "story_terms", wanted, min_shared)[:limit])

    def term_frequencies(self, terms: Sequence[int]) -> tuple[dict[int, int], int]:
        """(document frequency per story term, number of originals) within the window."""
        wanted = sorted({str(t) for t in terms})
        aggs = {"df": {"terms": {"field": "story_terms", "include": wanted, "size": len(wanted)}}} if wanted else None
        query = {
            "bool": {
                "filter": [{"term": {"kind": "record"}}],
                "must_not": [{"exists": {"field": "duplicate_of"}}],
            }
        }
        resp = self._call("term frequencies", self._es.search, query=query, size=0, track_total_hits=True, aggs=aggs)
        buckets = resp.body.get("aggregations", {}).get("df", {}).get("buckets", []) if wanted else []
        return {int(b["key"]): int(b["doc_count"]) for b in buckets}, int(resp["hits"]["total"]["value"])

    def record(self, rec: DedupRecord) -> None:
        """Store a decision; idempotent on ``rec.id`` (``create``: a second call changes nothing)."""
        self._create(rec.id, record_document(rec), refresh=self.refresh if rec.duplicate_of is None else "false")

    def add_syndication(self, original_id: str, syndication: Syndication) -> None:
        """Add a copy to the original's ``also_published_at`` (server-side union by id; idempotent)."""
        script = {
            "source": MERGE_SCRIPT,
            "lang": "painless",
            "params": {"doc": None, "add": [syndication.to_dict()]},
        }
        self._call(
            "add syndication",
            self._es.options(ignore_status=404).update,
            id=original_id,
            script=script,
            retry_on_conflict=3,
        )

    def repoint(self, old_id: str, new_id: str, *, kind: str, similarity: float) -> list[str]:
        """``old_id`` (an original) becomes a ``kind`` copy of ``new_id``; its copies follow.

        Partial updates: the old original first (written with ``self.refresh``, so it stops being
        a candidate at once), then each of its copies (found after a refresh). Idempotent: a
        second call finds ``old_id`` already a copy and changes nothing. Not atomic across
        documents; a crash in between leaves some copies pointing at ``old_id``, which is itself
        a copy of ``new_id`` (readers follow one step: ``transforms.dedup`` does)."""
        current = self.lookup(old_id)
        if current is None or current.duplicate_of is not None or old_id == new_id:
            return []
        self._call("refresh", self._es.indices.refresh)
        query = {"bool": {"filter": [{"term": {"kind": "record"}}, {"term": {"duplicate_of": old_id}}]}}
        copies = [str(h["_id"]) for h in self._search("copies", query, size=self.scan_size, source=["id"])]
        doc = {"duplicate_of": new_id, "duplicate_kind": kind, "similarity": similarity, "also_published_at": []}
        self._call("repoint", self._es.update, id=old_id, doc=doc, refresh=self.refresh, retry_on_conflict=3)
        for copy_id in copies:
            self._call(
                "repoint copy",
                self._es.options(ignore_status=404).update,
                id=copy_id,
                doc={"duplicate_of": new_id},
                retry_on_conflict=3,
            )
        return [old_id, *copies]

    def prune(self, *, older_than: datetime) -> int:
        """Forget records, URLs and locks first seen before ``older_than``; returns records removed."""
        self._call("refresh", self._es.indices.refresh)
        old = {"range": {"first_seen": {"lt": dt_to_str(older_than)}}}
        deleted = []
        for kinds in (["record"], ["url", "lock"]):
            query = {"bool": {"filter": [{"terms": {"kind": kinds}}, old]}}
            resp = self._call("prune", self._es.delete_by_query, query=query, conflicts="proceed", refresh=True)
            deleted.append(int(resp["deleted"]))
        return deleted[0]


@dataclass(frozen=True)
class ElasticsearchDedupStoreFactory:
    """Picklable factory for ``DoFn.setup``: ``DedupArticles(ElasticsearchDedupStoreFactory(cfg))``.

    Pickling drops the API key and password; ``__call__`` fills missing ones from
    ``NEWSMON_ES_API_KEY`` / ``NEWSMON_ES_PASSWORD`` and makes sure the index exists.
    """

    config: ElasticsearchConfig
    window_days: float = 7.0
    refresh: str = "true"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (replace(self.config, api_key=None, password=None), self.window_days, self.refresh),
        )

    def __call__(self) -> ElasticsearchDedupStore:
        cfg = replace(
            self.config,
            api_key=self.config.api_key or os.environ.get("NEWSMON_ES_API_KEY") or None,
            password=self.config.password or os.environ.get("NEWSMON_ES_PASSWORD") or None,
        )
        store = ElasticsearchDedupStore(cfg, window_days=self.window_days, refresh=self.refresh)
        try:
            store.ensure_index()
        except BaseException:
            store.close()
            raise
        return store
