"""Pure bulk planning for the search-engine sink: what to send, and how to read each answer.

Every document is an ``update`` with ``scripted_upsert`` running :data:`MERGE_SCRIPT`: it
replaces the stored article by the new one but keeps the union of ``also_published_at``. A
near-duplicate is stored too and adds a ``Syndication`` to its original with the same script
(no upsert: a missing original is skipped). One bulk action per target id per round, so the
answer of every action can be matched to what was sent by ``_id``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.es_schema import MERGE_SCRIPT, article_document, index_for
from transforms.records import Article, Syndication


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
        found = by_target.get(u.target)
        if found is None:
            where = locations.get(u.target)
            if where is None:
                unplaced.append(u)
                continue
            found = by_target.setdefault(u.target, Action(where, u.target, None, [], []))
        found.add.append(Syndication.of(u.article).to_dict())
        found.units.append(u)
    return list(by_target.values()), unplaced


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
