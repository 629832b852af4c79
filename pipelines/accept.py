"""Intake of feed entries, shared by both drivers: link -> canonical id -> PendingItem or not.

This module is the one place that counts what intake decides: ``newsmon_articles_seen``
(accepted), ``newsmon_duplicates{kind="url"}`` (the URL is already known) and
``newsmon_articles_failed{stage="accept"}`` (the link cannot be made canonical). The local
driver and the streaming ``AcceptEntries`` DoFn both call :func:`accept_entry`, so an entry is
counted the same way whichever driver runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from connectors import metrics
from connectors.statestore import PendingItem
from transforms.records import FeedEntry
from transforms.urls import canonical_id

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "duplicate", "bad_url"]


def accept_entry(entry: FeedEntry, is_known: Callable[[str], bool]) -> tuple[Outcome, PendingItem | None]:
    """Decide and count one entry; ``is_known(article_id)`` says whether its URL was seen before."""
    m = metrics.get()
    try:
        canonical, aid = canonical_id(entry.link)
    except Exception as exc:  # a junk link must not stop the feed
        log.warning("feed %s: unusable link %r: %s", entry.feed_id, entry.link[:200], exc)
        m.articles_failed.labels("accept", "bad_url").inc()
        return "bad_url", None
    if is_known(aid):
        m.duplicates.labels("url").inc()
        return "duplicate", None
    m.articles_seen.labels(entry.feed_id).inc()
    return "accepted", PendingItem(id=aid, canonical_url=canonical, entry=entry, attempts=0)
