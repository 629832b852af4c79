"""Bulk throughput of the search sink into a real OpenSearch 2.19 node, and client CPU per document.

The node is the test node (tests/opensearchnode.py: one JVM, 512 MB heap, built by
``.ci/opensearch.sh``), started here in its own process, so this process's CPU time
(``time.process_time``) is the client's own cost: building documents, JSON, HTTP, parsing the
answers. Both clients are measured: opensearch-py straight to the node, and the elasticsearch
client through the test-only shim (tests/faultserver.py, a Python proxy, which costs time of its
own). A single small node on a shared machine: a floor, not a prediction of cluster ingest.

    .venv/bin/python bench/es_bulk_bench.py [--docs 5000] [--text-bytes 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def run(url: str, engine: str, articles: list, *, locate: bool, chunk: int) -> dict[str, float]:
    from connectors.elasticsearch import ElasticsearchSink, setup_elasticsearch
    from pipelines.config import ElasticsearchConfig

    cfg = ElasticsearchConfig(urls=(url,), index_prefix=f"bench-{engine}", engine=engine)
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
    from tests.faultserver import FaultProxy
    from tests.opensearchnode import OpenSearchNode

    with tempfile.TemporaryDirectory() as home:
        node = OpenSearchNode(Path(home))
        node.start()
        shim = FaultProxy(node.url, elasticsearch=True).start()
        try:
            print(f"documents: {args.docs} x ~{args.text_bytes} B text, chunk {args.chunk}; real OpenSearch node")
            print(f"serialisation only (document + bulk lines to JSON): {serialisation_cost(make_articles(args.docs, args.text_bytes, 's')):.3f} ms/doc client CPU")
            for engine, url in (("opensearch", node.url), ("elasticsearch", shim.url)):
                articles = make_articles(args.docs, args.text_bytes, f"a-{engine}")
                for label, locate, batch in (
                    ("new ids, with location lookup", True, articles),
                    ("re-send same ids (updates)", True, articles),
                    ("new ids, lookup disabled", False, make_articles(args.docs, args.text_bytes, f"b-{engine}")),
                    ("near-duplicates (+ original update)", True, [
                        replace(a, id=a.id[::-1], duplicate_of=a.id, duplicate_kind="near", similarity=0.9)
                        for a in articles[:1000]
                    ]),
                ):
                    r = run(url, engine, batch, locate=locate, chunk=args.chunk)
                    print(
                        f"{engine:<13} {label:<36} {r['docs_per_s']:>8.0f} docs/s  wall {r['wall_s']:.2f} s  "
                        f"client CPU {r['client_cpu_ms_per_doc']:.3f} ms/doc"
                    )
        finally:
            shim.stop()
            node.stop()


if __name__ == "__main__":
    main()
