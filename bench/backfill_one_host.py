"""Backfill of one big feed from one host (issue 13, item 1): does every article get stored?

Serves a feed of --items articles (real corpus texts when ../shared is present, else generated
ones) from one loopback host and runs `newsmon backfill` on it as a subprocess with the given
politeness spacing and fetch deadline. Prints the exit code, backfill's own summary, the number
of articles in the store, and the wall time.

    .venv/bin/python bench/backfill_one_host.py --items 60 --spacing 0.25 --timeout 5
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from _corpus import corpus_articles

from connectors.localindex import LocalIndex
from tests.e2e import env, newsmon_cmd
from tests.localserver import LocalServer
from tests.newssite import NewsSite


def stories(n: int) -> list[tuple[str, list[str]]]:
    try:
        found = corpus_articles(n)
    except SystemExit:  # ../shared absent: generated texts are enough for this measure
        found = []
    while len(found) < n:
        i = len(found)
        found.append((f"Berita uji nomor {i} tentang pembangunan jalan desa",
                      [f"Paragraf pertama berita nomor {i} tentang jalan desa yang dibangun warga. " * 3,
                       "Paragraf kedua menjelaskan biaya dan waktu pengerjaan jalan tersebut. " * 3]))
    return found[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--spacing", type=float, default=0.25, help="fetch.per_host_min_spacing (s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="fetch.timeout (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalServer() as server:
        site = NewsSite(server)
        for title, paragraphs in stories(args.items):
            site.publish(title, paragraphs)
        cfg = Path(tmp) / "newsmon.yaml"
        cfg.write_text(f"fetch: {{per_host_min_spacing: {args.spacing}, timeout: {args.timeout}}}\n")
        store = Path(tmp) / "store"
        started = time.monotonic()
        proc = subprocess.run(
            newsmon_cmd("backfill", "--config", str(cfg), "--store", str(store), "--feed", site.feed_url,
                        "--allow-host", "127.0.0.1", "--quiet"),
            env=env(), capture_output=True, text=True, check=False,
        )
        took = time.monotonic() - started
        index = LocalIndex.in_store(store)
        try:
            stored = index.count()
        finally:
            index.close()
    summary = [line for line in proc.stderr.splitlines() if line.startswith("backfill:")]
    print(f"items {args.items}, spacing {args.spacing} s, deadline {args.timeout} s")
    print(f"exit code {proc.returncode}; {took:.1f} s")
    for line in summary:
        print(line)
    print(f"articles in the store: {stored}")



if __name__ == "__main__":
    main()
