"""Shared by the benchmarks: real Indonesian articles from ../shared served from loopback."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "data" / "corpus" / "articles.jsonl.gz"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def corpus_articles(limit: int) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of up to ``limit`` corpus articles; exits with a reason when absent."""
    if not CORPUS.exists():
        sys.exit(f"skipped: {CORPUS} is absent (the benchmark serves real articles from ../shared)")
    out: list[tuple[str, list[str]]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            text = (d.get("text") or "").strip()
            if len(text) < 400:
                continue
            paras = [p.strip() for p in text.split("\n") if p.strip()]
            title = d.get("title") or (d.get("title_slug") or "").replace("-", " ").capitalize() or paras[0][:80]
            out.append((title, paras))
            if len(out) >= limit:
                break
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _serve(stories: list[tuple[str, list[str]]], conn: object, heavy: bool = False) -> None:
    import time
    from datetime import timedelta

    from tests.localserver import LocalServer, Route
    from tests.newssite import NewsSite
    from transforms.records import utcnow

    server = LocalServer().start()
    server.requests = _Discard()  # a long benchmark must not grow the server's request log
    site = NewsSite(server)
    t0 = utcnow() - timedelta(days=1)
    for i, (title, paras) in enumerate(stories):
        story = site.publish(title, paras, published=t0 + timedelta(seconds=i))
        if heavy:
            page = heavy_page(stories, i, published=story.published.isoformat())
            server.route(f"/berita/{story.slug}", Route(body=page.encode("utf-8"),
                                                       headers={"Content-Type": "text/html; charset=utf-8"}))
    conn.send(site.feed_url)  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


def serve_in_subprocess(stories: list[tuple[str, list[str]]], *, heavy: bool = False) -> tuple[str, object]:
    """Serve ``stories`` as a news site from a child process (so the server does not compete
    with the code being measured for the GIL). Returns (feed URL, process); kill it when done.

    ``heavy`` renders each story as a realistic portal page (:func:`heavy_page`) instead of the
    test site's bare article."""
    import multiprocessing as mp

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_serve, args=(stories, child, heavy), daemon=True)
    proc.start()
    return parent.recv(), proc


# -- realistic pages ------------------------------------------------------------------------------
_SECTIONS = ("Beranda", "Nasional", "Internasional", "Ekonomi", "Bisnis", "Olahraga", "Sepak Bola", "Teknologi",
             "Otomotif", "Hiburan", "Seleb", "Gaya Hidup", "Kesehatan", "Travel", "Kuliner", "Edukasi", "Metro",
             "Daerah", "Politik", "Hukum", "Opini", "Foto", "Video", "Infografis", "Indeks")
_FOOTER = ("Tentang Kami", "Redaksi", "Pedoman Media Siber", "Kode Etik", "Karier", "Kontak", "Iklan",
           "Kebijakan Privasi", "Syarat dan Ketentuan", "Peta Situs", "RSS")
_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")


def _slug(title: str, i: int) -> str:
    import re

    return f"/read/{i}/" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]


def heavy_page(stories: list[tuple[str, list[str]]], i: int, *, published: str, site: str = "Kabar Uji") -> str:
    """Story ``i`` rendered as a news portal renders it: head metadata and JSON-LD, inline
    analytics and ad scripts, a section menu, breadcrumb, byline, a "Baca juga" link inside the
    body, tags, share buttons, related and most-read lists (other stories' headlines) and a
    footer. About 9 KB for a typical corpus article."""
    import json
    from datetime import datetime
    from html import escape

    title, paras = stories[i]
    n = len(stories)
    when = datetime.fromisoformat(published)
    byline = f"{_DAYS[when.weekday()]}, {when:%d/%m/%Y %H:%M} WIB"
    related = [stories[(i + k * 7) % n][0] for k in range(1, 7)]
    popular = [stories[(i + k * 13) % n][0] for k in range(1, 9)]
    link = lambda t, k: f'<a href="{_slug(t, k)}">{escape(t)}</a>'  # noqa: E731
    body: list[str] = []
    for k, para in enumerate(paras):
        body.append(f"<p>{escape(para)}</p>")
        if k == 1:
            body.append(f'<p class="baca-juga"><strong>Baca juga:</strong> {link(related[0], i + 7)}</p>')
        if k == 3:
            body.append('<div class="ads-inarticle" id="div-gpt-ad-inarticle"><script>googletag.cmd.push(function()'
                        '{googletag.display("div-gpt-ad-inarticle");});</script></div>')
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
                     "datePublished": published, "author": {"@type": "Person", "name": f"Redaksi {site}"},
                     "publisher": {"@type": "Organization", "name": site}}, ensure_ascii=False)
    words = sorted({w.strip('.,"()').lower() for w in title.split() if len(w) > 5})[:5]
    return f"""<!DOCTYPE html>
<html lang="id"><head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - {site}</title>
<meta name="description" content="{escape(paras[0][:160])}">
<meta property="og:title" content="{escape(title)}"><meta property="og:type" content="article">
<meta property="og:site_name" content="{site}"><meta property="article:published_time" content="{published}">
<link rel="stylesheet" href="/assets/css/main.min.css?v=20240611">
<script type="application/ld+json">{ld}</script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments);}}gtag('js',new Date());
gtag('config','G-XXXXXXX',{{'content_group':'artikel','page_type':'read'}});var kanal='berita',subkanal='nasional';
(function(w,d,s,l,i){{w[l]=w[l]||[];w[l].push({{'gtm.start':new Date().getTime(),event:'gtm.js'}});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s);j.async=true;j.src='https://www.googletagmanager.com/gtm.js?id='+i;f.parentNode.insertBefore(j,f);}})(window,document,'script','dataLayer','GTM-XXXX');</script>
<style>.nav a{{padding:4px 8px}}.baca-juga{{border-left:3px solid #c00;padding-left:8px}}.terpopuler li{{margin:6px 0}}</style>
</head><body>
<header class="header"><div class="logo"><a href="/"><img src="/assets/logo.png" alt="{site}"></a></div>
<div class="search"><form action="/search"><input name="q" placeholder="Cari berita..."><button>Cari</button></form></div>
<nav class="nav"><ul>{"".join(f'<li><a href="/{s.lower().replace(" ", "-")}">{s}</a></li>' for s in _SECTIONS)}</ul></nav></header>
<div class="ads-top" id="div-gpt-ad-top"><script>googletag.cmd.push(function(){{googletag.display("div-gpt-ad-top");}});</script></div>
<main class="container"><div class="breadcrumb"><a href="/">Beranda</a> &raquo; <a href="/nasional">Nasional</a></div>
<article class="read">
<h1 class="read__title">{escape(title)}</h1>
<div class="read__info"><span class="author">Redaksi {site}</span> - <span class="date">{byline}</span></div>
<div class="share"><a href="#fb">Bagikan</a> <a href="#tw">Tweet</a> <a href="#wa">WhatsApp</a> <a href="#copy">Salin tautan</a></div>
<div class="read__content">
{chr(10).join(body)}
</div>
<div class="tags"><span>Tag:</span> {" ".join(f'<a href="/tag/{w}">{escape(w)}</a>' for w in words)}</div>
</article>
<aside class="related"><h3>Berita Terkait</h3><ul>{"".join(f"<li>{link(t, i + k)}</li>" for k, t in enumerate(related))}</ul></aside>
<aside class="terpopuler"><h3>Terpopuler</h3><ol>{"".join(f"<li>{link(t, i + 100 + k)}</li>" for k, t in enumerate(popular))}</ol></aside>
</main>
<footer class="footer"><ul>{"".join(f'<li><a href="/{f.lower().replace(" ", "-")}">{f}</a></li>' for f in _FOOTER)}</ul>
<p>Copyright &copy; 2026 {site}. All Rights Reserved.</p></footer>
<script src="/assets/js/vendor.min.js?v=20240611" async></script>
<script>document.querySelectorAll('.share a').forEach(function(a){{a.addEventListener('click',function(e){{e.preventDefault();
window.open(a.href,'share','width=600,height=400');}});}});</script>
</body></html>
"""
