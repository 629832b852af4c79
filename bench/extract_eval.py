"""Extraction quality and speed on the real Indonesian pages in ../shared/data/html.

Prints, over the article pages that come with expected values:
token precision / recall / F1 of the body text (bag of lower-cased word tokens,
macro-averaged per page), title accuracy (exact, and normalised: case, spacing
and punctuation folded), date accuracy (within 60 s, and same WIB calendar day)
where an expected date exists, and milliseconds per page for build_article.

    .venv/bin/python bench/extract_eval.py            # summary
    .venv/bin/python bench/extract_eval.py --pages    # plus one line per page

tests/test_extract_quality.py imports ``evaluate`` from here and pins floors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transforms.dates import WIB
from transforms.extract import build_article
from transforms.records import FeedEntry, article_id

HTML_DIR = ROOT.parent / "shared" / "data" / "html"
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Case:
    path: Path
    url: str
    title: str
    text: str
    published: datetime | None


@dataclass(frozen=True)
class PageResult:
    name: str
    precision: float
    recall: float
    f1: float
    title_exact: bool
    title_normalised: bool
    date_minute: bool | None
    date_day: bool | None
    extraction: str
    ms: float


def load_cases(html_dir: Path = HTML_DIR) -> list[Case]:
    """The article pages with expected values (index pages and pages without gold are left out)."""
    cases: list[Case] = []
    anpandu = html_dir / "anpandu_indonesian-news-scraper"
    gold = json.loads((anpandu / "GOLD_expected_from_upstream_tests.json").read_text(encoding="utf-8"))
    for rel, expected in sorted(gold.items()):
        if "content" not in expected:
            continue  # index page: only its first URLs are given
        date = expected.get("date")
        cases.append(
            Case(
                path=anpandu / rel,
                url=expected.get("url", ""),
                title=expected.get("title", ""),
                text=expected["content"],
                published=datetime.fromtimestamp(date / 1000, UTC) if date else None,
            )
        )
    fundus = html_dir / "fundus_MediaIndonesia"
    expected = json.loads((fundus / "MediaIndonesia.json").read_text(encoding="utf-8"))["V1"]
    paragraphs = [p for section in expected["body"]["sections"] for p in section["paragraphs"]]
    cases.append(
        Case(
            path=fundus / "MediaIndonesia_2026_01_20.html",
            url="https://mediaindonesia.com/",
            title=expected["title"],
            text="\n".join(paragraphs),
            published=datetime.fromisoformat(expected["publishing_date"]),
        )
    )
    return cases


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.casefold()))


def prf(predicted: str, expected: str) -> tuple[float, float, float]:
    p, g = tokens(predicted), tokens(expected)
    overlap = sum((p & g).values())
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(g.values()), 1)
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def normalise_title(title: str) -> str:
    return " ".join(_TOKEN.findall(title.casefold()))


def _entry(case: Case) -> FeedEntry:
    """A feed entry that tells nothing: no title, summary or date, so the page alone is measured."""
    return FeedEntry(
        feed_url="",
        feed_id="eval",
        source=case.path.parent.name,
        entry_id=case.url,
        link=case.url,
        title="",
        summary="",
        published=None,
        published_raw="",
        fetched_at=datetime(2026, 2, 1, tzinfo=UTC),
    )


def evaluate_case(case: Case) -> PageResult:
    html = case.path.read_bytes().decode("utf-8", errors="replace")
    started = time.perf_counter()
    article = build_article(
        entry=_entry(case),
        article_id=article_id(case.url),
        canonical_url=case.url,
        final_url=case.url,
        html=html,
        first_seen=datetime(2026, 2, 1, tzinfo=UTC),
    )
    ms = (time.perf_counter() - started) * 1000
    precision, recall, f1 = prf(article.text, case.text)
    date_minute = date_day = None
    if case.published is not None:
        got = article.published
        date_minute = got is not None and abs((got - case.published).total_seconds()) < 60
        date_day = got is not None and got.astimezone(WIB).date() == case.published.astimezone(WIB).date()
    return PageResult(
        name=case.path.name,
        precision=precision,
        recall=recall,
        f1=f1,
        title_exact=article.title.strip() == case.title.strip(),
        title_normalised=normalise_title(article.title) == normalise_title(case.title),
        date_minute=date_minute,
        date_day=date_day,
        extraction=article.extraction,
        ms=ms,
    )


def evaluate(html_dir: Path = HTML_DIR) -> tuple[dict[str, float], list[PageResult]]:
    results = [evaluate_case(case) for case in load_cases(html_dir)]
    n = len(results)
    dated = [r for r in results if r.date_minute is not None]
    summary = {
        "pages": n,
        "precision": sum(r.precision for r in results) / n,
        "recall": sum(r.recall for r in results) / n,
        "f1": sum(r.f1 for r in results) / n,
        "title_exact": sum(r.title_exact for r in results) / n,
        "title_normalised": sum(r.title_normalised for r in results) / n,
        "dated_pages": len(dated),
        "date_minute": sum(bool(r.date_minute) for r in dated) / max(len(dated), 1),
        "date_day": sum(bool(r.date_day) for r in dated) / max(len(dated), 1),
        "feed_fallbacks": sum(r.extraction != "page" for r in results),
        "ms_per_page_median": sorted(r.ms for r in results)[n // 2],
        "ms_per_page_mean": sum(r.ms for r in results) / n,
    }
    return summary, results


def index_pages(html_dir: Path = HTML_DIR) -> list[Path]:
    return sorted(html_dir.glob("*/*/*mainpage*.html")) + sorted(
        html_dir.glob("nathanaelfd10_news-crawler/*.html")
    )


def index_fallback_rate(html_dir: Path = HTML_DIR) -> tuple[int, int]:
    """How many listing (index) pages are recognised as having no story (feed fallback)."""
    paths = index_pages(html_dir)
    fallbacks = 0
    for path in paths:
        case = Case(path=path, url="https://example.invalid/", title="", text="", published=None)
        article = build_article(
            entry=_entry(case),
            article_id=article_id(case.url),
            canonical_url=case.url,
            final_url=case.url,
            html=path.read_bytes().decode("utf-8", errors="replace"),
            first_seen=datetime(2026, 2, 1, tzinfo=UTC),
        )
        fallbacks += article.extraction != "page"
    return fallbacks, len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", action="store_true", help="print one line per page")
    args = parser.parse_args()
    if not HTML_DIR.exists():
        print(f"{HTML_DIR} absent: nothing to evaluate")
        return 1
    build_article  # noqa: B018 -- warm imports (py3langid model, trafilatura) before timing
    evaluate_case(load_cases()[0])
    summary, results = evaluate()
    if args.pages:
        for r in results:
            print(
                f"{r.name:32s} P={r.precision:.2f} R={r.recall:.2f} F1={r.f1:.2f} "
                f"title={'=' if r.title_exact else ('~' if r.title_normalised else 'x')} "
                f"date={r.date_minute} day={r.date_day} {r.extraction} {r.ms:.1f} ms"
            )
    print(f"pages                 {summary['pages']}")
    print(
        f"body tokens           P {summary['precision']:.3f}  R {summary['recall']:.3f}  F1 {summary['f1']:.3f}"
    )
    print(
        f"title accuracy        exact {summary['title_exact']:.3f}  normalised {summary['title_normalised']:.3f}"
    )
    print(
        f"date accuracy         within 60 s {summary['date_minute']:.3f}  same day {summary['date_day']:.3f}"
        f"  ({summary['dated_pages']} pages with a date)"
    )
    print(f"feed fallbacks        {summary['feed_fallbacks']} of {summary['pages']} article pages")
    fallbacks, total = index_fallback_rate()
    print(f"index pages           {fallbacks} of {total} recognised as no-story (feed fallback)")
    print(
        f"ms/page (build_article) median {summary['ms_per_page_median']:.1f}  mean {summary['ms_per_page_mean']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
