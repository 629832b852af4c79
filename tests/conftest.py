"""Fixtures shared by the whole suite.

`opensearch_url` (session): the base URL of one real OpenSearch 2.19 node started for the test
session (see tests/opensearchnode.py). Tests that use it should create their own index names
(or prefixes) so they do not see each other's documents. `opensearch_node` gives the node object
itself, for tests that stop and restart it.

When the node cannot be built or started the tests that need it are skipped with the reason,
unless NEWSMON_REQUIRE_OPENSEARCH=1 (set by `make test`), where that is an error instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.opensearchnode import NodeUnavailable, OpenSearchNode


@pytest.fixture(scope="session")
def opensearch_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchNode]:
    node = OpenSearchNode(tmp_path_factory.mktemp("opensearch-node"))
    try:
        node.start()
    except NodeUnavailable as exc:
        if os.environ.get("NEWSMON_REQUIRE_OPENSEARCH") == "1":
            pytest.fail(f"OpenSearch test node required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"OpenSearch test node unavailable: {exc}")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def opensearch_url(opensearch_node: OpenSearchNode) -> str:
    return opensearch_node.url


@pytest.fixture
def opensearch_live(opensearch_node: OpenSearchNode) -> OpenSearchNode:
    """The session node, started again if an earlier test stopped it and failed before restarting."""
    if not opensearch_node.running():
        opensearch_node.start()
    return opensearch_node
