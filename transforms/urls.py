"""URL canonicalisation: one canonical form per article page, so ``Article.id`` is stable.

``canonical_url`` is courlan's ``normalize_url`` (lower-case scheme and host, default
port dropped, tracking parameters such as ``utm_*``/``fbclid`` removed, query sorted,
percent-encoding normalised) followed by the rules Indonesian outlets need:

* scheme: ``http`` and ``https`` are the same page -> ``https``;
* host variants: ``www.``, ``m.``, ``mobile.`` and ``amp.`` prefixes are dropped
  (``m.detik.com`` and ``amp.kompas.com`` serve copies of ``detik.com``/``kompas.com``);
* AMP paths: a leading ``/amp/`` segment (tribunnews, suara) or a trailing ``/amp``
  (WordPress outlets) is dropped, and so are ``amp``/``outputType=amp`` parameters;
* paging: ``page``, ``single``, ``showpage``, ``all``/``view`` style parameters are
  dropped, so ``?page=all`` and ``?page=2`` are the article, not another article;
* the fragment and a trailing slash are dropped.

The function is idempotent (``canonical_url(canonical_url(u)) == canonical_url(u)``,
property-tested). It never returns junk silently: input that is not an absolute
``http(s)`` URL with a host raises :class:`UrlError` (a permanent error: the feed item
is dropped and counted, there is nothing to retry).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url

from transforms.records import article_id


class UrlError(ValueError):
    """The input cannot be canonicalised (not an absolute http(s) URL with a host). Permanent."""


HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")
PAGING_PARAMS = frozenset({"page", "single", "showpage", "all", "view", "halaman", "hal", "pg"})
AMP_PARAMS = frozenset({"amp", "outputtype", "amp_js_v", "usqp", "_gl"})
_MULTI_SLASH = re.compile(r"/{2,}")


def _strip_host(host: str) -> str:
    host = host.lower().strip(".")
    changed = True
    while changed:
        changed = False
        for prefix in HOST_PREFIXES:
            # keep at least "domain.tld" (never strip "m.id" down to "id")
            if host.startswith(prefix) and host.count(".") >= 2:
                host = host[len(prefix) :]
                changed = True
    return host


def _strip_path(path: str) -> str:
    path = _MULTI_SLASH.sub("/", path or "/")
    segments = [s for s in path.split("/") if s]
    while segments and segments[0].lower() == "amp":
        segments = segments[1:]
    while segments and segments[-1].lower() in ("amp", "amp.html"):
        segments = segments[:-1]
    return "/" + "/".join(segments)


def _strip_query(query: str) -> str:
    kept = [
        (k, v)
        for k, v in parse_qsl(query, keep_blank_values=True)
        if k and k.lower() not in PAGING_PARAMS and k.lower() not in AMP_PARAMS
    ]
    return urlencode(sorted(kept))


def site_and_slug(url: str) -> tuple[str, str]:
    """(host without www./m./amp. prefixes, last path segment if it is a word slug, else "").

    A slug is a last segment of three or more hyphen-joined words (``media-asing-soroti-...``);
    one outlet uses one slug for one article, whatever the path around it (``/amp/ID/slug`` and
    ``/read/ID/slug``, a migrated ``/read/433978/slug`` and ``/peristiwa/slug``).
    """
    try:
        parts = urlsplit((url or "").strip())
        host = _strip_host(parts.hostname or "")
    except ValueError:
        return "", ""
    segments = [seg for seg in _strip_path(parts.path).split("/") if seg]
    last = segments[-1].lower() if segments else ""
    for suffix in (".html", ".htm", ".php"):
        last = last.removesuffix(suffix)
    return host, (last if last.count("-") >= 2 and any(c.isalpha() for c in last) else "")


def page_number(url: str) -> int | None:
    """The page a paginated article URL names (``?page=2`` -> 2), or None (no page, or ``page=all``).

    Page 2 and later of an article hold only a fragment of it; ``canonical_url`` maps every
    page to the article, and dedup never treats a fragment's text as a whole article.
    """
    try:
        query = urlsplit(url or "").query
    except ValueError:
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in PAGING_PARAMS and value.strip().isdigit():
            return int(value.strip())
    return None


def canonical_url(url: str) -> str:
    """The canonical form of an article URL (see the module docstring). Raises :class:`UrlError`."""
    if not isinstance(url, str):
        raise UrlError(f"not a string: {type(url).__name__}")
    raw = url.strip()
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise UrlError(f"unparseable URL: {raw[:200]!r}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UrlError(f"not an absolute http(s) URL: {raw[:200]!r}")
    try:
        normalised = normalize_url(raw, strict=False, trailing_slash=False)
        parts = urlsplit(normalised)
        host = parts.hostname or ""
    except (ValueError, UnicodeError) as exc:
        raise UrlError(f"cannot normalise URL: {raw[:200]!r}") from exc
    host = _strip_host(host)
    if not host or "." not in host:
        raise UrlError(f"URL without a usable host: {raw[:200]!r}")
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit(("https", netloc, _strip_path(parts.path), _strip_query(parts.query), ""))


def canonical_id(link: str) -> tuple[str, str]:
    """(canonical URL, article id) of a feed entry's link: the key both drivers accept entries by."""
    canonical = canonical_url(link)
    return canonical, article_id(canonical)
