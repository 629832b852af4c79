"""The few ``elasticsearch``-client calls the Elasticsearch dedup store makes, served by opensearch-py.

``connectors/elasticsearch/dedupstore.py`` is written against the ``elasticsearch`` client's keyword API
(``options(ignore_status=...)``, ``index(document=...)``, ``search(query=..., aggs=...)``, responses
with ``.body`` and ``.meta.status``, ``ApiError``/``TransportError`` exceptions). When the
configured engine is OpenSearch, :func:`connectors.elasticsearch.client.make_client` returns
:class:`OpenSearchAsElasticsearch` instead, which makes the same calls with the official
``opensearch-py`` client and answers in the same shapes, so the dedup store works on both
engines unchanged. Only the calls that store uses are here; anything else raises
``AttributeError``. Requests and bodies are the same JSON on both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout as TransportConnectionTimeout
from elasticsearch import ApiError


class _Meta:
    def __init__(self, status: int) -> None:
        self.status = status


class CompatResponse:
    """``.body``, ``.meta.status``, item access and truthiness like the elasticsearch client's responses."""

    def __init__(self, status: int, body: Any) -> None:
        self.meta = _Meta(status)
        self.body = body

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default

    def __iter__(self) -> Iterator[Any]:
        return iter(self.body)

    def __bool__(self) -> bool:
        return 200 <= self.meta.status < 300 if self.body is None else bool(self.body) or self.meta.status < 300


class _Indices:
    def __init__(self, owner: OpenSearchAsElasticsearch) -> None:
        self._o = owner

    def exists(self, *, index: str) -> CompatResponse:
        found = self._o._run(lambda: self._o._os.indices.exists(index=index))
        return CompatResponse(200 if found else 404, None)

    def create(self, *, index: str, mappings: Any = None, settings: Any = None) -> CompatResponse:
        body = {k: v for k, v in (("mappings", mappings), ("settings", settings)) if v is not None}
        return self._o._answer(lambda: self._o._os.indices.create(index=index, body=body))

    def refresh(self, *, index: str) -> CompatResponse:
        return self._o._answer(lambda: self._o._os.indices.refresh(index=index))

    def get(self, *, index: str) -> CompatResponse:
        return self._o._answer(lambda: self._o._os.indices.get(index=index))

    def delete(self, *, index: str) -> CompatResponse:
        return self._o._answer(lambda: self._o._os.indices.delete(index=index))


class OpenSearchAsElasticsearch:
    """An opensearch-py client behind the elasticsearch-client call shapes listed in the module doc."""

    def __init__(self, client: Any, url: str, *, ignore_status: tuple[int, ...] = ()) -> None:
        self._os = client
        self._url = url
        self._ignore = ignore_status
        self.indices = _Indices(self)

    def options(self, *, ignore_status: int | tuple[int, ...] = ()) -> OpenSearchAsElasticsearch:
        statuses = (ignore_status,) if isinstance(ignore_status, int) else tuple(ignore_status)
        return OpenSearchAsElasticsearch(self._os, self._url, ignore_status=statuses)

    # -- translation of outcomes ------------------------------------------------------------
    def _node(self) -> NodeConfig:
        parts = urlsplit(self._url)
        return NodeConfig(parts.scheme or "http", parts.hostname or "localhost", parts.port or 9200)

    def _run(self, fn: Callable[[], Any]) -> Any:
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import ConnectionTimeout as OsConnectionTimeout
        from opensearchpy.exceptions import TransportError

        try:
            return fn()
        except OsConnectionTimeout as exc:
            raise TransportConnectionTimeout(str(exc.error)) from None
        except OsConnectionError as exc:
            raise TransportConnectionError(str(exc.error)) from None
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 500
            if status in self._ignore:
                return CompatResponse(status, exc.info if isinstance(exc.info, dict) else {})
            meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, self._node())
            raise ApiError(str(exc.error), meta, exc.info) from None

    def _answer(self, fn: Callable[[], Any]) -> CompatResponse:
        resp = self._run(fn)
        return resp if isinstance(resp, CompatResponse) else CompatResponse(200, resp)

    # -- the calls ---------------------------------------------------------------------------
    def index(self, *, index: str, id: str, document: Any, **params: Any) -> CompatResponse:
        query = {k: _param(v) for k, v in params.items() if v is not None}
        return self._answer(lambda: self._os.index(index=index, id=id, body=document, params=query))

    def get(self, *, index: str, id: str) -> CompatResponse:
        return self._answer(lambda: self._os.get(index=index, id=id))

    def search(self, *, index: str, source: Any = None, **body: Any) -> CompatResponse:
        body = {k: v for k, v in body.items() if v is not None}  # the elasticsearch client drops None too
        if source is not None:
            body["_source"] = source
        query = {"allow_no_indices": "true"}
        return self._answer(lambda: self._os.search(index=index, body=body, params=query))

    def update(self, *, index: str, id: str, script: Any = None, doc: Any = None, **params: Any) -> CompatResponse:
        """A scripted or a partial-document update (exactly one of ``script`` and ``doc``);
        ``params`` (``retry_on_conflict``, ``refresh``) go to the query string."""
        if (script is None) == (doc is None):
            raise TypeError("update needs exactly one of script= and doc=")
        query = {k: _param(v) for k, v in params.items() if v is not None}
        body = {"script": script} if script is not None else {"doc": doc}
        return self._answer(lambda: self._os.update(index=index, id=id, body=body, params=query))

    def delete_by_query(self, *, index: str, query: Any, **params: Any) -> CompatResponse:
        qs = {k: _param(v) for k, v in params.items()}
        return self._answer(lambda: self._os.delete_by_query(index=index, body={"query": query}, params=qs))

    def close(self) -> None:
        self._os.close()


def _param(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
