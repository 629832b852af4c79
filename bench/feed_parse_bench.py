"""Feed parsing throughput: parse_feed over the shared real feeds (skipped when ../shared is absent).

Run: .venv/bin/python bench/feed_parse_bench.py
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.rss import parse_feed
from pipelines.config import FeedConfig

FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "feeds"
ROUNDS = 20


def main() -> int:
    files = sorted(FEEDS.glob("*.xml"))
    if not files:
        print(f"{FEEDS} absent: nothing to measure")
        return 0
    feed = FeedConfig(url="https://outlet.example/rss", id="bench", name="Bench")
    now = datetime.now(UTC)
    for path in files:
        body = path.read_bytes()
        times = []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            entries, _ttl = parse_feed(body, feed=feed, fetched_at=now)
            times.append(time.perf_counter() - t)
        med = statistics.median(times) * 1000
        print(f"{path.name:45s} {len(body) / 1024:6.1f} KB {len(entries):3d} items  "
              f"median {med:6.1f} ms  ({med / max(1, len(entries)):.2f} ms/item)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
