"""Page extraction in worker processes, so trafilatura runs on every core.

Extraction (trafilatura + htmldate, pure CPU under the GIL) is most of an article's cost. With
``workers >= 2`` the process owns one :class:`~concurrent.futures.ProcessPoolExecutor` of that
many processes, shared by every ``ExtractArticles`` instance (the local driver builds new DoFn
instances for every batch; a pool per instance would start processes per batch). With
``workers <= 1`` pages are extracted in the calling thread, as before.

Workers are *spawned* (fresh interpreters, never a fork of the driver, whose threads may hold
locks) and import the extraction code once, while the driver polls its feeds. A worker exits
when the driver is gone, even after ``kill -9`` (it watches its parent), so nothing is left
behind. (A forkserver would start them faster, but it outlives a killed driver, with its
workers.) Only pure work crosses the process boundary: the feed entry and the page go in, an
:class:`~transforms.records.Article` comes back; metrics, logging of outcomes, dedup, topics
and every write stay in the driver, so ordering, dedup decisions and exactly-once writes do
not depend on the number of workers.

A worker that dies (a page that crashes lxml, the OOM killer) breaks the pool: the pages in
flight are built from their feed text (never lost) and the next call starts a new pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def default_workers() -> int:
    """One extraction process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_WARM_UP_PAGE = (
    "<html><head><title>Uji - Kabar</title><meta property='article:published_time' content='2026-01-05T10:00:00'>"
    "</head><body><article><h1>Uji</h1><p>" + "Pemerintah daerah meresmikan jembatan baru pada Senin pagi. " * 8
    + "</p></article></body></html>"
)


def _exit_with_parent(parent: int) -> None:
    """A worker outlives nothing: when the driver is gone (also after ``kill -9``), this process
    is re-parented, and it exits."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _init_worker(level: int, driver: int) -> None:
    """Load what the first page would otherwise load (trafilatura, htmldate's date tables, the
    language model) while the driver is still polling feeds.

    ``driver`` is the driver's pid, taken before the spawn: a worker whose driver died while it
    was still starting up finds itself re-parented already, and must not take its new parent
    (init) for the driver. Ctrl-C in a terminal reaches the whole process group: the driver
    handles it and shuts the pool down, so a worker ignores SIGINT instead of printing a
    KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(driver,), daemon=True, name="parent-watch").start()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s[extract]: %(message)s")
    from transforms.extract import extract_page
    from transforms.language import detect_language

    extract_page(_WARM_UP_PAGE, url="http://warm-up.invalid/")
    detect_language("Pemerintah daerah meresmikan jembatan baru.")


def get(workers: int) -> ProcessPoolExecutor | None:
    """The process's extraction pool for ``workers`` processes, or ``None`` to extract inline."""
    global _pool, _pool_size
    if workers <= 1:
        return None
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            ctx = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(logging.getLogger().getEffectiveLevel(), os.getpid()))
            _pool_size = workers
        return _pool


def warm_up(workers: int) -> None:
    """Start the worker processes now (in the background), not when the first page arrives."""
    pool = get(workers)
    if pool is not None:
        for _ in range(workers):
            pool.submit(_noop)


def _noop() -> None:
    return None


def discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (and the extractions started in it); the next :func:`get` starts a new one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
        for key in [k for k, (_, f) in _started.items() if getattr(f, "_newsmon_pool", None) is pool]:
            del _started[key]
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
        _started.clear()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def build(kwargs: dict[str, Any]) -> tuple[Any, float, str | None]:
    """Run in a worker: ``build_article(**kwargs)`` -> (article, seconds, error or None).

    A page that makes extraction raise is built from the feed's text, as inline extraction does.
    """
    from transforms.extract import build_article

    start = time.perf_counter()
    try:
        article = build_article(**kwargs)
        error = None
    except Exception as exc:  # hostile page: never lose the entry
        error = f"{type(exc).__name__}: {exc}"
        article = build_article(**{**kwargs, "html": None})
    return article, time.perf_counter() - start, error


# Extractions started before their pipeline runs (the local driver starts a page's extraction as
# soon as the page is fetched, so the workers extract the next batch while the driver
# deduplicates, tags and writes this one). Keyed by article id; the extract stage claims them.
_started: dict[str, tuple[tuple[str, int], Future[Any]]] = {}


def start_early(pool: ProcessPoolExecutor, kwargs: dict[str, Any]) -> None:
    """Start extracting a fetched page now; :func:`claim` hands the result to the extract stage."""
    future = submit(pool, kwargs)
    with _lock:
        _started[kwargs["article_id"]] = (_fingerprint(kwargs), future)


def claim(kwargs: dict[str, Any]) -> Future[Any] | None:
    """The extraction started early for exactly this page, if any (and forget it)."""
    with _lock:
        found = _started.pop(kwargs["article_id"], None)
    if found is None or found[0] != _fingerprint(kwargs):
        return None
    return found[1]


def _fingerprint(kwargs: dict[str, Any]) -> tuple[str, int]:
    return kwargs["final_url"], len(kwargs["html"] or "")


def forget_started() -> None:
    with _lock:
        _started.clear()


def submit(pool: ProcessPoolExecutor, kwargs: dict[str, Any]) -> Future[tuple[Any, float, str | None]]:
    """``build(kwargs)`` in ``pool``; the future remembers its pool, so a caller that finds it
    broken can :func:`discard` exactly that one."""
    future = pool.submit(build, kwargs)
    future._newsmon_pool = pool  # type: ignore[attr-defined]
    return future


__all__ = ["build", "claim", "default_workers", "discard", "get", "shutdown", "start_early", "submit", "warm_up"]
