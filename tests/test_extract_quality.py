"""Quality gate: extraction over the real Indonesian pages in ../shared/data/html.

Runs the evaluation of bench/extract_eval.py and fails when a figure drops below
the floors pinned here (a little under the values measured when they were set;
see the lead's report). Skips when ../shared is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML_DIR = ROOT.parent / "shared" / "data" / "html"

# measured at commit time (27 article pages): P 0.906, R 0.962, F1 0.915, titles 26/27, dates 24/27 within 60 s,
# 27/27 same day, 0 fallbacks; index pages 7/11 recognised
FLOORS = {
    "precision": 0.88,
    "recall": 0.94,
    "f1": 0.89,
    "title_exact": 0.92,
    "title_normalised": 0.92,
    "date_minute": 0.85,
    "date_day": 0.96,
}


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_eval", ROOT / "bench" / "extract_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["extract_eval"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if not HTML_DIR.exists():
        pytest.skip("../shared/data/html absent: extraction quality not measured")
    return _bench()


@pytest.fixture(scope="module")
def summary(bench: ModuleType) -> dict[str, float]:
    result, _pages = bench.evaluate(HTML_DIR)
    return result


def test_page_count(summary: dict[str, float]) -> None:
    assert summary["pages"] == 27
    assert summary["dated_pages"] == 27


@pytest.mark.parametrize("metric", sorted(FLOORS))
def test_floor(summary: dict[str, float], metric: str) -> None:
    assert summary[metric] >= FLOORS[metric], f"{metric} = {summary[metric]:.3f} < floor {FLOORS[metric]}"


def test_no_article_page_falls_back(summary: dict[str, float]) -> None:
    assert summary["feed_fallbacks"] == 0


def test_index_pages_mostly_recognised(bench: ModuleType) -> None:
    fallbacks, total = bench.index_fallback_rate(HTML_DIR)
    assert total == 11
    assert fallbacks >= 6


def test_metric_helpers_can_fail(bench: ModuleType) -> None:
    assert bench.prf("satu dua tiga", "satu dua tiga") == (1.0, 1.0, 1.0)
    precision, recall, f1 = bench.prf("satu dua", "satu dua tiga empat")
    assert (precision, recall) == (1.0, 0.5) and f1 == pytest.approx(2 / 3)
    assert bench.prf("lain", "satu")[2] == 0.0
    assert bench.normalise_title("Judul,  Berita!") == bench.normalise_title("judul berita")
