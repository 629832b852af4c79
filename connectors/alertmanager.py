"""Article alerts: one ``NewArticle`` alert per new story of a watched topic, posted to
Alertmanager's v2 API (``POST /api/v2/alerts``).

Flow (local driver):

1. The sink acknowledges a batch; ``write_batch`` hands the acknowledged articles to
   :class:`AlertNotifier` (``Resources.open_alert_hook``). For every *original* article with
   a watched topic it decides, in one SQLite transaction in ``<store>/alerts.sqlite``:

   * too old (published, else first seen, more than ``alerts.max_age`` ago): nothing is sent
     (``outcome="too_old"``), so a backfill or a first start on old feeds pages nobody;
   * the story (``story_id``, else the article id) was already announced for this topic:
     nothing is sent (``outcome="repeat"``) - newsmon's own memory, which survives restarts;
   * otherwise the story is remembered as announced and the alert joins the on-disk queue.

   Copies (``duplicate_of`` set) never alert; they only add their outlet to the story's
   outlet count. The notifier never raises: indexing must not depend on alerting.
2. :class:`AlertSender`, a daemon thread of ``newsmon run``, drains the queue: it posts the
   due alerts to every configured Alertmanager (an HA cluster wants each instance to get
   them) and deletes them once one instance answered 2xx. Failures are retried with jittered
   exponential backoff; an alert not delivered within ``alerts.expire_after`` is dropped
   (``expired``); a full queue drops its oldest alert (``dropped``).

Alert shape: labels ``alertname=NewArticle, topic, source, story_id`` (+ ``severity=info``,
``category=coverage``), annotations with the headline, outlet, published time in WIB and
UTC, the article URL, the evidence sentence that carried the tag, a Kibana Discover link to
the document and the number of outlets carrying the story so far. ``endsAt`` is the post
time plus ``alerts.resolve_after``: shorter than the route's ``group_interval``, so a
headline appears in exactly one grouped message and never comes back in the next one.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors import metrics
from connectors.settings import AlertsConfig
from connectors.sqlite import Transaction, connect
from transforms.records import Article, dt_to_str, to_utc, utcnow

log = logging.getLogger(__name__)

ALERTNAME = "NewArticle"
WIB = timezone(timedelta(hours=7), "WIB")
OUTCOMES = ("sent", "failed", "expired", "dropped", "too_old", "repeat")
MEMORY_DAYS = 14.0  # how long a story stays "announced"; longer than the dedup story window
BATCH = 50  # alerts per POST
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
DB_NAME = "alerts.sqlite"

_wake = threading.Event()  # set when alerts are queued, so the sender posts at once


# --------------------------------------------------------------------------- pure logic


def evidence_sentence(article: Article, topic: str) -> str:
    """The sentence that carried the tag: the body sentence with the most rule weight
    (ties: more distinct terms, then the earlier one); the title when no body sentence matched."""
    evidence = next((e for e in article.topic_evidence if e.topic == topic), None)
    if evidence is None:
        return ""
    weight: dict[str, float] = {}
    terms: dict[str, set[str]] = {}
    first: dict[str, int] = {}
    for m in evidence.matched:
        if m.field != "text" or not m.sentence.strip():
            continue
        key = m.sentence
        weight[key] = weight.get(key, 0.0) + max(m.weight, 0.0)
        terms.setdefault(key, set()).add(m.entity or m.term)
        first[key] = min(first.get(key, m.start), m.start)
    if not weight:
        titles = [m.sentence for m in evidence.matched if m.field == "title" and m.sentence.strip()]
        return " ".join((titles[0] if titles else article.title).split())
    best = max(weight, key=lambda s: (weight[s], len(terms[s]), -first[s]))
    return " ".join(best.split())


def format_times(moment: datetime) -> tuple[str, str]:
    """(``2024-06-19 14:05 WIB``, ``2024-06-19 07:05 UTC``)."""
    utc = to_utc(moment)
    return utc.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB"), utc.strftime("%Y-%m-%d %H:%M UTC")


def _rison_time(moment: datetime) -> str:
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def discover_link(kibana_url: str | None, article: Article) -> str:
    """Kibana Discover on this one document (``_id``), a day either side of its time."""
    if not kibana_url:
        return ""
    moment = article.published or article.first_seen
    query = urllib.parse.quote(f'_id:"{article.id}"', safe="")
    return (
        f"{kibana_url.rstrip('/')}/app/discover#/?_g=(time:(from:'{_rison_time(moment - timedelta(days=1))}',"
        f"to:'{_rison_time(moment + timedelta(days=1))}'))&_a=(query:(language:kuery,query:'{query}'))"
    )


def story_key(article: Article) -> str:
    return article.story_id or article.id


def build_alert(article: Article, topic: str, *, kibana_url: str | None, outlets: int, now: datetime) -> dict[str, Any]:
    """The v2 ``postableAlert`` for one article and topic (``endsAt`` is set when posting)."""
    published = article.published or article.first_seen
    wib, utc = format_times(published)
    headline = " ".join(article.title.split()) or article.url
    outlet = article.source or article.feed_id or urllib.parse.urlsplit(article.url).hostname or "?"
    annotations = {
        "summary": headline,
        "headline": headline,
        "outlet": outlet,
        "published_wib": wib,
        "published_utc": utc,
        "url": article.url,
        "evidence": evidence_sentence(article, topic),
        "kibana_url": discover_link(kibana_url, article),
        "outlets": str(max(1, outlets)),
        "description": f"{headline} — {outlet} — {wib} ({utc}) — {article.url}",
    }
    return {
        "labels": {
            "alertname": ALERTNAME,
            "topic": topic,
            "source": outlet,
            "story_id": story_key(article),
            "severity": "info",
            "category": "coverage",
        },
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": dt_to_str(now),
        "generatorURL": article.url,
    }


def backoff(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds before the next attempt: exponential in ``attempts`` (>= 1), full jitter above half."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (0.5 + random.random() / 2)


# --------------------------------------------------------------------------- the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS announced (
    topic TEXT NOT NULL, story TEXT NOT NULL, article_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (topic, story)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outlets (
    story TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (story, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, story TEXT NOT NULL, alert TEXT NOT NULL,
    expires_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS queue_next ON queue(next_at);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    seq: int
    story: str
    alert: dict[str, Any]
    attempts: int


class AlertStore:
    """What was announced, the outlets per story, and the bounded delivery queue (SQLite, WAL)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = connect(self.path)
        self._lock = threading.Lock()
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_store(cls, store_dir: Path | str) -> AlertStore:
        return cls(Path(store_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with Transaction(self._db, self._lock) as db:
            return fn(db)

    # -- deciding ----------------------------------------------------------------------------
    def offer(
        self,
        articles: Sequence[Article],
        cfg: AlertsConfig,
        *,
        kibana_url: str | None,
        now: datetime,
        record_only: bool = False,
    ) -> dict[str, int]:
        """Decide and queue alerts for acknowledged ``articles`` (one transaction).

        Returns counts per outcome (``queued``, ``too_old``, ``repeat``, ``dropped``).
        ``record_only`` remembers stories as announced without queueing (backfill).
        """
        watched = set(cfg.topics)
        ts = now.timestamp()

        def run(db: sqlite3.Connection) -> dict[str, int]:
            counts = {"queued": 0, "too_old": 0, "repeat": 0, "dropped": 0}
            for article in articles:
                story = story_key(article)
                sources = {article.source} | {s.source for s in article.also_published_at}
                db.executemany(
                    "INSERT OR IGNORE INTO outlets(story, source, at) VALUES (?, ?, ?)",
                    [(story, s, ts) for s in sources if s],
                )
            for article in articles:
                if article.duplicate_of is not None:
                    continue
                topics = [t for t in article.topics if not watched or t in watched]
                if not topics:
                    continue
                moment = to_utc(article.published or article.first_seen)
                if (now - moment).total_seconds() > cfg.max_age:
                    counts["too_old"] += len(topics)
                    continue
                story = story_key(article)
                for topic in topics:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO announced(topic, story, article_id, at) VALUES (?, ?, ?, ?)",
                        (topic, story, article.id, ts),
                    )
                    if cur.rowcount == 0:
                        counts["repeat"] += 1
                        continue
                    if record_only:
                        continue
                    outlets = db.execute("SELECT COUNT(*) FROM outlets WHERE story = ?", (story,)).fetchone()[0]
                    alert = build_alert(article, topic, kibana_url=kibana_url, outlets=outlets, now=now)
                    db.execute(
                        "INSERT INTO queue(story, alert, expires_at, next_at) VALUES (?, ?, ?, ?)",
                        (story, json.dumps(alert, ensure_ascii=False), ts + cfg.expire_after, ts),
                    )
                    counts["queued"] += 1
            size = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
            if size > cfg.queue_max:
                excess = size - cfg.queue_max
                db.execute("DELETE FROM queue WHERE seq IN (SELECT seq FROM queue ORDER BY seq LIMIT ?)", (excess,))
                counts["dropped"] += excess
            return counts

        return self._tx(run)

    # -- delivering --------------------------------------------------------------------------
    def due(self, now: float, limit: int = BATCH) -> list[Queued]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, story, alert, attempts FROM queue WHERE next_at <= ? ORDER BY seq LIMIT ?", (now, limit)
            ).fetchall()
        return [Queued(seq, story, json.loads(alert), attempts) for seq, story, alert, attempts in rows]

    def outlet_count(self, story: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outlets WHERE story = ?", (story,)).fetchone()[0])

    def delivered(self, seqs: Iterable[int]) -> None:
        ids = [(s,) for s in seqs]
        self._tx(lambda db: db.executemany("DELETE FROM queue WHERE seq = ?", ids))

    def retry_later(self, items: Iterable[Queued], now: float) -> None:
        rows = [(item.attempts + 1, now + backoff(item.attempts + 1), item.seq) for item in items]
        self._tx(lambda db: db.executemany("UPDATE queue SET attempts = ?, next_at = ? WHERE seq = ?", rows))

    def expire(self, now: float) -> int:
        return int(self._tx(lambda db: db.execute("DELETE FROM queue WHERE expires_at < ?", (now,)).rowcount))

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_at) FROM queue").fetchone()
        return None if row[0] is None else float(row[0])

    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def announced(self) -> list[tuple[str, str, str]]:
        """(topic, story, article_id) of every remembered announcement, oldest first."""
        with self._lock:
            return list(self._db.execute("SELECT topic, story, article_id FROM announced ORDER BY at"))

    def prune(self, older_than: float) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM announced WHERE at < ?", (older_than,))
            db.execute("DELETE FROM outlets WHERE at < ?", (older_than,))

        self._tx(run)


# --------------------------------------------------------------------------- the hook


class AlertNotifier:
    """The ``on_acknowledged`` hook: decides and queues; never raises."""

    def __init__(
        self,
        cfg: AlertsConfig,
        store_dir: Path | str,
        *,
        kibana_url: str | None = None,
        record_only: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cfg = cfg
        self.kibana_url = kibana_url
        self.record_only = record_only
        self.clock = clock
        self.store = AlertStore.in_store(store_dir)

    def __call__(self, articles: Sequence[Article]) -> None:
        if not articles:
            return
        m = metrics.get()
        try:
            counts = self.store.offer(
                articles, self.cfg, kibana_url=self.kibana_url, now=self.clock(), record_only=self.record_only
            )
        except Exception as exc:  # alerting must never stop indexing
            log.error("article alerts: could not queue alerts for %d articles: %s", len(articles), exc)
            m.alerts_sent.labels("dropped").inc(len(articles))
            return
        for outcome in ("too_old", "repeat", "dropped"):
            if counts[outcome]:
                m.alerts_sent.labels(outcome).inc(counts[outcome])
        if counts["dropped"]:
            log.warning("article alerts: queue full (%d): dropped the %d oldest", self.cfg.queue_max, counts["dropped"])
        if counts["queued"]:
            _wake.set()

    def close(self) -> None:
        self.store.close()


# --------------------------------------------------------------------------- the sender


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent  # Alertmanager rejected the alerts themselves (4xx but 429)


def post_alerts(url: str, alerts: Sequence[Mapping[str, Any]], *, timeout: float) -> None:
    """POST ``alerts`` to one Alertmanager; raises :class:`DeliveryError` unless it answers 2xx."""
    endpoint = url.rstrip("/") + "/api/v2/alerts"
    body = json.dumps(list(alerts), ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        endpoint, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "newsmon"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace").strip()
        permanent = 400 <= exc.code < 500 and exc.code not in (404, 408, 429)
        raise DeliveryError(f"{_safe(url)}: HTTP {exc.code} {detail}", permanent=permanent) from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{_safe(url)}: {getattr(exc, 'reason', None) or exc}") from None


def _safe(url: str) -> str:
    """The URL without user-info (credentials never reach logs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class AlertSender:
    """Background thread that drains the alert queue; ``stop`` returns within ``timeout`` + 1 s."""

    def __init__(self, cfg: AlertsConfig, store_dir: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = AlertStore.in_store(store_dir)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._failing_since: float | None = None

    def start(self) -> AlertSender:
        self.store.prune(self.clock() - MEMORY_DAYS * 86400)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.store.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.send_due()
            except Exception as exc:  # a broken disk or a bug must not kill the thread silently
                log.error("article alerts: sender error: %s", exc)
                wait = 5.0
            _wake.wait(wait)
            _wake.clear()

    def send_due(self) -> float:
        """Expire, then post every due alert. Returns how long to wait before the next round."""
        m = metrics.get()
        now = self.clock()
        expired = self.store.expire(now)
        if expired:
            m.alerts_sent.labels("expired").inc(expired)
            log.warning("article alerts: %d alerts expired undelivered (older than %.0f s)", expired, self.cfg.expire_after)
        while not self._stop.is_set():
            batch = self.store.due(now)
            if not batch:
                break
            result = self._deliver(batch)
            if result == "rejected" and len(batch) > 1:  # find the bad alert(s), one by one
                for item in batch:
                    self._settle([item], self._deliver([item]))
            else:
                self._settle(batch, result)
            if result == "failed":
                break
            now = self.clock()
        nxt = self.store.next_due()
        return 1.0 if nxt is None else max(0.05, min(1.0, nxt - self.clock()))

    def _settle(self, batch: Sequence[Queued], result: str) -> None:
        m = metrics.get()
        if result == "failed":
            self.store.retry_later(batch, self.clock())
            m.alerts_sent.labels("failed").inc(len(batch))
            return
        self.store.delivered(item.seq for item in batch)
        m.alerts_sent.labels("sent" if result == "sent" else "dropped").inc(len(batch))

    def _deliver(self, batch: Sequence[Queued]) -> str:
        """``sent`` (one Alertmanager accepted), ``rejected`` (refused as invalid: retrying cannot
        help) or ``failed`` (unreachable, 5xx, 429: retry later)."""
        ends = dt_to_str(datetime.fromtimestamp(self.clock() + self.cfg.resolve_after, timezone.utc))
        alerts = []
        for item in batch:
            alert = dict(item.alert)
            annotations = dict(alert.get("annotations", {}))
            annotations["outlets"] = str(max(1, self.store.outlet_count(item.story)))
            alert["annotations"] = annotations
            alert["endsAt"] = ends
            alerts.append(alert)
        errors: list[DeliveryError] = []
        for url in self.cfg.urls:
            try:
                post_alerts(url, alerts, timeout=self.cfg.timeout)
            except DeliveryError as exc:
                errors.append(exc)
        ok = len(errors) < len(self.cfg.urls)
        if not ok and all(e.permanent for e in errors):
            log.error("article alerts: Alertmanager rejected %d alert(s): %s", len(batch), "; ".join(map(str, errors)))
            return "rejected"
        if not ok:
            if self._failing_since is None:
                self._failing_since = self.clock()
                log.error("article alerts: Alertmanager unreachable (%s); %d alerts wait on disk",
                          "; ".join(map(str, errors)), self.store.size())
        else:
            if self._failing_since is not None:
                log.info("article alerts: Alertmanager reachable again after %.0f s", self.clock() - self._failing_since)
                self._failing_since = None
            for error in errors:
                log.warning("article alerts: one Alertmanager failed: %s", error)
        return "sent" if ok else "failed"


__all__ = [
    "ALERTNAME",
    "AlertNotifier",
    "AlertSender",
    "AlertStore",
    "build_alert",
    "discover_link",
    "evidence_sentence",
    "format_times",
    "post_alerts",
]
