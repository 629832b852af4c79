"""Search against the article indices (``newsmon search`` on Elasticsearch or OpenSearch).

The query: every word must match (``simple_query_string`` with AND) in the title (boosted)
or the text, on the Indonesian-stemmed fields and their ``.std`` sub-fields; duplicates are
hidden unless asked for; ties are broken by recency. Snippets are cut client-side, so no
highlighter configuration is needed on the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.sink import SearchHit

_WORD = re.compile(r"\w+", re.UNICODE)


def search_body(query: str, *, limit: int, include_duplicates: bool) -> dict[str, Any]:
    """The request body of one search (the same for both engines)."""
    q: dict[str, Any] = {
        "bool": {
            "must": [
                {
                    "simple_query_string": {
                        "query": query,
                        "fields": ["title^3", "title.std^2", "text", "text.std"],
                        "default_operator": "and",
                    }
                }
            ]
        }
    }
    if not include_duplicates:
        q["bool"]["must_not"] = [{"exists": {"field": "duplicate_of"}}]
    return {
        "query": q,
        "size": limit,
        "sort": [{"_score": "desc"}, {"@timestamp": "desc"}],
        "_source": {"excludes": ["fingerprint", "topic_evidence"]},
    }


def snippet(text: str, query: str, *, width: int = 160) -> str:
    """A window of ``text`` around the first query word (client-side; no highlighter needed)."""
    words = [w.lower() for w in _WORD.findall(query) if w.lower() not in ("and", "or", "not")]
    low = text.lower()
    pos = min((p for p in (low.find(w) for w in words) if p >= 0), default=0)
    start = max(0, pos - width // 3)
    piece = " ".join(text[start : start + width].split())
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def hit_of(h: Mapping[str, Any], query: str) -> SearchHit:
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
