"""Cost of deciding whether extracted page text is kept (``transforms.extract.judge_page_text``).

Extracts the real pages in ../shared/data/html once, then times the judgment alone (best of 40
rounds, so other load on the machine counts less), beside the per-character prose check it
replaced (kept here as the baseline). build_article itself costs ~25-100 ms per page.

    .venv/bin/python bench/page_judge_bench.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from transforms.extract import extract_page, judge_page_text

HTML_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "html"
_SENTENCE_END = re.compile(r"[^\s.!?][.!?][\"”’)]?(?:\s|$)")


def old_prose(text: str) -> bool:
    """The check before issue 13: a Python generator over every character of the sample."""
    sample = text[:5000]
    letters = sum(ch.isalpha() or ch.isspace() for ch in sample)
    words = re.findall(r"[^\W\d_]{2,}", sample)
    sentences = _SENTENCE_END.findall(sample)
    return letters >= 0.7 * len(sample) and len(words) >= 20 and len(sentences) >= 2


def main() -> None:
    if not HTML_DIR.exists():
        sys.exit(f"skipped: {HTML_DIR} is absent")
    pages = []
    for path in sorted(HTML_DIR.glob("*/*/*.html")):
        html = path.read_bytes().decode("utf-8", errors="replace")
        page = extract_page(html)
        if page:
            pages.append((html, page))
    old_t = new_t = 1e9
    for _ in range(40):
        t = time.perf_counter()
        for _html, page in pages:
            old_prose(page["text"])
        old_t = min(old_t, time.perf_counter() - t)
        t = time.perf_counter()
        for html, page in pages:
            judge_page_text(html, page, feed_title="Judul berita uji", feed_summary=page["text"][:200])
        new_t = min(new_t, time.perf_counter() - t)
    n = len(pages)
    mean_chars = sum(len(page["text"]) for _, page in pages) / n
    print(f"{n} pages (mean {mean_chars:.0f} chars of text): old prose check {old_t / n * 1e6:.0f} us/page; "
          f"judge_page_text with the feed-summary comparison {new_t / n * 1e6:.0f} us/page")


if __name__ == "__main__":
    main()
