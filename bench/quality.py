"""Detection quality on the shared labelled dev sets, newsmon beside naive baselines, in one run.

    .venv/bin/python bench/quality.py [--json]

Topics (``../shared/data/eval/topics_dev.jsonl``): per topic and per category, precision / recall /
F1 of newsmon and of the keyword baseline (a Russia word AND a Korea word; AND a NATO word).
Duplicates (``../shared/data/eval/dedup_dev.jsonl``): pair P/R/F1 of newsmon's ``duplicate_of``
clusters and of plain MinHash (128 permutations, word 5-shingles, LSH 0.5), merges inside event
groups and among background pages, and the pair-wise quality of ``story_id``.

The dev sets are third-party text, read in place; each half says so and is skipped when absent.
The detail lives in ``bench/topics_quality.py`` and ``bench/dedup_quality.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import dedup_quality  # noqa: E402
import topics_quality  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    for name, path, run in (
        ("topics", topics_quality.DEV_SET, topics_quality.topic_report),
        ("dedup", dedup_quality.DEV_SET, dedup_quality.dedup_report),
    ):
        report[name] = run(path) if Path(path).is_file() else None
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=sorted))
        return 0
    for name, fmt in (("topics", topics_quality.format_report), ("dedup", dedup_quality.format_report)):
        print(f"######## {name}")
        print(fmt(report[name]) if report[name] is not None else f"(dev set absent: {name} not measured)")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
