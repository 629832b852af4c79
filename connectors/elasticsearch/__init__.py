"""The search-engine sink (Elasticsearch or OpenSearch): the public names, in one place.

Callers import the names below from here; the implementation is split by concern:

- :mod:`connectors.elasticsearch.client`  client seam (elasticsearch / opensearch-py), secrets, errors
- :mod:`connectors.elasticsearch.schema`  index names, template, mapping, documents, the Painless merge script
- :mod:`connectors.elasticsearch.bulk`    pure bulk planning and the reading of item answers
- :mod:`connectors.elasticsearch.sink`    the retrying sink with dead letters (``ElasticsearchSink``)
- :mod:`connectors.elasticsearch.search`  the search query and snippets
- :mod:`connectors.elasticsearch.setup`   ``newsmon setup elasticsearch`` (template install, version check)
- :mod:`connectors.elasticsearch.dedupstore`  the dedup store shared by distributed workers

The Beam write step, ``WriteToElasticsearch``, is assembled from the drivers' own write DoFn in
:mod:`pipelines.eswrite`.

Which engine: ``ElasticsearchConfig.engine`` (``elasticsearch.engine: opensearch`` in the
config file, or ``NEWSMON_OPENSEARCH_URL``). Client version for Elasticsearch: the
``elasticsearch`` client's major must equal the cluster's (9.x client for 9.x clusters, the
default; for an 8.x cluster install ``elasticsearch>=8.13,<9``).
"""

from __future__ import annotations

from connectors.elasticsearch.bulk import (
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
from connectors.elasticsearch.client import (
    ClusterRefused,
    ClusterUnreachable,
    EngineClient,
    SetupError,
    make_client,
    make_engine,
    redact,
    secrets_of,
)
from connectors.elasticsearch.schema import (
    MAPPINGS,
    MERGE_SCRIPT,
    TEMPLATE_VERSION,
    article_document,
    index_for,
    index_pattern,
    index_template,
    template_name,
)
from connectors.elasticsearch.search import snippet
from connectors.elasticsearch.setup import SUPPORTED_MAJORS, setup_elasticsearch
from connectors.elasticsearch.sink import ElasticsearchSink, OpenSearchSink

SINK_NAME = "elasticsearch"

__all__ = [
    "MAPPINGS", "MERGE_SCRIPT", "MISSING", "OK", "REJECT", "RETRY", "SINK_NAME", "SUPPORTED_MAJORS",
    "TEMPLATE_VERSION", "Action", "ClusterRefused", "ClusterUnreachable", "ElasticsearchSink", "EngineClient",
    "OpenSearchSink", "SetupError", "Unit", "article_document", "backoff_delay",
    "classify_item", "index_for", "index_pattern", "index_template", "make_client", "make_engine", "plan_actions",
    "redact", "secrets_of", "setup_elasticsearch", "snippet", "template_name", "units_for",
]

