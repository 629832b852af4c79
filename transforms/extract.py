"""Turn a fetched page (plus its feed entry) into an :class:`~transforms.records.Article`.

:func:`build_article` is pure: no I/O, no clock, no Beam. The lead's pipeline
calls it once per fetched page; whatever the page holds, it returns an Article
and never raises.

How each field is chosen:

* **text, authors** -- trafilatura's ``bare_extraction`` with ``favor_precision``
  and no comments (Indonesian portals surround the story with "Berita
  Terkait"/"Terpopuler" lists that recall mode keeps). When precision mode
  keeps too little, extraction is retried in the default mode. Paragraphs are
  separated by ``"\\n"`` as trafilatura emits them.
* **title** -- the cleaned page title: an ``<h1>`` that appears inside the
  ``<title>``/``og:title`` wins (it is the bare headline), otherwise the site
  name is cut from either end (``"... - Kompas.com"``, ``"KapanLagi.com: ..."``,
  ``"... | Republika Online"``). The feed's title is used when the page title
  only adds decoration around it, and when the page has none.
* **published** -- the feed's ``published`` when the feed gave a time of day
  (feeds are the most reliable clock); else the page date that htmldate finds
  (through trafilatura, asked to keep the time), completed with a time of day
  from the page's visible byline (``"Selasa, 23/02/2016 15:32 WIB"``) when
  htmldate only knew the day; else the feed's date-only value; else ``None``.
  Always UTC.
* **fallback** -- the page's text is kept unless it is worse than what the feed
  gave: no HTML, nothing extracted, unreadable (binary), boilerplate (a cookie
  or "enable JavaScript" wall, an error page), shorter than the feed's summary,
  or a different story (few of the feed summary's or title's words in it).
  When the feed offers nothing to compare with, a page must look like a story:
  at least :data:`MIN_TEXT_CHARS` characters with sentences (an index page is a
  list of headlines). A list-like body (a sports schedule, results, a price
  table) that carries the feed summary's words is the story and is kept.
  Otherwise the Article is built from the feed's title and summary (HTML
  stripped) with ``extraction=EXTRACTION_FEED_FALLBACK``. Either way the reason
  is in ``Article.extraction_note`` (empty for an ordinary page) and logged.
* **language** -- :func:`transforms.language.detect_language` over title + text.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import trafilatura
from lxml.html import HtmlElement
from trafilatura.utils import load_html

from transforms.dates import WIB, parse_date
from transforms.language import detect_language
from transforms.records import EXTRACTION_FEED_FALLBACK, EXTRACTION_PAGE, Article, FeedEntry, to_utc

__all__ = ["MIN_TEXT_CHARS", "build_article", "clean_title", "extract_page", "judge_page_text", "strip_html"]

log = logging.getLogger(__name__)

MIN_TEXT_CHARS = 200  # below this, the page did not give us the story: use the feed
MAX_HTML_CHARS = 3_000_000  # the fetcher caps bytes too; this bounds parse time on hostile pages
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

_TAG = re.compile(r"<[^>]*>")
_SCRIPT = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|»|·)\s+")
_DOMAIN_LIKE = re.compile(r"\b[\w-]+\.(?:com|co\.id|id|net|org|news|tv)\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[^\s.!?])[.!?][\"”’)]?(?:\s|$)")  # lookbehind: the scan skips to [.!?]
_BYLINE = re.compile(
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{4}|\d{4}-\d{2}-\d{2}|\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{4})"  # the date
    r"[\s,|/-]{0,6}(?:pukul\s+|jam\s+)?\d{1,2}[:.]\d{2}(?:[:.]\d{2})?"  # the time
    r"(?:\s*(?:WIB|WITA|WIT|GMT[+-]?\d{0,2}|UTC))?",
    re.IGNORECASE,
)
_FEED_TIME = re.compile(
    r"\d{1,2}:\d{2}|pukul\s*\d{1,2}[.:]\d{2}|\d{1,2}\.\d{2}\s*(?:WIB|WITA|WIT)\b", re.IGNORECASE
)


def build_article(
    *,
    entry: FeedEntry,
    article_id: str,
    canonical_url: str,
    final_url: str,
    html: str | None,
    first_seen: datetime,
) -> Article:
    """Build the Article for one fetched page; falls back to the feed entry, never raises."""
    page = extract_page(html, url=final_url, now=first_seen) if html else None
    feed_summary = strip_html(entry.summary)
    feed_title = strip_html(entry.title)
    reason, note = judge_page_text(html, page, feed_title=feed_title, feed_summary=feed_summary)
    if reason is None and page is not None:
        title = _choose_title(page.get("title", ""), entry.title)
        text = page["text"]
        authors = tuple(page.get("authors", ()))
        page_date = page.get("published")
        extraction = EXTRACTION_PAGE
        summary = feed_summary or page.get("description", "")
    else:
        note = f"feed fallback: {reason}"
        log.info("feed fallback for %s: %s", final_url, reason)
        title = feed_title
        text = feed_summary
        authors = ()
        page_date = page.get("published") if page else None
        extraction = EXTRACTION_FEED_FALLBACK
        summary = feed_summary
    language, confidence = detect_language(f"{title}\n{text}")
    return Article(
        id=article_id,
        url=final_url,
        canonical_url=canonical_url,
        source=entry.source,
        title=title,
        text=text,
        published=_choose_published(entry, page_date),
        first_seen=to_utc(first_seen),
        feed_id=entry.feed_id,
        feed_url=entry.feed_url,
        summary=summary,
        language=language,
        language_confidence=confidence,
        authors=authors,
        extraction=extraction,
        extraction_note=note,
    )


def extract_page(html: str, *, url: str | None = None, now: datetime | None = None) -> dict[str, Any] | None:
    """Title, text, authors, description and date of a page, or ``None`` when it cannot be read.

    ``now`` bounds the plausible publication date (htmldate's ``max_date``).
    Never raises: a failure is logged and reported as ``None``.
    """
    try:
        return _extract_page(html[:MAX_HTML_CHARS], url=url, now=now)
    except Exception as exc:  # noqa: BLE001 -- hostile pages must not stop the pipeline; logged
        log.warning("extraction failed for %s: %s: %s", url, type(exc).__name__, exc)
        return None


def _extract_page(html: str, *, url: str | None, now: datetime | None) -> dict[str, Any] | None:
    tree = load_html(html)
    if tree is None:
        return None
    h1s = _h1_texts(tree)  # read before trafilatura prunes the tree
    max_date = (now or datetime.now(WIB)).astimezone(WIB) + timedelta(days=1)
    params = {
        "original_date": True,
        "extensive_search": True,
        "max_date": max_date.strftime("%Y-%m-%d"),
        "outputformat": _DATE_FORMAT,
    }
    doc = _run_trafilatura(tree, url=url, params=params, favor_precision=True)
    if doc is None or len(doc.text or "") < MIN_TEXT_CHARS:
        retry = _run_trafilatura(load_html(html), url=url, params=params, favor_precision=False)
        if retry is not None and len(retry.text or "") > len((doc.text if doc else "") or ""):
            doc = retry
    if doc is None:
        return None
    raw_title = " ".join((doc.title or "").split())
    title = clean_title(raw_title, h1s=h1s, sitename=doc.sitename or "", hostname=doc.hostname or "")
    return {
        "title": title,
        "text": _drop_leading_title(_tidy_text(doc.text or ""), (title, raw_title, *h1s)),
        "authors": _split_authors(doc.author or ""),
        "description": " ".join((doc.description or "").split()),
        "published": _page_date(doc.date, html),
    }


def _run_trafilatura(
    tree: HtmlElement | None, *, url: str | None, params: dict[str, Any], favor_precision: bool
) -> Any:
    if tree is None:
        return None
    return trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        favor_precision=favor_precision,
        date_extraction_params=params,
    )


def _h1_texts(tree: HtmlElement) -> list[str]:
    texts = []
    for element in tree.iter("h1"):
        text = " ".join(element.text_content().split())
        if text:
            texts.append(text)
        if len(texts) >= 5:
            break
    return texts


def clean_title(title: str, *, h1s: Sequence[str] = (), sitename: str = "", hostname: str = "") -> str:
    """The bare headline from a ``<title>``-like string (see the module docstring)."""
    title = " ".join(title.split())
    folded = title.casefold()
    words_in_title = len(_WORD.findall(title))
    best = ""
    for h1 in h1s:
        if len(_WORD.findall(h1)) >= 3 and h1.casefold() in folded and len(h1) >= 0.4 * len(title):
            best = max(best, h1, key=len)
    if best:
        return best
    if not title or words_in_title < 3:
        return title
    brands = _brands(sitename, hostname)
    parts = _TITLE_SEPARATORS.split(title)
    while len(parts) > 1 and _is_site_name(parts[-1], brands):
        parts.pop()
    while len(parts) > 1 and _is_site_name(parts[0], brands):
        parts.pop(0)
    title = " - ".join(parts) if len(parts) > 1 else parts[0]
    prefix, sep, rest = title.partition(": ")
    if sep and rest and _is_site_name(prefix, brands):
        title = rest
    return title.strip()


def _brands(sitename: str, hostname: str) -> set[str]:
    brands = {w for w in _WORD.findall(sitename.casefold()) if len(w) >= 4}
    host = hostname.casefold().removeprefix("www.")
    if host:
        brands.add(host.split(".")[0])
    return brands


def _is_site_name(part: str, brands: set[str]) -> bool:
    words = _WORD.findall(part.casefold())
    if not words or len(words) > 5:
        return False
    if _DOMAIN_LIKE.search(part):
        return True
    return any(word in brands for word in words)


def _split_authors(author: str) -> tuple[str, ...]:
    names = (" ".join(name.split()) for name in re.split(r";|\|", author))
    return tuple(dict.fromkeys(name for name in names if name))


def _tidy_text(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _drop_leading_title(text: str, titles: Sequence[str]) -> str:
    """trafilatura sometimes starts the body with the headline; the title field already has it."""
    first, sep, rest = text.partition("\n")
    if sep and first.casefold() in {t.casefold() for t in titles if t}:
        return rest
    return text


def _page_date(raw: str | None, html: str) -> datetime | None:
    """htmldate's answer; when it has no time of day, take the time from a byline of the same day."""
    if not raw:
        return None
    found = parse_date(raw)
    if found is None:
        return None
    if not raw.endswith("T00:00:00"):
        return found
    day = raw[:10]
    visible = htmllib.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", html)))
    for match in _BYLINE.finditer(visible):
        candidate = parse_date(match.group(0))
        if candidate is not None and candidate.astimezone(WIB).date().isoformat() == day:
            return candidate
    return found


# Content words for comparing the page with the feed entry: 4+ letters, minus the commonest
# Indonesian function words (they would make any two texts look alike).
_CONTENT_WORD = re.compile(r"[^\W\d_]{4,}")
_STOPWORDS = frozenset(
    "yang dengan untuk dari pada dalam akan atau juga tidak sudah telah oleh karena bahwa saat "
    "para lebih masih bisa dapat harus hingga sejak antara setelah sebelum kata ujar menurut "
    "kami kita mereka anda adalah ialah yaitu namun tetapi serta agar supaya jika kalau seperti "
    "sebagai secara tersebut ini itu sini sana baru ketika the and that with from this".split()
)
_NOT_TEXT = re.compile(r"[^\w\s]|[\d_]")  # characters that are neither letters nor spaces
_BOILERPLATE = re.compile(
    r"enable javascript|aktifkan javascript|javascript (?:is )?(?:disabled|required)|"
    r"(?:we|kami) (?:use|menggunakan) cookies?|accept (?:all )?cookies|terima (?:semua )?cookie|"
    r"access denied|akses ditolak|403 forbidden|page not found|halaman tidak ditemukan|"
    r"are you a robot|verify you are human|please (?:subscribe|log ?in) to (?:continue|read)|"
    r"berlangganan untuk membaca|silakan (?:login|masuk) untuk membaca",
    re.IGNORECASE,
)
_WORD_2 = re.compile(r"[^\W\d_]{2,}")
_COMPARE_CHARS = 6000  # the feed's summary and title are about the lead: compare with the start of the page
SAME_STORY = 0.5  # at least this share of the feed summary's content words in the page: the same story
OTHER_STORY = 0.25  # below this share (summary, or title when there is no summary): a different story


def _content_words(text: str) -> set[str]:
    return set(_CONTENT_WORD.findall(text.casefold())) - _STOPWORDS


def _share_in(words: set[str], page_words: set[str]) -> float | None:
    """The share of ``words`` found in the page; None when there are too few words to judge."""
    if len(words) < 3:
        return None
    return len(words & page_words) / len(words)


def judge_page_text(
    html: str | None, page: dict[str, Any] | None, *, feed_title: str = "", feed_summary: str = ""
) -> tuple[str | None, str]:
    """``(reason to fall back to the feed's text or None, note for the record)``.

    Cheap: a few regular expressions and set operations over the first few thousand characters,
    no per-character Python loop (it runs once per article).
    """
    if not html:
        return "no html", ""
    if page is None:
        return "page could not be extracted", ""
    text = page.get("text", "")
    if not text.strip():
        return "the page gave no text", ""
    sample = text[:5000]
    not_text = len(_NOT_TEXT.findall(sample))
    words = _WORD_2.findall(sample)
    if not_text > 0.5 * len(sample) or len(words) < 5:
        return "extracted text is not readable text", ""
    if len(text) < 1500:
        wall = _BOILERPLATE.search(text)
        if wall is not None:
            return f"extracted text is boilerplate ({wall.group(0)!r})", ""
    page_words = _content_words(f"{page.get('title', '')}\n{text[:_COMPARE_CHARS]}")
    summary_share = _share_in(_content_words(feed_summary), page_words)
    title_share = _share_in(_content_words(feed_title), page_words)
    compared = summary_share if summary_share is not None else title_share
    if compared is not None and compared < OTHER_STORY:
        what = "summary" if summary_share is not None else "title"
        return f"a different story: {compared:.0%} of the feed {what}'s words are in the page text", ""
    if feed_summary and len(text) < len(feed_summary):
        return f"extracted text ({len(text)} chars) is shorter than the feed summary ({len(feed_summary)})", ""
    prose = len(text) >= MIN_TEXT_CHARS and _looks_like_prose(sample, not_text=not_text, words=len(words))
    if summary_share is not None and summary_share >= SAME_STORY:
        if not prose:
            return None, f"list-like or short page text kept: it carries {summary_share:.0%} of the feed summary's words"
        return None, ""
    if len(text) < MIN_TEXT_CHARS:
        return f"only {len(text)} chars of text and no feed summary that vouches for it", ""
    if not prose:
        return "extracted text is a list without sentences (an index page?) and no feed summary vouches for it", ""
    return None, ""


def _looks_like_prose(sample: str, *, not_text: int, words: int) -> bool:
    """Mostly letters and spaces, real words, and sentences (an index page is a list of headlines)."""
    return (
        len(sample) - not_text >= 0.7 * len(sample)
        and words >= 20
        and len(_SENTENCE_END.findall(sample, 0, 5000)) >= 2
    )


def _choose_title(page_title: str, feed_title: str) -> str:
    feed_title = strip_html(feed_title)
    if not page_title:
        return feed_title
    if feed_title and feed_title.casefold() in page_title.casefold():
        return feed_title
    return page_title


def _choose_published(entry: FeedEntry, page_date: datetime | None) -> datetime | None:
    if entry.published is not None and _feed_has_time(entry):
        return to_utc(entry.published)
    if page_date is not None:
        return to_utc(page_date)
    return to_utc(entry.published) if entry.published is not None else None


def _feed_has_time(entry: FeedEntry) -> bool:
    if entry.published is None:
        return False
    if entry.published_raw:
        return bool(_FEED_TIME.search(entry.published_raw))
    # no raw string: a value at exactly midnight (UTC or WIB) is most likely a bare date
    utc = to_utc(entry.published)
    return utc.time() != datetime.min.time() and utc.astimezone(WIB).time() != datetime.min.time()


def strip_html(fragment: str) -> str:
    """Plain text of a feed title/summary: tags dropped, entities decoded, whitespace collapsed."""
    if not fragment:
        return ""
    text = _TAG.sub(" ", _SCRIPT.sub(" ", fragment))
    return " ".join(htmllib.unescape(text).split())
