"""Settings the connectors consume: typed, frozen, keyword-only, with their defaults.

They sit here, below the configuration loader (``pipelines/config.py``), because connectors
take them as arguments; loading YAML, environment variables and flags into them, with their
precedence and error messages, is the loader's business, not the connectors'.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    url: str
    id: str  # short, stable, low-cardinality: the metrics label
    name: str  # outlet name shown to users (Article.source)
    min_interval: float = 60.0
    max_interval: float = 1800.0
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchConfig:
    timeout: float = 20.0  # seconds, whole response
    connect_timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = "newsmon/0.1 (Indonesian news monitoring; set fetch.user_agent to add your contact)"
    allow_hosts: tuple[str, ...] = ()  # hosts/IPs let through the private-address block
    per_host_concurrency: int = 2
    per_host_min_spacing: float = 1.0  # seconds between request starts to one host
    robots: bool = True  # honour robots.txt (Disallow, Crawl-delay) for article pages
    robots_exempt_hosts: tuple[str, ...] = ()  # hosts (and their subdomains) whose owner allowed us in


@dataclass(frozen=True, slots=True, kw_only=True)
class ElasticsearchConfig:
    urls: tuple[str, ...] = ()
    index_prefix: str = "newsmon"
    engine: str = "elasticsearch"  # or "opensearch" (the opensearch-py client); same index design
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    verify_certs: bool = True
    kibana_url: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """Article alerts pushed to Alertmanager (``connectors/alertmanager.py``); off without URLs."""

    urls: tuple[str, ...] = ()  # Alertmanager base URLs (every instance of an HA cluster)
    topics: tuple[str, ...] = ()  # watched topics; empty = every topic
    max_age: float = 6 * 3600.0  # seconds; older articles (by published time) never alert
    resolve_after: float = 240.0  # seconds; endsAt = post time + this (keep below group_interval)
    expire_after: float = 3600.0  # seconds; an alert not delivered by then is dropped
    queue_max: int = 10000  # alerts kept on disk while Alertmanager is unreachable
    timeout: float = 5.0  # seconds per POST

    @property
    def enabled(self) -> bool:
        return bool(self.urls)
