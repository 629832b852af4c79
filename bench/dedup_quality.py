"""Duplicate and story quality on the shared dedup dev set, beside plain MinHash.

Usage: .venv/bin/python bench/dedup_quality.py [PATH] [--json] [--explain]

PATH defaults to ``../shared/data/eval/dedup_dev.jsonl`` (third-party text, read in place,
never copied). Each row is given to newsmon exactly as ``newsmon dedup`` would read it
(``id``, ``url``, ``text``; no title or date in this set), in file order, against a fresh
in-memory store. Scoring is pair-wise:

* a predicted cluster is the union of ``duplicate_of`` links; a predicted pair is any two
  pages in one cluster; a gold pair is two pages of one ``dup_group``;
* "non-borderline" runs the same thing on the pages with ``borderline`` false only;
* *same-event merges*: predicted pairs of two pages of one ``event_group`` that are not in one
  ``dup_group`` (different articles about one event; must be 0);
* *background merges*: predicted pairs touching a page with neither group (must be 0);
* story pairs: two pages with one ``story_id`` against "same event" (one ``event_group`` or
  one ``dup_group``).

The baseline is plain MinHash from datasketch: 128 permutations over lower-cased word
5-shingles of the raw text, ``MinHashLSH(threshold=0.5)``; each page is linked to every earlier
page the LSH returns.

``dedup_report(path)`` returns the figures as a dict (the lead's ``bench/quality.py`` calls it);
``format_report`` renders them; ``main`` prints them. ``--explain`` lists every newsmon merge
with the rule that decided it and every missed or wrong pair.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEV_SET = REPO.parent / "shared" / "data" / "eval" / "dedup_dev.jsonl"

Pair = tuple[str, str]


def load_rows(path: Path | str = DEV_SET) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


def _cluster_pairs(links: Iterable[Pair], ids: Sequence[str]) -> set[Pair]:
    """All pairs inside the connected components of ``links`` (union-find)."""
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)
    return {_pair(a, b) for members in groups.values() for a, b in itertools.combinations(members, 2)}


def _groups_pairs(rows: Sequence[dict[str, Any]], key: str) -> set[Pair]:
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.get(key):
            groups.setdefault(r[key], []).append(r["id"])
    return {_pair(a, b) for members in groups.values() for a, b in itertools.combinations(members, 2)}


def prf(pred: set[Pair], gold: set[Pair]) -> dict[str, float]:
    tp = len(pred & gold)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(gold) if gold else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 3), "r": round(r, 3), "f1": round(f, 3), "tp": tp, "pred": len(pred), "gold": len(gold)}


def newsmon_links(rows: Sequence[dict[str, Any]]) -> tuple[list[Pair], dict[str, str], list[dict[str, Any]]]:
    """Run ``newsmon dedup``'s logic over ``rows`` in order: (duplicate links, story ids, output rows)."""
    from connectors.dedupstore import SqliteDedupStore
    from pipelines.dedup_cmd import iter_rows

    store = SqliteDedupStore(":memory:")
    try:
        lines = (json.dumps({"id": r["id"], "url": r["url"], "text": r["text"]}) for r in rows)
        out = [o for o in iter_rows(lines, store, window_days=7.0, story_window_days=3.0) if "error" not in o]
    finally:
        store.close()
    links = [(o["id"], o["duplicate_of"]) for o in out if o.get("duplicate_of")]
    stories = {o["id"]: o["story_id"] for o in out}
    return links, stories, out


_WORD = re.compile(r"\w+", re.UNICODE)


def minhash_links(rows: Sequence[dict[str, Any]]) -> list[Pair]:
    """Plain MinHash baseline: 128 perm, word 5-shingles of the raw text, LSH threshold 0.5."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    links: list[Pair] = []
    for r in rows:
        words = _WORD.findall(r["text"].lower())
        grams = {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=128)
        for g in grams:
            m.update(g.encode("utf-8"))
        links.extend((r["id"], other) for other in lsh.query(m))
        lsh.insert(r["id"], m)
    return links


def _merge_errors(pred: set[Pair], rows: Sequence[dict[str, Any]]) -> tuple[list[Pair], list[Pair]]:
    by_id = {r["id"]: r for r in rows}
    same_event, background = [], []
    for a, b in sorted(pred):
        ra, rb = by_id[a], by_id[b]
        if ra.get("dup_group") and ra.get("dup_group") == rb.get("dup_group"):
            continue
        if not (ra.get("dup_group") or ra.get("event_group")) or not (rb.get("dup_group") or rb.get("event_group")):
            background.append((a, b))
        elif ra.get("event_group") and ra.get("event_group") == rb.get("event_group"):
            same_event.append((a, b))
    return same_event, background


def _score_subset(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ids = [r["id"] for r in rows]
    gold = _groups_pairs(rows, "dup_group")
    links, stories, out = newsmon_links(rows)
    pred = _cluster_pairs(links, ids)
    base = _cluster_pairs(minhash_links(rows), ids)
    same_event, background = _merge_errors(pred, rows)
    b_same, b_bg = _merge_errors(base, rows)
    event_gold = gold | _groups_pairs(rows, "event_group")
    by_story: dict[str, list[str]] = {}
    for i, s in stories.items():
        by_story.setdefault(s, []).append(i)
    story_pred = {_pair(a, b) for m in by_story.values() for a, b in itertools.combinations(m, 2)}
    return {
        "pages": len(rows),
        "newsmon": {
            **prf(pred, gold),
            "same_event_merges": len(same_event),
            "background_merges": len(background),
        },
        "minhash": {**prf(base, gold), "same_event_merges": len(b_same), "background_merges": len(b_bg)},
        "story": prf(story_pred, event_gold),
        "_detail": {"pred": pred, "gold": gold, "out": out, "same_event": same_event, "background": background},
    }


def dedup_report(path: Path | str = DEV_SET, *, detail: bool = False) -> dict[str, Any]:
    """Figures on all pages and on non-borderline pages (see the module docstring)."""
    rows = load_rows(path)
    report: dict[str, Any] = {
        "all": _score_subset(rows),
        "non_borderline": _score_subset([r for r in rows if not r.get("borderline")]),
    }
    if not detail:
        for part in report.values():
            part.pop("_detail")
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = ["dedup dev set: duplicate pairs (cluster = union of duplicate_of links), pair-wise"]
    lines.append(f"{'':16}{'pages':>6}  {'method':8} {'P':>6} {'R':>6} {'F1':>6}  same-event  background")
    for name, part in report.items():
        for method in ("newsmon", "minhash"):
            m = part[method]
            lines.append(
                f"{name:16}{part['pages']:>6}  {method:8} {m['p']:>6.3f} {m['r']:>6.3f} {m['f1']:>6.3f}"
                f"  {m['same_event_merges']:>10}  {m['background_merges']:>10}"
            )
    for name, part in report.items():
        s = part["story"]
        lines.append(
            f"story_id vs same event ({name}, {part['pages']} pages): P {s['p']:.3f} R {s['r']:.3f} F1 {s['f1']:.3f}"
            f" ({s['tp']} of {s['pred']} predicted pairs correct, {s['gold']} gold pairs)"
        )
    return "\n".join(lines)


def _explain(report: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    by_id = {r["id"]: r for r in rows}
    d = report["all"]["_detail"]
    out_by_id = {o["id"]: o for o in d["out"]}
    lines = ["merges (page -> original: kind, similarity, rule):"]
    for o in d["out"]:
        if o.get("duplicate_of"):
            ok = by_id[o["id"]].get("dup_group") and by_id[o["id"]].get("dup_group") == by_id[o["duplicate_of"]].get(
                "dup_group"
            )
            lines.append(
                f"  {'ok ' if ok else 'BAD'} {o['id']} -> {o['duplicate_of']}: {o['duplicate_kind']} "
                f"{o.get('similarity')} {o.get('rule', '')}"
            )
    lines.append("missed gold pairs:")
    for a, b in sorted(d["gold"] - d["pred"]):
        lines.append(
            f"  {a} {b} ({by_id[a]['dup_group']}; {by_id[a]['kind']}) stories {out_by_id[a]['story_id']} {out_by_id[b]['story_id']}"
        )
    return "\n".join(lines)


def _pair_features(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Every pair sharing three or more shingles: (pair, gold, unit, alignment a, b, containments,
    fragment, one site)."""
    import numpy as np

    from transforms.dedup import alignment, containment, shingle_sequence, strip_boilerplate, tokens
    from transforms.urls import page_number, site_and_slug

    seqs = {r["id"]: shingle_sequence(tokens(strip_boilerplate(r["text"]))) for r in rows}
    sets = {i: np.unique(v) for i, v in seqs.items()}
    unit = {r["id"]: r.get("event_group") or r.get("dup_group") or r["id"] for r in rows}
    group = {r["id"]: r.get("dup_group") for r in rows}
    frag = {r["id"]: (page_number(r["url"]) or 1) > 1 for r in rows}
    site = {r["id"]: site_and_slug(r["url"]) for r in rows}
    out = []
    for x, y in itertools.combinations([r["id"] for r in rows], 2):
        a, b = alignment(seqs[x], sets[y]), alignment(seqs[y], sets[x])
        if a is None or b is None:
            continue
        gold = bool(group[x]) and group[x] == group[y]
        c1, c2 = containment(sets[x], sets[y]), containment(sets[y], sets[x])
        (sx, gx), (sy, gy) = site[x], site[y]
        one_site = sx == sy and not (gx and gx == gy)
        unit_xy = unit[x] if unit[x] == unit[y] else f"{unit[x]}|{unit[y]}"
        out.append((_pair(x, y), gold, unit_xy, a, b, c1, c2, frag[x] or frag[y], one_site))
    return out


def _rule(f: tuple, density: float, ends: float) -> bool:
    import transforms.dedup as d

    _, _, _, a, b, c1, c2, fragment, one_site = f
    if fragment:
        return False
    if max(c1, c2) >= d.NEAR_CONTAINMENT and min(c1, c2) >= d.NEAR_REVERSE_CONTAINMENT:
        return True
    return not one_site and (
        (a.density + b.density) / 2 >= density
        and min(a.density, b.density) >= d.ALIGN_MIN_DENSITY_EACH
        and min(a.head, b.head) + min(a.tail, b.tail) <= ends
        and max(a.cover, b.cover) >= d.ALIGN_MIN_COVER
        and max(a.head, b.head) < d.ALIGN_MAX_NEW_HEAD
    )


def _f1(feats: Sequence[tuple], density: float, ends: float) -> float:
    tp = sum(1 for f in feats if f[1] and _rule(f, density, ends))
    fp = sum(1 for f in feats if not f[1] and _rule(f, density, ends))
    fn = sum(1 for f in feats if f[1] and not _rule(f, density, ends))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def cross_validate(path: Path | str = DEV_SET, folds: int = 10) -> dict[str, Any]:
    """Grouped k-fold check of the two fitted thresholds of the "aligned" rule (mean density, ends).

    Pair-level (every pair sharing text, not only LSH candidates): for each fold, the events and
    background pages of that fold are held out, the thresholds are chosen on the rest from a grid,
    and the held-out pairs are decided with them. Returns held-out P/R/F1, the thresholds each
    fold chose, and the in-sample F1 of the shipped thresholds.
    """
    import transforms.dedup as d

    feats = _pair_features(load_rows(path))
    units = sorted({f[2] for f in feats})
    fold_of = {u: i % folds for i, u in enumerate(units)}
    grid = [(x, e) for x in (0.5, 0.55, 0.58, 0.6, 0.65, 0.7, 0.75) for e in (0.1, 0.15, 0.2, 0.25, 0.3)]
    tp = fp = fn = 0
    chosen = []
    for k in range(folds):
        train = [f for f in feats if fold_of[f[2]] != k]
        test = [f for f in feats if fold_of[f[2]] == k]
        best = max(grid, key=lambda g: (_f1(train, *g), -abs(g[0] - 0.6), -abs(g[1] - 0.2)))
        chosen.append(best)
        for f in test:
            hit = _rule(f, *best)
            tp += hit and f[1]
            fp += hit and not f[1]
            fn += (not hit) and f[1]
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "held_out": {"p": round(p, 3), "r": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0},
        "thresholds_chosen": chosen,
        "shipped": (d.ALIGN_MIN_DENSITY, d.ALIGN_MAX_ENDS),
        "in_sample_f1_shipped": round(_f1(feats, d.ALIGN_MIN_DENSITY, d.ALIGN_MAX_ENDS), 3),
        "pairs": len(feats),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEV_SET))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--explain", action="store_true", help="list every merge and every missed pair")
    ap.add_argument("--cv", action="store_true", help="grouped 10-fold check of the aligned rule's thresholds")
    args = ap.parse_args(argv)
    if not Path(args.path).exists():
        print(f"skip: {args.path} absent (the shared dev set is kept outside the repository)")
        return 0
    report = dedup_report(args.path, detail=args.explain)
    if args.explain:
        print(_explain(report, load_rows(args.path)))
        for part in report.values():
            part.pop("_detail")
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if args.cv:
        cv = cross_validate(args.path)
        print(
            f"aligned rule, grouped 10-fold (pair-level, {cv['pairs']} pairs sharing text): held-out "
            f"P {cv['held_out']['p']:.3f} R {cv['held_out']['r']:.3f} F1 {cv['held_out']['f1']:.3f}; "
            f"in-sample F1 with the shipped thresholds {cv['shipped']}: {cv['in_sample_f1_shipped']:.3f}; "
            f"chosen per fold: {cv['thresholds_chosen']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
