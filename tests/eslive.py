"""The real cluster for the ``live`` contract tests, when ``NEWSMON_TEST_ES_URL`` is set."""

from __future__ import annotations

import os

from pipelines.config import ElasticsearchConfig

LIVE_URL = os.environ.get("NEWSMON_TEST_ES_URL")


def live_config(index_prefix: str) -> ElasticsearchConfig:
    """Connection settings for the live cluster (URLs and credentials from NEWSMON_TEST_ES_*)."""
    assert LIVE_URL, "NEWSMON_TEST_ES_URL is not set"
    return ElasticsearchConfig(
        urls=tuple(u.strip() for u in LIVE_URL.split(",")),
        index_prefix=index_prefix,
        api_key=os.environ.get("NEWSMON_TEST_ES_API_KEY"),
        username=os.environ.get("NEWSMON_TEST_ES_USERNAME"),
        password=os.environ.get("NEWSMON_TEST_ES_PASSWORD"),
        ca_cert=os.environ.get("NEWSMON_TEST_ES_CA_CERT"),
    )
