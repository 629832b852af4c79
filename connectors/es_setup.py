"""``newsmon setup elasticsearch``: check the cluster and install the index template (idempotent).

Works for Elasticsearch 8/9 and OpenSearch 2/3 (whichever ``ElasticsearchConfig.engine``
names); the version check reads what the server says it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.es_client import (
    ClusterRefused,
    ClusterUnreachable,
    EngineApiError,
    EngineClient,
    EngineConnectionError,
    EngineProductError,
    SetupError,
    engine_label,
    make_engine,
    redact,
)
from connectors.es_schema import index_template, template_name
from pipelines.config import ElasticsearchConfig

SUPPORTED_MAJORS = {"elasticsearch": (8, 9), "opensearch": (2, 3)}


def setup_elasticsearch(config: ElasticsearchConfig, *, client: EngineClient | None = None) -> list[str]:
    """Check the cluster and install the index template; idempotent. Returns what it did.

    Raises :class:`ClusterUnreachable`, :class:`ClusterRefused` or :class:`SetupError` with one
    line of explanation (secrets redacted); the engine client's retries are off, so an engine
    that is down fails at once instead of logging every retry.
    """
    engine = client or make_engine(config, max_retries=0)
    label = engine_label(config)
    urls = redact(",".join(config.urls), config)
    done: list[str] = []
    name = template_name(config.index_prefix)
    body = index_template(config.index_prefix)
    try:
        info = engine.info()
        version = str(info.get("version", {}).get("number", "?"))
        distribution = str(info.get("version", {}).get("distribution") or "elasticsearch")
        product = "OpenSearch" if distribution == "opensearch" else "Elasticsearch"
        major = int(version.split(".")[0]) if version[:1].isdigit() else 0
        if major not in SUPPORTED_MAJORS.get(distribution, ()):
            wanted = " or ".join(f"{m}.x" for m in SUPPORTED_MAJORS.get(distribution, (8, 9)))
            raise ClusterRefused(f"{product} {version} is not supported (need {wanted})")
        done.append(f"cluster {info.get('cluster_name', '?')} runs {product} {version}")
        existing = engine.get_index_template(name)
        if existing and same_template(existing[0], body):
            done.append(f"index template {name} already up to date")
        else:
            engine.put_index_template(name, body)
            done.append(f"index template {name} {'updated' if existing else 'installed'} for {body['index_patterns'][0]}")
    except EngineProductError:
        raise ClusterRefused(f"the server at {urls} is not {label} (missing X-Elastic-Product header)") from None
    except EngineApiError as exc:
        if exc.status in (401, 403):
            raise ClusterRefused(f"{label} refused our credentials: {redact(str(exc), config)}") from None
        raise SetupError(f"installing the index template failed: {redact(str(exc), config)}") from None
    except EngineConnectionError as exc:
        raise ClusterUnreachable(redact(f"cannot reach {label} at {urls}: {exc}", config)) from None
    finally:
        if client is None:
            engine.close()
    return done


def same_template(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Compare on what we manage (servers add defaults and stringify settings)."""
    meta = stored.get("_meta") or {}
    return (
        list(stored.get("index_patterns", [])) == list(wanted["index_patterns"])
        and meta.get("version") == wanted["_meta"]["version"]
        and meta.get("managed_by") == "newsmon"
        and (stored.get("template") or {}).get("mappings", {}).get("properties", {}).keys()
        == wanted["template"]["mappings"]["properties"].keys()
    )
