"""Shared by the benchmarks: real Indonesian articles from ../shared served from loopback."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "data" / "corpus" / "articles.jsonl.gz"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def corpus_articles(limit: int) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of up to ``limit`` corpus articles; exits with a reason when absent."""
    if not CORPUS.exists():
        sys.exit(f"skipped: {CORPUS} is absent (the benchmark serves real articles from ../shared)")
    out: list[tuple[str, list[str]]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            text = (d.get("text") or "").strip()
            if len(text) < 400:
                continue
            paras = [p.strip() for p in text.split("\n") if p.strip()]
            title = d.get("title") or (d.get("title_slug") or "").replace("-", " ").capitalize() or paras[0][:80]
            out.append((title, paras))
            if len(out) >= limit:
                break
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
