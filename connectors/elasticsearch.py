"""The search-engine sink (Elasticsearch or OpenSearch): the public names, in one place.

The implementation is split by concern:

- :mod:`connectors.es_client`  client seam (elasticsearch / opensearch-py), secrets, errors
- :mod:`connectors.es_schema`  index names, template, mapping, documents, the Painless merge script
- :mod:`connectors.es_bulk`    pure bulk planning and the reading of item answers
- :mod:`connectors.es_sink`    the retrying sink with dead letters (``ElasticsearchSink``)
- :mod:`connectors.es_search`  the search query and snippets
- :mod:`connectors.es_setup`   ``newsmon setup elasticsearch`` (template install, version check)
- :mod:`connectors.es_beam`    ``WriteToElasticsearch`` (Beam; loaded on first use)

Which engine: ``ElasticsearchConfig.engine`` (``elasticsearch.engine: opensearch`` in the
config file, or ``NEWSMON_OPENSEARCH_URL``). Client version for Elasticsearch: the
``elasticsearch`` client's major must equal the cluster's (9.x client for 9.x clusters, the
default; for an 8.x cluster install ``elasticsearch>=8.13,<9``).
"""

from __future__ import annotations

from typing import Any

from connectors.es_bulk import (
    MISSING,
    OK,
    REJECT,
    RETRY,
    Action,
    Unit,
    backoff_delay,
    classify_item,
    plan_actions,
    units_for,
)
from connectors.es_client import (
    ClusterRefused,
    ClusterUnreachable,
    EngineClient,
    SetupError,
    make_client,
    make_engine,
    redact,
    secrets_of,
)
from connectors.es_schema import (
    MAPPINGS,
    MERGE_SCRIPT,
    TEMPLATE_VERSION,
    article_document,
    index_for,
    index_pattern,
    index_template,
    template_name,
)
from connectors.es_search import snippet
from connectors.es_setup import SUPPORTED_MAJORS, setup_elasticsearch
from connectors.es_sink import ElasticsearchSink, OpenSearchSink

SINK_NAME = "elasticsearch"

__all__ = [
    "MAPPINGS", "MERGE_SCRIPT", "MISSING", "OK", "REJECT", "RETRY", "SINK_NAME", "SUPPORTED_MAJORS",
    "TEMPLATE_VERSION", "Action", "ClusterRefused", "ClusterUnreachable", "ElasticsearchSink", "EngineClient",
    "OpenSearchSink", "SetupError", "Unit", "article_document", "backoff_delay",
    "classify_item", "index_for", "index_pattern", "index_template", "make_client", "make_engine", "plan_actions",
    "redact", "secrets_of", "setup_elasticsearch", "snippet", "template_name", "units_for",
]


def __getattr__(name: str) -> Any:
    if name == "WriteToElasticsearch":  # Beam is imported only by those who ask for it
        from connectors.es_beam import WriteToElasticsearch

        return WriteToElasticsearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
