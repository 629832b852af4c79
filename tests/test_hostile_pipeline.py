"""Hostile feeds and pages against the real pipeline (a subprocess): clear reasons, metrics,
bounded memory, and the good feed keeps flowing."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import search, start_run, stop, wait_for
from tests.localserver import LocalServer, Route, gzip_bomb, redirect
from tests.newssite import NewsSite
from tests.promstack import free_port

pytestmark = [pytest.mark.hostile, pytest.mark.e2e, pytest.mark.slow]

GOOD = [
    "Presiden Rusia Vladimir Putin dan pemimpin Korea Utara Kim Jong Un menandatangani pakta pertahanan di Pyongyang.",
    "Kedua negara sepakat saling membantu bila salah satunya diserang, kata kantor berita KCNA.",
    "Moskow juga dituduh menerima peluru artileri dari Pyongyang untuk perangnya di Ukraina.",
]
RSS_HEAD = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10) for i in range(1, 10))
        + b']><rss version="2.0"><channel><title>&lol9;</title></channel></rss>')


def hostile_routes(server: LocalServer) -> dict[str, Route]:
    huge = Route(body=b"", headers={"Content-Type": "application/rss+xml", "Content-Length": str(1 << 30)},
                 content_length=False)
    return {
        "/bare-amp.xml": Route(body=RSS_HEAD + b"<item><title>A & B</title><link>http://127.0.0.1/x?a=1&b=2</link></item>"
                               b"</channel></rss>", headers={"Content-Type": "application/rss+xml"}),
        "/undeclared.xml": Route(body=RSS_HEAD + b"<item><title>&nbsp;&eacute;</title></item></channel></rss>"),
        "/truncated.xml": Route(body=RSS_HEAD + b"<item><title>Putus di teng"),
        "/html.xml": Route(body=b"<html><body><h1>Bukan feed</h1></body></html>", headers={"Content-Type": "text/html"}),
        "/empty.xml": Route(body=b""),
        "/bomb.xml": Route(body=BOMB, headers={"Content-Type": "application/rss+xml"}),
        "/huge.xml": huge,
        "/trickle.xml": Route(body=b"<" * 100_000, trickle=(1, 0.5)),
        "/loop-a.xml": redirect("/loop-b.xml"),
        "/loop-b.xml": redirect("/loop-a.xml"),
        "/binary.xml": Route(body=bytes(range(256)) * 64, headers={"Content-Type": "application/octet-stream"}),
        "/gzip-bomb.xml": gzip_bomb(512 * 2**20, headers={"Content-Type": "application/rss+xml"}),
        "/wrong-charset.xml": Route(
            body=RSS_HEAD.replace(b'"1.0"?>', b'"1.0" encoding="iso-8859-1"?>', 1)
            + "<item><title>Ã©Ã¨ ganda</title><link>http://127.0.0.1/none</link></item></channel></rss>".encode()
            + b"\xff\xfe", headers={"Content-Type": "application/rss+xml; charset=utf-16"}),
    }


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_hostile_feeds_and_pages_do_not_stop_the_good_feed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    port = free_port()
    with LocalServer() as server:
        for path, route in hostile_routes(server).items():
            server.route(path, route)
        site = NewsSite(server)
        site.publish("Putin dan Kim teken pakta pertahanan", GOOD)
        # hostile article pages behind good feed items
        for slug, route in {
            "gzip-bomb": gzip_bomb(512 * 2**20),
            "trickle": Route(body=b"<p>" * 100_000, trickle=(1, 0.5), headers={"Content-Type": "text/html"}),
            "binary": Route(body=bytes(range(256)) * 400, headers={"Content-Type": "text/html"}),
            "private-redirect": redirect("http://10.0.0.1/admin"),
            "metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        }.items():
            story = site.publish(f"Halaman jahat {slug}: Rusia dan Korut", GOOD, slug=slug)
            server.route(f"/berita/{story.slug}", route)
        feeds = [site.feed_url] + [server.url(p) for p in hostile_routes(server)]
        # one host serves every feed here: shorten the politeness spacing and the deadline
        config = tmp_path / "newsmon.yaml"
        config.write_text("fetch:\n  timeout: 3\n  per_host_min_spacing: 0.05\n  per_host_concurrency: 4\n")
        proc = start_run(store, feeds, "--metrics-port", str(port), "--config", str(config),
                         log_path=tmp_path / "run.log")
        try:
            ps = psutil.Process(proc.pid)
            # the good item, and four hostile pages stored with the feed's text; the trickling page
            # is retried with backoff (transient), so it stays pending for now
            wait_for(lambda: len(search(store, "pakta", all_=True)) >= 5, timeout=120,
                     what="the good item and four hostile-page items (feed fallback) to be stored")
            site.publish("Kim Jong Un kirim pasukan ke Rusia", [  # the good feed keeps flowing
                "Korea Utara mengirim ribuan pasukan ke wilayah Kursk untuk membantu Rusia, menurut intelijen Seoul.",
                "Kremlin tidak membantah laporan itu dan menyebut kerja sama militer kedua negara sah.",
            ])
            wait_for(lambda: any("pasukan" in h["title"] for h in search(store, "pasukan")), timeout=60,
                     what="a new item on the good feed while hostile feeds keep failing")
            rss_mb = ps.memory_info().rss / 2**20
            metrics = scrape(port)
            assert proc.poll() is None
        finally:
            stop(proc, signal.SIGTERM, timeout=15)
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert rss_mb < 600, f"resident memory {rss_mb:.0f} MB"
    # each hostile feed has a clear, counted outcome
    def polls(feed_path: str, outcome: str) -> float:
        fid = [k for k in metrics if k[0] == "newsmon_feed_polls_total" and dict(k[1])["outcome"] == outcome
               and dict(k[1])["feed"].startswith("127.0.0.1-" + feed_path.strip("/").replace(".", "-"))]
        return sum(metrics[k] for k in fid)

    assert polls("/bomb.xml", "parse_error") >= 1
    assert polls("/html.xml", "parse_error") >= 1
    assert polls("/empty.xml", "parse_error") + polls("/empty.xml", "ok") >= 1
    assert polls("/huge.xml", "too_large") >= 1
    assert polls("/gzip-bomb.xml", "too_large") >= 1
    assert polls("/trickle.xml", "timeout") + polls("/trickle.xml", "too_large") >= 1
    assert polls("/loop-a.xml", "http_error") + polls("/loop-a.xml", "connection_error") >= 1
    fetched = {dict(k[1])["outcome"]: v for k, v in metrics.items() if k[0] == "newsmon_articles_fetched_total"}
    assert fetched["blocked"] >= 2 and fetched["too_large"] >= 1
    assert "Traceback" not in log, log[-4000:]
    for reason in ("entity-expansion", "non-public address", "exceeds the", "redirect loop", "html page served",
                   "deadline"):
        assert reason.lower() in log.lower(), f"no logged reason mentioning {reason!r}"
