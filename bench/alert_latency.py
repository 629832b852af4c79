"""Latency of article alerts: a seed appears in a feed -> its NewArticle notification reaches a
webhook through the real Debian Alertmanager (shipped routes, group_wait 1 s).

Each sample starts a fresh store, `newsmon run` (poll --poll seconds) and Alertmanager, lets
newsmon index an unrelated warm-up article (the first pipeline of a process pays for imports),
waits a random fraction of a poll interval, publishes one seed from ../shared/seeds and times
the webhook. Prints every sample and p50/max.

    .venv/bin/python bench/alert_latency.py --samples 5 --poll 2
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from _corpus import percentile

from tests.e2e import env, search, start_run, stop, wait_for
from tests.localserver import LocalServer
from tests.newssite import NewsSite, seed_stories
from tests.promstack import AlertmanagerStack

WARM_UP = ("Harga cabai rawit di pasar induk naik menjelang akhir pekan",
           ["Harga cabai rawit merah di sejumlah pasar induk naik tajam menjelang akhir pekan.",
            "Pedagang berharap pasokan kembali normal pekan depan."])


def sample(seed: tuple[str, list[str]], poll: float, rng: random.Random) -> float:
    with tempfile.TemporaryDirectory() as tmp, LocalServer() as server, AlertmanagerStack(Path(tmp) / "am") as am:
        store = Path(tmp) / "store"
        site = NewsSite(server, "/rss.xml", name="Kabar Uji")
        environ = env(NEWSMON_ALERTMANAGER_URL=am.url)
        proc = start_run(store, [site.feed_url], "--poll-interval", str(poll), log_path=Path(tmp) / "run.log",
                         environ=environ)
        try:
            warm = site.publish(*WARM_UP)
            wait_for(lambda: any(h["url"] == site.url_of(warm) for h in search(store, "cabai", environ=environ)),
                     timeout=90, what="the warm-up article")
            time.sleep(rng.uniform(0, poll))
            t0 = time.time()
            site.publish(*seed)
            got = am.webhook.wait_for(lambda n: n.has_alert("NewArticle"), 60)
            if got is None:
                raise SystemExit("no notification within 60 s")
            return got.received_at - t0
        finally:
            stop(proc, signal.SIGTERM, timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--poll", type=float, default=2.0)
    args = ap.parse_args()
    seeds = seed_stories()
    if not seeds:
        sys.exit("../shared/seeds absent: this benchmark publishes the seed articles")
    rng = random.Random(14)
    times = []
    for i in range(args.samples):
        t = sample(seeds[i % len(seeds)], args.poll, rng)
        times.append(t)
        print(f"sample {i + 1}: publication -> webhook {t:.2f} s", flush=True)
    print(f"poll {args.poll:g} s, group_wait 1 s, {len(times)} samples: p50 {percentile(times, 50):.2f} s, "
          f"max {max(times):.2f} s")


if __name__ == "__main__":
    main()
