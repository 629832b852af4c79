"""Where an article's CPU goes, stage by stage, beside the extraction floor, in one run.

``bench/throughput.py`` says how far newsmon is from the floor; this script says why. Over the
same realistic pages (``_corpus.heavy_page``, served from another process on 127.0.0.1) it
times each stage of ``newsmon backfill`` on its own, in this process, one core, in CPU
milliseconds per article:

  floor        ``trafilatura.extract(html, output_format="json", with_metadata=True)``
  feed         ``connectors.rss.parse_feed`` of the feed listing every page, per entry
  fetch        ``connectors.web.HttpClient.get`` of each page (client side only)
  extract      ``transforms.extract.extract_page`` (trafilatura as newsmon calls it, the title
               and date clean-up)
  language     ``transforms.language.detect_language`` on title + text
  page checks  ``transforms.extract.judge_page_text``: the page's text judged against the
               feed's (the rest of ``build_article``)
  dedup        ``transforms.dedup.features`` (pure) and the decisions against the on-disk
               ``SqliteDedupStore`` (a cycle's decisions in one transaction, as the driver does)
  topics       ``transforms.topics.tag_article`` with the shipped topics
  index        ``connectors.localindex.LocalIndex.write`` in batches of 400

Then ``newsmon backfill --workers 1`` itself, pinned to one core, over the same feed, and its
CPU per article past start-up (the same command over the first 10 articles subtracted). What
it spends beyond the stages listed is the driver's own share: the Beam pipeline per batch,
the state store's pending/outbox bookkeeping, metrics, fetch threads contending for the GIL.

Every figure is the median of ``--repeat`` rounds (each stage is timed over all the pages in
a round). On a shared machine absolute figures drift with the load; the shares much less.

    .venv/bin/python bench/cost_budget.py [--articles 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from _corpus import corpus_articles, serve_in_subprocess
from throughput import STARTUP_ARTICLES, newsmon_backfill


def cpu_ms(fn: Callable[[], Any], n: int) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) / n * 1000


def one_round(feed_body: bytes, feed_url: str, tmp: Path) -> dict[str, float]:
    """CPU ms per article of each stage, over every page of the feed."""
    import trafilatura

    from connectors.dedupstore import SqliteDedupStore
    from connectors.localindex import LocalIndex
    from connectors.rss import parse_feed
    from connectors.settings import FeedConfig, FetchConfig
    from connectors.web import HttpClient
    from pipelines.local import BATCH_MAX as BATCH  # the local driver's largest batch
    from transforms import dedup
    from transforms.extract import build_article, extract_page, judge_page_text, strip_html
    from transforms.language import detect_language
    from transforms.records import article_id, utcnow
    from transforms.topicrules import load_topics
    from transforms.topics import tag_article
    from transforms.urls import canonical_url

    out: dict[str, float] = {}
    now = utcnow()
    feed = FeedConfig(id="bench", url=feed_url, name="Kabar Uji")
    entries, _ = parse_feed(feed_body, feed=feed, fetched_at=now)
    n = len(entries)
    out["feed"] = cpu_ms(lambda: parse_feed(feed_body, feed=feed, fetched_at=now), n)

    http = HttpClient(FetchConfig(allow_hosts=("127.0.0.1",), per_host_min_spacing=0.0, robots=False))
    pages: list[str] = []
    out["fetch"] = cpu_ms(lambda: pages.extend(http.get(e.link).text() for e in entries), n)
    http.close()

    out["floor"] = cpu_ms(lambda: [trafilatura.extract(p, output_format="json", with_metadata=True) for p in pages], n)
    extracted: list[Any] = []
    out["extract"] = cpu_ms(
        lambda: extracted.extend(extract_page(p, url=e.link, now=now) for p, e in zip(pages, entries, strict=True)), n
    )
    out["language"] = cpu_ms(lambda: [detect_language(f"{x['title']}\n{x['text']}") for x in extracted if x], n)

    def judge_all() -> None:
        for page, found, entry in zip(pages, extracted, entries, strict=True):
            judge_page_text(page, found, feed_title=strip_html(entry.title), feed_summary=strip_html(entry.summary))

    out["page checks"] = cpu_ms(judge_all, n)

    articles = []
    for page, entry in zip(pages, entries, strict=True):
        url = canonical_url(entry.link)
        articles.append(build_article(entry=entry, article_id=article_id(url), canonical_url=url,
                                      final_url=entry.link, html=page, first_seen=entry.fetched_at))
    out["dedup features"] = cpu_ms(lambda: [dedup.features(a) for a in articles], n)
    store = SqliteDedupStore(tmp / f"dedup-{time.monotonic_ns()}.sqlite3")
    decided: list[Any] = []

    def decide_all() -> None:
        for i in range(0, n, BATCH):
            with store.batch():
                decided.extend(dedup.decide_batch(articles[i : i + BATCH], store, now=now + timedelta(minutes=1)))

    out["dedup decisions"] = max(0.0, cpu_ms(decide_all, n) - out["dedup features"])
    store.close()

    topics = load_topics()
    tagged: list[Any] = []
    out["topics"] = cpu_ms(lambda: tagged.extend(tag_article(a, topics) for a in decided), n)

    index = LocalIndex(tmp / f"index-{time.monotonic_ns()}.sqlite3")
    out["index"] = cpu_ms(lambda: [index.write(tagged[i : i + BATCH]) for i in range(0, n, BATCH)], n)
    index.close()
    return out


STAGES = ("feed", "fetch", "extract", "language", "page checks", "dedup features", "dedup decisions", "topics", "index")


def report(rounds: Sequence[dict[str, float]], backfill: float | None) -> None:
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    floor = med["floor"]
    print(f"{'stage':<44} {'CPU ms/article':>14} {'x floor':>8}")
    print(f"{'floor: trafilatura.extract alone':<44} {floor:14.2f} {1.0:8.2f}")
    total = 0.0
    for stage in STAGES:
        total += med[stage]
        print(f"{'  ' + stage:<44} {med[stage]:14.2f} {med[stage] / floor:8.2f}")
    print(f"{'sum of the stages':<44} {total:14.2f} {total / floor:8.2f}")
    on_top = total - med["extract"]
    print(f"{'  of which not extraction (budget: 0.25x floor)':<44} {on_top:14.2f} {on_top / floor:8.2f}")
    if backfill is not None:
        print(f"{'newsmon backfill --workers 1, past start-up':<44} {backfill:14.2f} {backfill / floor:8.2f}")
        rest = backfill - total
        print(f"{'  beyond the stages (driver, Beam, state)':<44} {rest:14.2f} {rest / floor:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-backfill", action="store_true", help="only the stages, not newsmon backfill itself")
    args = ap.parse_args()

    stories = corpus_articles(args.articles)
    feed_url, server = serve_in_subprocess(stories, heavy=True)
    small_url, small_server = serve_in_subprocess(stories[:STARTUP_ARTICLES], heavy=True)
    os.sched_setaffinity(0, {0})
    try:
        with urllib.request.urlopen(feed_url, timeout=30) as r:  # noqa: S310 - loopback
            feed_body = r.read()
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            one_round(feed_body, feed_url, tmp)  # warm-up: imports, the language model, date tables
            rounds = [one_round(feed_body, feed_url, tmp) for _ in range(args.repeat)]
            backfill = None
            if not args.no_backfill:
                runs = []
                for _ in range(args.repeat):
                    _, full = newsmon_backfill(feed_url, tmp, len(stories), workers=1, cpu=0)
                    _, small = newsmon_backfill(small_url, tmp, STARTUP_ARTICLES, workers=1, cpu=0)
                    runs.append((full - small) / (len(stories) - STARTUP_ARTICLES) * 1000)
                backfill = statistics.median(runs)
        print(f"{len(stories)} corpus articles as portal pages, one core, median of {args.repeat} rounds")
        report(rounds, backfill)
    finally:
        server.kill()  # type: ignore[attr-defined]
        small_server.kill()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
