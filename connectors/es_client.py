"""Client, secrets and errors for the search-engine sink (Elasticsearch or OpenSearch).

Everything above this module talks to an :class:`EngineClient`: a small seam with the few
calls newsmon makes (info, index template, bulk, search, count, get, refresh). Two adapters
implement it, one over the official ``elasticsearch`` client and one over the official
``opensearch-py`` client; :func:`make_engine` picks one from ``ElasticsearchConfig.engine``.
Library exceptions never leave an adapter: they become :class:`EngineApiError` (the engine
answered with an error status), :class:`EngineProductError` (the server is not the engine the
client expects) or :class:`EngineConnectionError` (no answer: connection refused or reset,
timeout, TLS). So the sink, search and setup code is written once for both engines.

Secrets (API key, password, URL user-info) never reach logs, metrics, errors or the
dead-letter store: URLs are stripped of user-info before a client sees them and every
message built from a library error goes through :func:`redact`.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors.sink import SinkError, SinkUnavailable
from pipelines.config import ElasticsearchConfig

ENGINES = ("elasticsearch", "opensearch")

# --------------------------------------------------------------------------- errors


class ClusterUnreachable(SinkUnavailable):
    """The cluster could not be reached or kept refusing whole requests (transient)."""


class ClusterRefused(SinkUnavailable):
    """The cluster refused us for a reason an operator must fix (auth, product, version)."""


class SetupError(SinkError):
    """Installing the index template failed."""


class EngineConnectionError(Exception):
    """No answer from the engine (connection refused/reset, timeout, TLS failure)."""


class EngineApiError(Exception):
    """The engine answered a whole request with an error status."""

    def __init__(self, status: int, error_type: str | None, reason: str) -> None:
        super().__init__(f"{status} {error_type or 'error'}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason


class EngineProductError(EngineApiError):
    """The server did not identify itself as the engine the client was built for."""


# --------------------------------------------------------------------------- secrets

_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def secrets_of(config: ElasticsearchConfig) -> list[str]:
    """Every string that must never be shown: API key, password, the Basic auth token."""
    found = [s for s in (config.api_key, config.password) if s]
    if config.username and config.password:
        found.append(base64.b64encode(f"{config.username}:{config.password}".encode()).decode())
    if config.api_key:
        found.append(base64.b64encode(config.api_key.encode()).decode())
    for url in config.urls:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, config: ElasticsearchConfig) -> str:
    """``text`` with URL user-info and every secret of ``config`` replaced by ``***``."""
    text = _USERINFO.sub("***@", text)
    for secret in secrets_of(config):
        text = text.replace(secret, "***")
    return text


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``https://u:p@host:9200`` -> (``https://host:9200``, (u, p))."""
    parts = urlsplit(url)
    if not parts.username:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (parts.username, parts.password or "")


def _hosts_and_auth(config: ElasticsearchConfig) -> tuple[list[str], tuple[str, str] | None]:
    if not config.urls:
        raise ClusterRefused(f"no {engine_label(config)} URL configured ({url_variable(config)})")
    hosts: list[str] = []
    url_auth: tuple[str, str] | None = None
    for url in config.urls:
        clean, auth = split_userinfo(url)
        hosts.append(clean)
        url_auth = url_auth or auth
    if config.username:
        return hosts, (config.username, config.password or "")
    return hosts, url_auth


def engine_label(config: ElasticsearchConfig) -> str:
    return "OpenSearch" if config.engine == "opensearch" else "Elasticsearch"


def url_variable(config: ElasticsearchConfig) -> str:
    return "NEWSMON_OPENSEARCH_URL" if config.engine == "opensearch" else "NEWSMON_ES_URL"


# --------------------------------------------------------------------------- the raw Elasticsearch client

# The clients log every failed attempt themselves (with tracebacks, and the request URL). This
# module reports each failure once, redacted, as an exception or a warning of the sink; so the
# clients' own loggers are quietened to errors unless someone configured them explicitly.
_CLIENT_LOGGERS = ("elastic_transport.node_pool", "elastic_transport.transport", "opensearch")


def quiet_client_loggers() -> None:
    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)



def make_client(config: ElasticsearchConfig, *, request_timeout: float = 30.0, max_retries: int = 3) -> Any:
    """An ``elasticsearch.Elasticsearch`` for ``config.urls`` (API key or basic auth; TLS verified
    unless disabled). User-info in a URL becomes basic auth so it never appears in log lines.

    For ``engine: opensearch`` this is an opensearch-py client behind the same call shapes
    (:mod:`connectors.es_compat`), for code written against the elasticsearch client such as
    the Elasticsearch dedup store."""
    from elasticsearch import Elasticsearch

    if config.engine == "opensearch":
        from connectors.es_compat import OpenSearchAsElasticsearch

        engine = make_engine(config, request_timeout=request_timeout, max_retries=max_retries)
        assert isinstance(engine, OpenSearchEngine)
        return OpenSearchAsElasticsearch(engine.raw, engine.url)
    quiet_client_loggers()
    hosts, auth = _hosts_and_auth(config)
    kwargs: dict[str, Any] = {
        "request_timeout": request_timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "verify_certs": config.verify_certs,
    }
    if config.ca_cert:
        kwargs["ca_certs"] = config.ca_cert
    if config.api_key:
        kwargs["api_key"] = config.api_key
    elif auth:
        kwargs["basic_auth"] = auth
    try:
        return Elasticsearch(hosts, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ClusterRefused(f"invalid Elasticsearch settings: {redact(str(exc), config)}") from None


# --------------------------------------------------------------------------- the seam

BulkExpand = Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]


class EngineClient:
    """The calls newsmon makes, for either engine. Subclasses only translate."""

    engine = "elasticsearch"

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_index_template(self, name: str) -> list[dict[str, Any]]:
        """The stored template bodies named ``name`` (empty when there is none)."""
        raise NotImplementedError

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` holds query, size, sort, _source; missing indices are not an error."""
        raise NotImplementedError

    def count(self, index: str) -> int:
        raise NotImplementedError

    def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def refresh(self, index: str) -> None:
        raise NotImplementedError

    def streaming_bulk(
        self, actions: Iterable[Any], *, chunk_size: int, max_chunk_bytes: int, expand: BulkExpand
    ) -> Iterator[dict[str, Any]]:
        """One answer per action: ``{"_id", "status", "error", "result"}``; a chunk refused as a
        whole yields its items with ``"exception": EngineApiError``. Raises
        :class:`EngineConnectionError` when a chunk got no answer (earlier chunks' answers were
        yielded already)."""
        raise NotImplementedError

    def without_retries(self) -> EngineClient:
        """The same client with the transport's own retries off (the sink retries itself)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _error_parts(info: Any, fallback: str) -> tuple[str | None, str]:
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            return err.get("type"), str(err.get("reason") or fallback)
        if isinstance(err, str):
            return err, fallback
    return None, fallback


class ElasticsearchEngine(EngineClient):
    engine = "elasticsearch"

    def __init__(self, client: Any) -> None:
        self._es = client

    def _call(self, fn: Callable[[], Any]) -> Any:
        from elastic_transport import TransportError
        from elasticsearch import ApiError
        from elasticsearch.exceptions import UnsupportedProductError

        try:
            return fn()
        except UnsupportedProductError as exc:
            raise EngineProductError(exc.meta.status if exc.meta else 0, "product", str(exc)) from None
        except ApiError as exc:
            raise self._api_error(exc) from None
        except TransportError as exc:
            raise EngineConnectionError(f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _api_error(exc: Any) -> EngineApiError:
        from elasticsearch.exceptions import UnsupportedProductError

        status = int(getattr(exc, "status_code", 0) or 0)
        etype, reason = _error_parts(getattr(exc, "body", None), str(getattr(exc, "message", exc)))
        if isinstance(exc, UnsupportedProductError):
            return EngineProductError(status, "product", str(exc))
        return EngineApiError(status, etype, reason)

    def info(self) -> dict[str, Any]:
        return dict(self._call(lambda: self._es.info()).body)

    def get_index_template(self, name: str) -> list[dict[str, Any]]:
        resp = self._call(lambda: self._es.options(ignore_status=404).indices.get_index_template(name=name))
        if resp.meta.status != 200:
            return []
        return [t["index_template"] for t in resp.body.get("index_templates", [])]

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self._call(lambda: self._es.indices.put_index_template(
            name=name, index_patterns=body["index_patterns"], priority=body["priority"],
            template=body["template"], meta=body["_meta"]))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"query": body["query"], "size": body.get("size", 10)}
        if "sort" in body:
            kwargs["sort"] = body["sort"]
        src = body.get("_source")
        if src is False:
            kwargs["source"] = False
        elif isinstance(src, dict) and src.get("excludes"):
            kwargs["source_excludes"] = src["excludes"]
        resp = self._call(lambda: self._es.search(index=index, allow_no_indices=True, ignore_unavailable=True, **kwargs))
        return dict(resp.body)

    def count(self, index: str) -> int:
        resp = self._call(lambda: self._es.count(index=index, allow_no_indices=True, ignore_unavailable=True))
        return int(resp["count"])

    def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        resp = self._call(lambda: self._es.options(ignore_status=404).get(index=index, id=doc_id))
        return resp.get("_source") if resp.get("found") else None

    def refresh(self, index: str) -> None:
        self._call(lambda: self._es.indices.refresh(index=index, allow_no_indices=True))

    def streaming_bulk(
        self, actions: Iterable[Any], *, chunk_size: int, max_chunk_bytes: int, expand: BulkExpand
    ) -> Iterator[dict[str, Any]]:
        from elastic_transport import TransportError
        from elasticsearch import ApiError, helpers

        stream = helpers.streaming_bulk(
            self._es, actions, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
            expand_action_callback=expand, raise_on_error=False, raise_on_exception=False,
            max_retries=0, yield_ok=True)
        try:
            for _ok, item in stream:
                ((_, info),) = item.items()
                exc = info.get("exception")
                if isinstance(exc, ApiError):
                    info = {**info, "exception": self._api_error(exc)}
                yield info
        except ApiError as exc:
            raise self._api_error(exc) from None
        except TransportError as exc:
            raise EngineConnectionError(f"{type(exc).__name__}: {exc}") from None

    def without_retries(self) -> EngineClient:
        return ElasticsearchEngine(self._es.options(max_retries=0))

    def close(self) -> None:
        self._es.close()


class OpenSearchEngine(EngineClient):
    engine = "opensearch"

    def __init__(self, client_kwargs: dict[str, Any], hosts: list[str]) -> None:
        from opensearchpy import OpenSearch

        self._kwargs = client_kwargs
        self._hosts = hosts
        self._os = OpenSearch(hosts, **client_kwargs)

    @property
    def raw(self) -> Any:
        """The opensearch-py client itself."""
        return self._os

    @property
    def url(self) -> str:
        return self._hosts[0]

    def _call(self, fn: Callable[[], Any]) -> Any:
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        try:
            return fn()
        except OsConnectionError as exc:
            raise EngineConnectionError(f"{type(exc).__name__}: {exc.error}") from None
        except TransportError as exc:
            raise self._api_error(exc) from None

    @staticmethod
    def _api_error(exc: Any) -> EngineApiError:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        etype, reason = _error_parts(exc.info, str(exc.error))
        return EngineApiError(status, etype, reason)

    def info(self) -> dict[str, Any]:
        return dict(self._call(lambda: self._os.info()))

    def get_index_template(self, name: str) -> list[dict[str, Any]]:
        resp = self._call(lambda: self._os.indices.get_index_template(name=name, ignore=404))
        return [t["index_template"] for t in resp.get("index_templates", [])]

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self._call(lambda: self._os.indices.put_index_template(name=name, body=body))

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(lambda: self._os.search(
            index=index, body=body, allow_no_indices=True, ignore_unavailable=True)))

    def count(self, index: str) -> int:
        resp = self._call(lambda: self._os.count(index=index, allow_no_indices=True, ignore_unavailable=True))
        return int(resp["count"])

    def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        resp = self._call(lambda: self._os.get(index=index, id=doc_id, ignore=404))
        return resp.get("_source") if resp.get("found") else None

    def refresh(self, index: str) -> None:
        self._call(lambda: self._os.indices.refresh(index=index, allow_no_indices=True))

    def streaming_bulk(
        self, actions: Iterable[Any], *, chunk_size: int, max_chunk_bytes: int, expand: BulkExpand
    ) -> Iterator[dict[str, Any]]:
        from opensearchpy import helpers
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        stream = helpers.streaming_bulk(
            self._os, actions, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
            expand_action_callback=expand, raise_on_error=False, raise_on_exception=False,
            max_retries=0, yield_ok=True)
        try:
            for _ok, item in stream:
                ((_, info),) = item.items()
                exc = info.get("exception")
                if isinstance(exc, OsConnectionError):
                    # opensearch-py reports an unanswered chunk as failed items; the elasticsearch
                    # helper raises instead. Raise here too, so both engines behave alike.
                    raise EngineConnectionError(f"{type(exc).__name__}: {exc.error}")
                if isinstance(exc, TransportError):
                    info = {**info, "exception": self._api_error(exc)}
                yield info
        except OsConnectionError as exc:
            raise EngineConnectionError(f"{type(exc).__name__}: {exc.error}") from None
        except TransportError as exc:
            raise self._api_error(exc) from None

    def without_retries(self) -> EngineClient:
        return OpenSearchEngine({**self._kwargs, "max_retries": 0}, self._hosts)

    def close(self) -> None:
        self._os.close()


def make_engine(config: ElasticsearchConfig, *, request_timeout: float = 30.0, max_retries: int = 3) -> EngineClient:
    """The :class:`EngineClient` for ``config.engine`` (``elasticsearch`` or ``opensearch``)."""
    if config.engine not in ENGINES:
        raise ClusterRefused(f"unknown search engine {config.engine!r} (expected one of {', '.join(ENGINES)})")
    if config.engine == "elasticsearch":
        return ElasticsearchEngine(make_client(config, request_timeout=request_timeout, max_retries=max_retries))
    quiet_client_loggers()
    hosts, auth = _hosts_and_auth(config)
    kwargs: dict[str, Any] = {
        "timeout": request_timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "verify_certs": config.verify_certs,
        "ssl_show_warn": config.verify_certs,
    }
    if config.ca_cert:
        kwargs["ca_certs"] = config.ca_cert
    if config.api_key:
        kwargs["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
    elif auth:
        kwargs["http_auth"] = auth
    try:
        return OpenSearchEngine(kwargs, hosts)
    except (ValueError, TypeError) as exc:
        raise ClusterRefused(f"invalid OpenSearch settings: {redact(str(exc), config)}") from None
