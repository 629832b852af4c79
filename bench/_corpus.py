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


def _serve(stories: list[tuple[str, list[str]]], conn: object) -> None:
    import time
    from datetime import timedelta

    from tests.localserver import LocalServer
    from tests.newssite import NewsSite
    from transforms.records import utcnow

    server = LocalServer().start()
    server.requests = _Discard()  # a long benchmark must not grow the server's request log
    site = NewsSite(server)
    t0 = utcnow() - timedelta(days=1)
    for i, (title, paras) in enumerate(stories):
        site.publish(title, paras, published=t0 + timedelta(seconds=i))
    conn.send(site.feed_url)  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


def serve_in_subprocess(stories: list[tuple[str, list[str]]]) -> tuple[str, object]:
    """Serve ``stories`` as a news site from a child process (so the server does not compete
    with the code being measured for the GIL). Returns (feed URL, process); kill it when done."""
    import multiprocessing as mp

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_serve, args=(stories, child), daemon=True)
    proc.start()
    return parent.recv(), proc
