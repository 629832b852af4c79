"""A tiny news site for end-to-end tests: an RSS feed plus article pages on a LocalServer.

    site = NewsSite(server, "/rss.xml")
    site.publish("Putin tiba di Pyongyang", ["Paragraf satu.", "Paragraf dua."])
    newsmon run --feed {site.feed_url} --allow-host 127.0.0.1 ...

``publish`` may be called while the pipeline runs: the next poll sees the new item. The
feed carries ETag/Last-Modified and answers conditional GETs with 304 when unchanged, as
polite real servers do.
"""

from __future__ import annotations

import hashlib
import html
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

from tests.localserver import LocalServer, Request, Route

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True)
class Story:
    slug: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime


class NewsSite:
    def __init__(self, server: LocalServer, feed_path: str = "/rss.xml", *, name: str = "Kabar Uji",
                 max_items: int | None = None) -> None:
        self.server = server
        self.feed_path = feed_path
        self.name = name
        self.max_items = max_items  # like real feeds, list only the newest N items (None: all)
        self.stories: list[Story] = []
        self._lock = threading.Lock()
        server.route(feed_path, self._feed)

    @property
    def feed_url(self) -> str:
        return self.server.url(self.feed_path)

    def url_of(self, story: Story) -> str:
        return self.server.url(f"/berita/{story.slug}")

    def publish(
        self,
        title: str,
        paragraphs: list[str] | tuple[str, ...],
        *,
        published: datetime | None = None,
        slug: str | None = None,
    ) -> Story:
        with self._lock:
            n = len(self.stories) + 1
            story = Story(
                slug=slug or f"{n}-{hashlib.sha1(title.encode()).hexdigest()[:8]}",
                title=title,
                paragraphs=tuple(paragraphs),
                published=published or datetime.now(timezone.utc).replace(microsecond=0),
            )
            self.stories.append(story)
            self.server.route(
                f"/berita/{story.slug}",
                Route(
                    body=article_page(story, self.name).encode("utf-8"),
                    headers={"Content-Type": "text/html; charset=utf-8"},
                ),
            )
        return story

    def _feed(self, request: Request) -> Route:
        with self._lock:
            stories = self.stories[-self.max_items :] if self.max_items else list(self.stories)
            body = rss(self, stories).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("if-none-match") == etag:
            return Route(status=304, headers={"ETag": etag})
        return Route(body=body, headers={"Content-Type": "application/rss+xml; charset=utf-8", "ETag": etag})


def rss(site: NewsSite, stories: list[Story]) -> str:
    items = "\n".join(
        f"""    <item>
      <title>{html.escape(s.title)}</title>
      <link>{html.escape(site.url_of(s))}</link>
      <guid isPermaLink="true">{html.escape(site.url_of(s))}</guid>
      <pubDate>{format_datetime(s.published)}</pubDate>
      <description>{html.escape(s.paragraphs[0] if s.paragraphs else "")}</description>
    </item>"""
        for s in reversed(stories)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>{html.escape(site.name)}</title>
    <link>{html.escape(site.server.url("/"))}</link>
    <description>Berita uji</description>
    <language>id</language>
{items}
  </channel>
</rss>
"""


def article_page(story: Story, site_name: str) -> str:
    paras = "\n".join(f"      <p>{html.escape(p)}</p>" for p in story.paragraphs)
    return f"""<!DOCTYPE html>
<html lang="id">
<head>
  <meta charset="utf-8">
  <title>{html.escape(story.title)} - {html.escape(site_name)}</title>
  <meta property="og:title" content="{html.escape(story.title)}">
  <meta property="article:published_time" content="{story.published.isoformat()}">
</head>
<body>
  <header><nav><a href="/">Beranda</a> | <a href="/dunia">Dunia</a> | <a href="/olahraga">Olahraga</a></nav></header>
  <main>
    <article>
      <h1>{html.escape(story.title)}</h1>
      <div class="byline">Redaksi {html.escape(site_name)}</div>
{paras}
    </article>
  </main>
  <footer>Hak cipta {html.escape(site_name)}. Semua hak dilindungi.</footer>
</body>
</html>
"""


def seed_stories() -> list[tuple[str, list[str]]]:
    """The five seed articles from ../shared/seeds as (title, paragraphs); [] when absent."""
    seeds = sorted((SHARED / "seeds").glob("0*.txt"))
    out = []
    for path in seeds:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            continue
        title = lines[0][:150]
        out.append((title, lines[1:] if len(lines) > 1 else lines))
    return out
