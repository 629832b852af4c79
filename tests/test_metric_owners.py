"""Every Prometheus metric of ``connectors.metrics.Metrics`` is moved from one module: its owner.

A static check (``ast``) over ``pipelines/``, ``connectors/`` and ``transforms/``: each call that
moves a metric (``inc``, ``dec``, ``set``, ``observe``, ... directly, through ``.labels(...)``, or
through a local name bound to either) is attributed to its module. A metric moved from two
modules is how ``newsmon_articles_indexed_total`` came to be counted twice (once by the search
engine sink, once by the driver's ``write_batch``); this test keeps it from happening again.

Families partitioned by a stage or kind label (``stage_seconds``, ``articles_failed``,
``duplicates``) are owned per value of that label instead: each stage or kind has one owner,
and the label must be a string literal there so the owner can be read from the code. The one
call site that passes a computed value is listed in ``COMPUTED_PARTITIONS`` with the values it
can take; ``tests/test_metric_counts.py`` checks those values on a real run.

Series initialisation (``Metrics.init_series`` in ``connectors/metrics.py``) creates series at
zero without moving them and is not an owner.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from connectors.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "connectors", "transforms")
MOVES = {"inc", "dec", "set", "observe", "time", "set_to_current_time", "set_function", "count_exceptions",
         "track_inprogress"}
# family -> index of the label argument that names the stage/kind owning the series
PARTITIONED = {"stage_seconds": 0, "articles_failed": 0, "duplicates": 0}
# (family, module) -> the values a computed partition label takes there
COMPUTED_PARTITIONS = {("duplicates", "pipelines/dedupbeam.py"): frozenset({"exact", "near"})}
# functions that only read metrics (their references need not be moves); moves inside them still count
READERS = {("pipelines/run_cmd.py", "_backfill_counters")}  # backfill's summary reads counter samples


def metric_attrs() -> frozenset[str]:
    m = Metrics(CollectorRegistry())
    return frozenset(name for name, value in vars(m).items() if name != "registry" and hasattr(value, "_name"))


@dataclass(frozen=True)
class Move:
    attr: str
    module: str
    line: int
    partition: str | None  # literal partition label, "?" when computed, None when not partitioned


def _strip_labels(node: ast.expr) -> tuple[ast.expr, ast.Call | None]:
    """``X.attr.labels(...)`` -> (``X.attr``, the labels call); anything else unchanged."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "labels":
        return node.func.value, node
    return node, None


def _partition(attr: str, labels: ast.Call | None) -> str | None:
    if attr not in PARTITIONED:
        return None
    index = PARTITIONED[attr]
    if labels is None or len(labels.args) <= index:
        return "?"
    arg = labels.args[index]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "?"


def _is_metrics_object(node: ast.expr, handles: set[str]) -> bool:
    """``metrics.get()`` / ``metrics_mod.get()``, or a name bound to one of them in the module."""
    if isinstance(node, ast.Name):
        return node.id in handles
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name) and node.func.value.id in {"metrics", "metrics_mod"})


def scan(path: Path, attrs: frozenset[str], module: str | None = None) -> tuple[list[Move], list[str]]:
    """The moves in one file, and the metric references the scan cannot follow (``module:line attr``)."""
    module = module or path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=module)
    skip: set[int] = set()
    if module == "connectors/metrics.py":  # init_series creates series at 0; it moves nothing
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "init_series":
                skip.update(id(n) for n in ast.walk(node))
    followed: set[int] = set()  # metric attribute nodes that are part of a move or an alias
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and (module, node.name) in READERS:
            followed.update(id(n) for n in ast.walk(node))

    def metric_of(expr: ast.expr) -> tuple[str, ast.Call | None] | None:
        base, labels = _strip_labels(expr)
        if isinstance(base, ast.Attribute) and base.attr in attrs:
            followed.add(id(base))
            return base.attr, labels
        return None

    handles: set[str] = set()
    # names bound to a metric or one of its series: ``stage = metrics.get().stage_seconds.labels("dedup")``
    aliases: dict[str, tuple[str, ast.Call | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and id(node) not in skip:
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if _is_metrics_object(node.value, set()):
                handles.update(names)
            found = metric_of(node.value)
            if found is not None:
                aliases.update((name, found) for name in names)
    moves: list[Move] = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in MOVES:
            continue
        receiver = node.func.value
        found = metric_of(receiver)
        if found is None and isinstance(receiver, ast.Name):
            found = aliases.get(receiver.id)
        if found is None:
            continue
        attr, labels = found
        moves.append(Move(attr, module, node.lineno, _partition(attr, labels)))
    unfollowed = [
        f"{module}:{node.lineno} {node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in attrs and id(node) not in skip
        and id(node) not in followed and _is_metrics_object(node.value, handles)
    ]
    return moves, unfollowed


def moves_in(path: Path, attrs: frozenset[str], module: str | None = None) -> list[Move]:
    return scan(path, attrs, module)[0]


def all_moves() -> list[Move]:
    attrs = metric_attrs()
    return [move for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py")) for move in moves_in(path, attrs)]


def test_every_metric_reference_is_a_move_the_scan_follows() -> None:
    """A metric handed around (``counter = m.duplicates; helper(counter)``) would hide its owner."""
    attrs = metric_attrs()
    unfollowed = [u for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py")) for u in scan(path, attrs)[1]]
    assert not unfollowed, "metric references that are not a move or an alias the scan follows:\n" + "\n".join(
        unfollowed)


def owner_table(moves: list[Move]) -> str:
    by_key: dict[str, list[str]] = defaultdict(list)
    for mv in moves:
        key = mv.attr if mv.partition is None else f"{mv.attr}[{mv.partition}]"
        by_key[key].append(f"{mv.module}:{mv.line}")
    return "\n".join(f"  {key:32} {', '.join(sites)}" for key, sites in sorted(by_key.items()))


def test_the_scan_sees_every_metric_family() -> None:
    attrs = metric_attrs()
    assert len(attrs) == 23, sorted(attrs)
    moved = {mv.attr for mv in all_moves()}
    assert moved == attrs, f"never moved: {sorted(attrs - moved)}"


def test_the_scan_follows_aliases_and_labels(tmp_path: Path) -> None:
    attrs = metric_attrs()
    src = tmp_path / "probe.py"
    code = (
        "def f(m, metrics):\n"
        "    s = metrics.get().stage_seconds.labels('dedup')\n"
        "    s.observe(1)\n"
        "    m.duplicates.labels(kind).inc()\n"
        "    self.metrics.backlog.set(3)\n"
        "    report.duplicates += 1\n"
    )
    src.write_text(code, encoding="utf-8")
    found = {(mv.attr, mv.partition) for mv in moves_in(src, attrs, "pipelines/probe.py")}
    assert found == {("stage_seconds", "dedup"), ("duplicates", "?"), ("backlog", None)}
    src.write_text("def g(metrics, helper):\n    m = metrics.get()\n    helper(m.latency)\n", encoding="utf-8")
    assert scan(src, attrs, "pipelines/probe.py") == ([], ["pipelines/probe.py:3 latency"])


def test_every_metric_has_one_owner_module() -> None:
    moves = all_moves()
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    problems: list[str] = []
    for mv in moves:
        if mv.partition is None:
            owners[(mv.attr, "")].add(mv.module)
        elif mv.partition != "?":
            owners[(mv.attr, mv.partition)].add(mv.module)
        elif (mv.attr, mv.module) in COMPUTED_PARTITIONS:
            for value in COMPUTED_PARTITIONS[(mv.attr, mv.module)]:
                owners[(mv.attr, value)].add(mv.module)
        else:
            problems.append(f"{mv.module}:{mv.line}: {mv.attr} moved with a computed {mv.attr} label; "
                            "use a literal or list the site in COMPUTED_PARTITIONS")
    for (attr, part), modules in sorted(owners.items()):
        if len(modules) > 1:
            name = f"{attr}[{part}]" if part else attr
            problems.append(f"{name} is moved from {len(modules)} modules: {', '.join(sorted(modules))}")
    assert not problems, "\n".join(problems) + "\nowner table (metric -> call sites):\n" + owner_table(moves)


def test_articles_indexed_is_counted_by_the_driver_only() -> None:
    """The double count of issue 15: the search-engine sink must not count indexed articles itself."""
    modules = {mv.module for mv in all_moves() if mv.attr == "articles_indexed"}
    assert modules == {"pipelines/process.py"}, modules
