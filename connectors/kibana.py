"""Kibana saved objects for newsmon, and their import through Kibana's HTTP API.

The objects are built in code (:func:`saved_objects`) so a user's own topics get a saved
search each; ``deploy/kibana/newsmon.ndjson`` is the rendering for the shipped topics
(``python -m connectors.kibana > deploy/kibana/newsmon.ndjson``; a test keeps it in sync).

What is built, all pointing at the data view ``<prefix>-articles-*`` (time field ``@timestamp``):

- one saved search per topic (``topics:"<topic>"``, originals only) and "latest articles";
- aggregation-based visualisations: coverage over time per topic, articles per outlet,
  duplicates vs originals (on the ``is_duplicate`` field the sink stores);
- the "newsmon overview" dashboard holding them.

Objects reference each other only by ``references`` (``indexRefName``/``panelRefName``), so
the import resolves ids inside the file. :func:`import_saved_objects` posts NDJSON files
to ``POST /api/saved_objects/_import`` (multipart, ``kbn-xsrf`` header, same API key or
basic auth as Elasticsearch) and reports per-object errors. Secrets never appear in
errors (see ``connectors.elasticsearch.redact``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from connectors.elasticsearch import redact
from connectors.settings import ElasticsearchConfig

DEFAULT_TOPICS = ("nato-reaction", "russia-dprk")


class KibanaError(Exception):
    """Kibana could not be reached or refused the import as a whole."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    success_count: int = 0
    errors: tuple[dict[str, Any], ...] = ()  # per object: {"id", "type", "title", "error": {...}}
    files: tuple[str, ...] = ()
    ok: bool = True
    lines: tuple[str, ...] = field(default=())

    def describe(self) -> list[str]:
        out = [f"imported {self.success_count} saved objects from {', '.join(self.files)}"]
        for e in self.errors:
            err = e.get("error", {})
            out.append(
                f"error: {e.get('type')}/{e.get('id')} ({e.get('title', '')}): {err.get('type')} {err.get('message', '')}".rstrip()
            )
        return out


# --------------------------------------------------------------------------- building


def _ref(name: str, type_: str, id_: str) -> dict[str, str]:
    return {"name": name, "type": type_, "id": id_}


def _search_source(query: str, *, with_index: bool = True) -> str:
    src: dict[str, Any] = {"query": {"query": query, "language": "kuery"}, "filter": []}
    if with_index:
        src["indexRefName"] = "kibanaSavedObjectMeta.searchSourceJSON.index"
    return json.dumps(src, sort_keys=True)


def data_view_id(prefix: str) -> str:
    return f"{prefix}-articles"


def _saved_search(prefix: str, id_: str, title: str, query: str, description: str) -> dict[str, Any]:
    return {
        "type": "search",
        "id": id_,
        "attributes": {
            "title": title,
            "description": description,
            "columns": ["title", "source", "topics", "url"],
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
        },
        "references": [
            _ref("kibanaSavedObjectMeta.searchSourceJSON.index", "index-pattern", data_view_id(prefix))
        ],
    }


def _vis(
    prefix: str, id_: str, title: str, vis_type: str, aggs: list[dict[str, Any]], params: dict[str, Any]
) -> dict[str, Any]:
    vis_state = {"title": title, "type": vis_type, "aggs": aggs, "params": params}
    return {
        "type": "visualization",
        "id": id_,
        "attributes": {
            "title": title,
            "description": "",
            "visState": json.dumps(vis_state, sort_keys=True),
            "uiStateJSON": "{}",
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("")},
        },
        "references": [
            _ref("kibanaSavedObjectMeta.searchSourceJSON.index", "index-pattern", data_view_id(prefix))
        ],
    }


_COUNT = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _terms(id_: str, field_: str, schema: str, size: int = 10) -> dict[str, Any]:
    return {
        "id": id_,
        "enabled": True,
        "type": "terms",
        "schema": schema,
        "params": {"field": field_, "size": size, "order": "desc", "orderBy": "1", "missingBucket": False},
    }


def _xy_params(kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": "bottom",
                "show": True,
                "labels": {"show": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": "left",
                "show": True,
                "labels": {"show": True, "truncate": 100},
                "title": {"text": "Articles"},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": "histogram",
                "mode": "stacked",
                "data": {"label": "Articles", "id": "1"},
                "valueAxis": "ValueAxis-1",
            }
        ],
        "grid": {"categoryLines": False},
    }


def saved_objects(topics: Iterable[str] = DEFAULT_TOPICS, *, prefix: str = "newsmon") -> list[dict[str, Any]]:
    """Every saved object newsmon installs, in dependency order."""
    dv = data_view_id(prefix)
    objects: list[dict[str, Any]] = [
        {
            "type": "index-pattern",
            "id": dv,
            "attributes": {
                "title": f"{prefix}-articles-*",
                "name": f"{prefix} articles",
                "timeFieldName": "@timestamp",
            },
            "references": [],
        }
    ]
    for topic in sorted(set(topics)):
        objects.append(
            _saved_search(
                prefix,
                f"{prefix}-topic-{topic}",
                f"newsmon topic: {topic}",
                f'topics:"{topic}" and not is_duplicate:true',
                f"Original articles tagged {topic} by newsmon's topic rules.",
            )
        )
    latest = _saved_search(
        prefix, f"{prefix}-latest", "newsmon: latest articles", "", "Every indexed article, newest first."
    )
    objects.append(latest)
    date_hist = {
        "id": "2",
        "enabled": True,
        "type": "date_histogram",
        "schema": "segment",
        "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1, "extended_bounds": {}},
    }
    objects.append(
        _vis(
            prefix,
            f"{prefix}-coverage-by-topic",
            "newsmon: coverage over time per topic",
            "histogram",
            [_COUNT, date_hist, _terms("3", "topics", "group")],
            _xy_params("histogram"),
        )
    )
    objects.append(
        _vis(
            prefix,
            f"{prefix}-coverage-by-outlet",
            "newsmon: articles per outlet",
            "horizontal_bar",
            [_COUNT, _terms("2", "source", "segment", 20)],
            _xy_params("horizontal_bar"),
        )
    )
    objects.append(
        _vis(
            prefix,
            f"{prefix}-duplicates",
            "newsmon: duplicates vs originals",
            "pie",
            [_COUNT, _terms("2", "is_duplicate", "segment", 2)],
            {
                "type": "pie",
                "addTooltip": True,
                "addLegend": True,
                "legendPosition": "right",
                "isDonut": True,
            },
        )
    )
    panels, refs = [], []
    layout = [
        (f"{prefix}-coverage-by-topic", "visualization", 0, 0, 48, 15),
        (f"{prefix}-coverage-by-outlet", "visualization", 0, 15, 24, 15),
        (f"{prefix}-duplicates", "visualization", 24, 15, 24, 15),
        (f"{prefix}-latest", "search", 0, 30, 48, 20),
    ]
    for n, (oid, otype, x, y, w, h) in enumerate(layout, start=1):
        panels.append(
            {
                "panelIndex": str(n),
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(n)},
                "embeddableConfig": {},
                "panelRefName": f"panel_{n}",
                "type": otype,
            }
        )
        refs.append(_ref(f"panel_{n}", otype, oid))
    objects.append(
        {
            "type": "dashboard",
            "id": f"{prefix}-overview",
            "attributes": {
                "title": "newsmon overview",
                "description": "Coverage per topic and outlet, duplicates vs originals, latest articles.",
                "panelsJSON": json.dumps(panels, sort_keys=True),
                "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                "timeRestore": True,
                "timeFrom": "now-7d",
                "timeTo": "now",
                "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("", with_index=False)},
            },
            "references": refs,
        }
    )
    return objects


def to_ndjson(objects: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n" for o in objects)


# --------------------------------------------------------------------------- importing


def _headers(config: ElasticsearchConfig) -> dict[str, str]:
    headers = {"kbn-xsrf": "newsmon"}
    if config.api_key:
        headers["Authorization"] = f"ApiKey {config.api_key}"
    elif config.username:
        headers.update(urllib3.make_headers(basic_auth=f"{config.username}:{config.password or ''}"))
    return headers


def import_ndjson(
    config: ElasticsearchConfig,
    data: bytes,
    *,
    filename: str = "newsmon.ndjson",
    overwrite: bool = True,
    timeout: float = 30.0,
) -> ImportReport:
    """POST one NDJSON payload to ``/api/saved_objects/_import``."""
    if not config.kibana_url:
        raise KibanaError("no Kibana URL configured (NEWSMON_KIBANA_URL)")
    url = (
        config.kibana_url.rstrip("/")
        + "/api/saved_objects/_import"
        + ("?overwrite=true" if overwrite else "")
    )
    body, content_type = urllib3.encode_multipart_formdata({"file": (filename, data, "application/ndjson")})
    headers = {**_headers(config), "Content-Type": content_type}
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if config.verify_certs else "CERT_NONE",
        ca_certs=config.ca_cert,
        retries=urllib3.Retry(
            total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=None
        ),
        timeout=urllib3.Timeout(total=timeout),
    )
    try:
        resp = pool.request("POST", url, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as exc:
        raise KibanaError(redact(f"cannot reach Kibana at {config.kibana_url}: {exc}", config)) from None
    try:
        payload = json.loads(resp.data or b"{}")
    except ValueError:
        payload = {}
    if resp.status != 200:
        message = payload.get("message") or resp.data[:200].decode("utf-8", "replace")
        raise KibanaError(redact(f"Kibana refused the import ({resp.status}): {message}", config))
    return ImportReport(
        success_count=int(payload.get("successCount", 0)),
        errors=tuple(payload.get("errors") or ()),
        files=(filename,),
        ok=bool(payload.get("success", False)),
    )


def set_default_data_view(
    config: ElasticsearchConfig, data_view: str, *, force: bool = False, timeout: float = 30.0
) -> bool:
    """Make ``data_view`` Kibana's default (``POST /api/data_views/default``), so Discover links
    without a data view (the NewCoverage alert's) open on newsmon's articles. With ``force=False``
    a default someone already chose is kept."""
    if not config.kibana_url:
        raise KibanaError("no Kibana URL configured (NEWSMON_KIBANA_URL)")
    url = config.kibana_url.rstrip("/") + "/api/data_views/default"
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if config.verify_certs else "CERT_NONE",
        ca_certs=config.ca_cert,
        timeout=urllib3.Timeout(total=timeout),
    )
    body = json.dumps({"data_view_id": data_view, "force": force}).encode()
    try:
        resp = pool.request("POST", url, body=body, headers={**_headers(config), "Content-Type": "application/json"})
    except urllib3.exceptions.HTTPError as exc:
        raise KibanaError(redact(f"cannot reach Kibana at {config.kibana_url}: {exc}", config)) from None
    if resp.status != 200:
        raise KibanaError(redact(f"Kibana refused the default data view ({resp.status})", config))
    try:
        return bool(json.loads(resp.data or b"{}").get("acknowledged", False))
    except ValueError:
        return False


def import_saved_objects(
    config: ElasticsearchConfig, files: Sequence[Path], *, overwrite: bool = True
) -> ImportReport:
    """Import each NDJSON file; one combined report."""
    success, ok = 0, True
    errors: list[Any] = []
    names: list[str] = []
    for path in files:
        rep = import_ndjson(config, Path(path).read_bytes(), filename=Path(path).name, overwrite=overwrite)
        success += rep.success_count
        errors.extend(rep.errors)
        names.append(Path(path).name)
        ok = ok and rep.ok
    return ImportReport(success_count=success, errors=tuple(errors), files=tuple(names), ok=ok and not errors)


if (
    __name__ == "__main__"
):  # render the shipped objects: python -m connectors.kibana > deploy/kibana/newsmon.ndjson
    sys.stdout.write(to_ndjson(saved_objects(sys.argv[1:] or DEFAULT_TOPICS)))
