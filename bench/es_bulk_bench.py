"""Bulk throughput of ElasticsearchSink into the ES test server, and client CPU per document.

The ES test server runs in a child process, so this process's CPU time (``time.process_time``)
is the client's own cost: building documents, JSON, HTTP, parsing the answers. Throughput is
bounded by the test server (pure Python), not by a real cluster: it is a floor for the client
path, not a prediction of cluster ingest.

    .venv/bin/python bench/es_bulk_bench.py [--docs 5000] [--text-bytes 3000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _serve(conn: object) -> None:
    from tests.esserver import EsTestServer

    server = EsTestServer(refresh_interval=1.0)
    server.record_bodies = False
    server.start()
    conn.send(server.url)  # type: ignore[attr-defined]
    conn.recv()  # type: ignore[attr-defined]  # wait for "stop"
    server.stop()


def make_articles(n: int, text_bytes: int, tag: str) -> list:
    from transforms.records import Article, TopicEvidence, article_id

    base = datetime(2024, 6, 1, tzinfo=UTC)
    sentence = (
        "Presiden Rusia Vladimir Putin dan pemimpin Korea Utara Kim Jong Un membahas kerja sama militer. "
    )
    text = (sentence * (text_bytes // len(sentence) + 1))[:text_bytes]
    out = []
    for i in range(n):
        url = f"https://bench.example.id/{tag}/{i}"
        when = base + timedelta(minutes=i)
        out.append(
            Article(
                id=article_id(url),
                url=url,
                canonical_url=url,
                source=f"outlet-{i % 12}",
                title=f"Kunjungan Putin ke Pyongyang, bagian {i}",
                text=text,
                published=when,
                first_seen=when,
                language="id",
                language_confidence=0.98,
                topics=("russia-dprk",),
                topic_evidence=(TopicEvidence("russia-dprk", 4.0, 2.0, "1"),),
                story_id=f"s{i // 5}",
                fingerprint=tuple(range(16)),
            )
        )
    return out


def run(url: str, articles: list, *, locate: bool, chunk: int) -> dict[str, float]:
    from connectors.elasticsearch import ElasticsearchSink, setup_elasticsearch
    from pipelines.config import ElasticsearchConfig

    cfg = ElasticsearchConfig(urls=(url,), index_prefix="bench")
    setup_elasticsearch(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        sink = ElasticsearchSink(cfg, deadletter_dir=Path(tmp), chunk_size=chunk, locate_existing=locate)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        acked = 0
        for start in range(0, len(articles), chunk):
            acked += len(sink.write(articles[start : start + chunk]).acknowledged)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        sink.close()
    assert acked == len(articles), (acked, len(articles))
    return {
        "docs": len(articles),
        "wall_s": wall,
        "docs_per_s": len(articles) / wall,
        "client_cpu_ms_per_doc": 1000 * cpu / len(articles),
    }


def serialisation_cost(articles: list) -> float:
    from connectors.elasticsearch import Action, article_document

    t0 = time.process_time()
    for a in articles:
        header, body = Action("i", a.id, article_document(a), [], []).bulk_lines()
        json.dumps(header)
        json.dumps(body)
    return 1000 * (time.process_time() - t0) / len(articles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--text-bytes", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    url = parent.recv()
    try:
        articles = make_articles(args.docs, args.text_bytes, "a")
        print(
            f"documents: {args.docs} x ~{args.text_bytes} B text, chunk {args.chunk}; ES test server in a child process"
        )
        print(
            f"serialisation only (document + bulk lines to JSON): {serialisation_cost(articles):.3f} ms/doc client CPU"
        )
        for label, locate, batch in (
            ("new ids, with location lookup", True, articles),
            ("re-send same ids (updates)", True, articles),
            ("new ids, lookup disabled", False, make_articles(args.docs, args.text_bytes, "b")),
        ):
            r = run(url, batch, locate=locate, chunk=args.chunk)
            print(
                f"{label:<32} {r['docs_per_s']:>8.0f} docs/s  wall {r['wall_s']:.2f} s  "
                f"client CPU {r['client_cpu_ms_per_doc']:.3f} ms/doc"
            )
        dup = [
            replace(a, id=a.id[::-1], duplicate_of=a.id, duplicate_kind="near", similarity=0.9)
            for a in articles[:1000]
        ]
        r = run(url, dup, locate=True, chunk=args.chunk)
        print(
            f"{'near-duplicates (+ original update)':<32} {r['docs_per_s']:>8.0f} docs/s  wall {r['wall_s']:.2f} s  "
            f"client CPU {r['client_cpu_ms_per_doc']:.3f} ms/doc"
        )
    finally:
        parent.send("stop")
        proc.join(timeout=10)


if __name__ == "__main__":
    main()
