"""Fixtures shared by the whole suite.

`registry`: a fresh Prometheus registry installed as newsmon's process-wide metrics for one
test; whatever a test installs, the metrics in place before it are restored after it.

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
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors import metrics
from tests.opensearchnode import NodeUnavailable, OpenSearchNode


@pytest.fixture(autouse=True)
def _metrics_restored() -> Iterator[None]:
    """Tests may install their own metrics (``metrics.set_default``); the next test never sees them."""
    previous = metrics.get()  # the process-wide default (created once, on the global registry)
    yield
    metrics.set_default(previous)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry as the process-wide metrics for this test (restored by ``_metrics_restored``)."""
    reg = CollectorRegistry()
    metrics.set_default(metrics.Metrics(reg))
    return reg


@pytest.fixture
def quick_fetch(tmp_path: Path) -> Path:
    """A config file without the politeness meant for real outlets (every test page is on loopback)."""
    cfg = tmp_path / "newsmon.yaml"
    cfg.write_text("fetch:\n  per_host_min_spacing: 0\n  timeout: 5\n")
    return cfg


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
