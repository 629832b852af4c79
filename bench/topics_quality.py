"""Topic tagging quality on the shared, labelled dev set, beside a naive baseline.

    .venv/bin/python bench/topics_quality.py [PATH] [--json] [--misses]

``PATH`` defaults to ``../shared/data/eval/topics_dev.jsonl`` (third-party text: read in place,
never copied into the repository). One run prints, for each topic, precision / recall / F1 of
newsmon and of the naive baseline, on the non-borderline rows and on all rows, overall and per
category, then the seeds (``../shared/seeds``) when present.

Naive baseline (the simplest thing that could work):
* ``russia-dprk``: a Russia word AND a Korea word anywhere in the text;
* ``nato-reaction``: that AND a NATO word.

``topic_report(path)`` returns the same figures as a dict (``format_report`` renders it), so a
combined quality script can import and call it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from transforms.topics import Topic, evaluate, judge_all, load_topics  # noqa: E402

SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "data" / "eval" / "topics_dev.jsonl"
SEEDS = SHARED / "seeds"
TOPICS = ("russia-dprk", "nato-reaction")
LABEL_KEYS = {"russia-dprk": "russia_dprk", "nato-reaction": "nato_reaction"}

_RUSSIA = re.compile(r"(?i)\b(?:rusia|russia|moskow|moskwa|moscow|kremlin|putin)\b")
_KOREA = re.compile(r"(?i)\b(?:korea\s+utara|korut|dprk|rdrk|rrdk|pyongyang|kim\s+jong[\s-]*un)\b")
_NATO = re.compile(r"(?i)\b(?:nato|pakta\s+pertahanan\s+atlantik\s+utara)\b")


def naive_topics(text: str) -> set[str]:
    """The naive baseline's tags for one text."""
    out: set[str] = set()
    if _RUSSIA.search(text) and _KOREA.search(text):
        out.add("russia-dprk")
        if _NATO.search(text):
            out.add("nato-reaction")
    return out


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def expected(row: dict[str, Any]) -> set[str]:
    return {topic for topic, key in LABEL_KEYS.items() if row["labels"].get(key)}


def prf(pairs: Iterable[tuple[set[str], set[str]]], topic: str) -> dict[str, Any]:
    """tp/fp/fn/tn and P/R/F1 (None where undefined) of one topic over (expected, got) pairs."""
    tp = fp = fn = tn = 0
    for want, got in pairs:
        w, g = topic in want, topic in got
        tp += w and g
        fp += (not w) and g
        fn += w and not g
        tn += not w and not g
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None and precision + recall:
        f1 = 2 * precision * recall / (precision + recall)
    elif tp + fp + fn and not tp:
        f1 = 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1}


def _classify(rows: Sequence[dict[str, Any]], topics: Sequence[Topic]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        title = row.get("title") or ""
        text = row.get("text") or ""
        got = {e.topic for e in evaluate(topics, title=title, text=text)}
        out.append({
            "id": row["id"],
            "category": row.get("category", ""),
            "borderline": bool(row.get("borderline")),
            "want": expected(row),
            "newsmon": got,
            "naive": naive_topics(f"{title}\n{text}"),
        })
    return out


def _figures(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    per_topic = {}
    for topic in TOPICS:
        per_topic[topic] = {
            system: prf(((r["want"], r[system]) for r in results), topic) for system in ("newsmon", "naive")
        }
    categories: dict[str, Any] = {}
    for cat in sorted({r["category"] for r in results}):
        sub = [r for r in results if r["category"] == cat]
        categories[cat] = {
            "rows": len(sub),
            "topics": {
                topic: {system: prf(((r["want"], r[system]) for r in sub), topic) for system in ("newsmon", "naive")}
                for topic in TOPICS
            },
        }
    return {"rows": len(results), "topics": per_topic, "categories": categories}


def seed_labels(seeds: Path = SEEDS) -> dict[str, set[str]]:
    """Expected tags per seed file, from the table in the seeds' README."""
    labels: dict[str, set[str]] = {}
    for line in (seeds / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"\d{3}_[0-9a-f]+\.txt", cells[0]):
            labels[cells[0]] = {t for t, flag in zip(TOPICS, cells[3:5], strict=True) if flag.lower() == "yes"}
    return labels


def seed_results(topics: Sequence[Topic], seeds: Path = SEEDS) -> list[dict[str, Any]]:
    out = []
    for name, want in sorted(seed_labels(seeds).items()):
        head, _, body = (seeds / name).read_text(encoding="utf-8").partition("\n")
        got = {e.topic for e in evaluate(topics, title=head, text=body)}
        out.append({"id": name, "want": want, "newsmon": got, "naive": naive_topics(f"{head}\n{body}")})
    return out


def topic_report(path: str | Path | None = None, *, topics: Sequence[Topic] | None = None,
                 seeds: str | Path | None = SEEDS) -> dict[str, Any]:
    """Figures for newsmon and the naive baseline on a labelled topics JSONL file.

    Keys: ``path``; ``non_borderline`` and ``all`` (each: ``rows``, ``topics`` -> topic -> system ->
    tp/fp/fn/tn/precision/recall/f1, ``categories`` -> category -> the same per topic);
    ``misses`` (rows where newsmon differs from the label); ``seeds`` when the seeds are present.
    """
    path = Path(path) if path is not None else DEV_SET
    topics = tuple(topics) if topics is not None else load_topics()
    results = _classify(load_rows(path), topics)
    report: dict[str, Any] = {
        "path": str(path),
        "non_borderline": _figures([r for r in results if not r["borderline"]]),
        "all": _figures(results),
        "misses": [
            {"id": r["id"], "category": r["category"], "borderline": r["borderline"],
             "expected": sorted(r["want"]), "got": sorted(r["newsmon"])}
            for r in results if r["want"] != r["newsmon"]
        ],
    }
    seeds_dir = Path(seeds) if seeds is not None else None
    if seeds_dir is not None and (seeds_dir / "README.md").is_file():
        rows = seed_results(topics, seeds_dir)
        report["seeds"] = {
            "rows": [{"id": r["id"], "expected": sorted(r["want"]), "got": sorted(r["newsmon"])} for r in rows],
            "topics": {t: {s: prf(((r["want"], r[s]) for r in rows), t) for s in ("newsmon", "naive")} for t in TOPICS},
        }
    return report


def threshold_cv(path: str | Path | None = None, *, topic: str = "russia-dprk", folds: int = 5,
                 grid: Sequence[float] = tuple(x / 2 for x in range(8, 29)), borderline: bool = False,
                 topics: Sequence[Topic] | None = None) -> dict[str, Any]:
    """K-fold cross-validation of the one number we chose by looking at the dev set: ``topic``'s
    threshold. Each fold picks the grid threshold with the best F1 on the other folds (ties: the
    middle of the best plateau) and is scored with it; the pooled held-out figures are returned.
    Rows are dealt to folds by position (every ``folds``-th row), which keeps categories mixed.
    """
    path = Path(path) if path is not None else DEV_SET
    topics = tuple(topics) if topics is not None else load_topics()
    index = next(i for i, t in enumerate(topics) if t.name == topic)
    rows = [r for r in load_rows(path) if borderline or not r.get("borderline")]
    scored = []
    for r in rows:
        verdict = judge_all(topics, title=r.get("title") or "", text=r.get("text") or "")[index]
        scored.append((topic in expected(r), verdict.evidence.score, not verdict.failed))

    def f1(items: Sequence[tuple[bool, float, bool]], threshold: float) -> float:
        tp = sum(1 for want, score, ok in items if want and ok and score >= threshold)
        fp = sum(1 for want, score, ok in items if not want and ok and score >= threshold)
        fn = sum(1 for want, score, ok in items if want and not (ok and score >= threshold))
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    chosen, held_out = [], []
    for k in range(folds):
        train = [x for i, x in enumerate(scored) if i % folds != k]
        test = [x for i, x in enumerate(scored) if i % folds == k]
        values = [f1(train, t) for t in grid]
        best = max(values)
        plateau = [t for t, v in zip(grid, values, strict=True) if v == best]
        threshold = plateau[len(plateau) // 2]
        chosen.append(threshold)
        held_out.extend((want, score >= threshold and ok) for want, score, ok in test)
    pairs = [({topic} if want else set(), {topic} if got else set()) for want, got in held_out]
    return {"topic": topic, "folds": folds, "rows": len(rows), "thresholds": chosen,
            "shipped_threshold": topics[index].threshold, "held_out": prf(pairs, topic)}


def _num(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def _line(label: str, f: dict[str, Any]) -> str:
    return (f"{label:<9} P {_num(f['precision'])}  R {_num(f['recall'])}  F1 {_num(f['f1'])}"
            f"  (tp {f['tp']}, fp {f['fp']}, fn {f['fn']})")


def format_report(report: dict[str, Any], *, misses: bool = False) -> str:
    lines = [f"topic quality on {report['path']}"]
    for key, title in (("non_borderline", "non-borderline rows"), ("all", "all rows (borderline included)")):
        part = report[key]
        lines.append(f"\n== {title}: {part['rows']} rows")
        for topic in TOPICS:
            lines.append(f"  {topic}")
            for system in ("newsmon", "naive"):
                lines.append("    " + _line(system, part["topics"][topic][system]))
        lines.append("  per category (newsmon | naive):")
        for cat, data in part["categories"].items():
            cells = []
            for topic in TOPICS:
                n, b = data["topics"][topic]["newsmon"], data["topics"][topic]["naive"]
                cells.append(f"{topic} tp/fp/fn {n['tp']}/{n['fp']}/{n['fn']} | {b['tp']}/{b['fp']}/{b['fn']}")
            lines.append(f"    {cat:<9} {data['rows']:>3} rows  " + "   ".join(cells))
    if "seeds" in report:
        seeds = report["seeds"]
        lines.append(f"\n== seeds: {len(seeds['rows'])} articles")
        for topic in TOPICS:
            lines.append(f"  {topic}")
            for system in ("newsmon", "naive"):
                lines.append("    " + _line(system, seeds["topics"][topic][system]))
    else:
        lines.append("\n(seeds absent)")
    if misses:
        lines.append("\nrows where newsmon differs from the label:")
        for m in report["misses"]:
            flag = " (borderline)" if m["borderline"] else ""
            lines.append(f"  {m['id']} {m['category']}{flag}: expected {m['expected']}, got {m['got']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEV_SET, help="labelled topics JSONL")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--misses", action="store_true", help="also list the rows newsmon gets wrong")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="also cross-validate the russia-dprk threshold with K folds")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"{args.path} absent: nothing to measure (the shared dev set is not part of the repository)")
        return 0
    report = topic_report(args.path)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=sorted))
    else:
        print(format_report(report, misses=args.misses))
    if args.cv:
        for borderline in (False, True):
            cv = threshold_cv(args.path, folds=args.cv, borderline=borderline)
            label = "all rows" if borderline else "non-borderline rows"
            print(f"\n{args.cv}-fold CV of the {cv['topic']} threshold on {label} ({cv['rows']}): "
                  f"chosen {cv['thresholds']} (shipped {cv['shipped_threshold']:g})")
            print("    " + _line("held-out", cv["held_out"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
