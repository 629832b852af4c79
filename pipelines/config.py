"""Configuration: typed, keyword-only objects loaded from YAML, overridden by env and CLI.

Order of precedence (later wins): the shipped default (``pipelines/defaults/feeds.yaml``),
the file named by ``--config`` or ``NEWSMON_CONFIG``, environment variables (read once, at
the CLI edge, by :func:`from_environment`), then command-line flags.

Every problem is reported as :class:`ConfigError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class ConfigError(ValueError):
    """A configuration file or value is invalid. The message names file, key and problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


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
class Config:
    feeds: tuple[FeedConfig, ...]
    store_dir: Path = Path("newsmon-data")
    poll_interval: float | None = None  # overrides every feed's bounds when set (CLI --poll-interval)
    topics_dir: Path | None = None  # user topics, added to the shipped ones
    dedup_window_days: float = 7.0
    fetch: FetchConfig = FetchConfig()
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # 0 disables the exporter
    max_attempts: int = 5  # fetch attempts per article before falling back to the feed text
    source: str = "<defaults>"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def enabled_feeds(self) -> tuple[FeedConfig, ...]:
        return tuple(f for f in self.feeds if f.enabled)


def feed_id_for(url: str) -> str:
    """A stable short id for a feed URL: host without www, plus the path's words."""
    parts = urlsplit(url)
    host = (parts.hostname or "feed").removeprefix("www.")
    path = re.sub(r"[^a-z0-9]+", "-", parts.path.lower()).strip("-")
    fid = f"{host}-{path}" if path else host
    if parts.port:
        fid = f"{fid}-{parts.port}"
    return fid[:80]


def _check_url(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, key, "must be a non-empty URL string")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(source, key, f"{value!r} is not an http(s) URL")
    return value.strip()


def _number(source: str, key: str, value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(source, key, f"must be a number, got {value!r}")
    if value < minimum:
        raise ConfigError(source, key, f"must be >= {minimum}, got {value!r}")
    return float(value)


_FEED_KEYS = {"url", "id", "name", "min_interval", "max_interval", "enabled"}


def parse_feed(source: str, key: str, raw: Any) -> FeedConfig:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, key, "must be a mapping with at least 'url' (or a URL string)")
    unknown = set(raw) - _FEED_KEYS
    if unknown:
        raise ConfigError(source, f"{key}.{sorted(unknown)[0]}", f"unknown key (allowed: {sorted(_FEED_KEYS)})")
    url = _check_url(source, f"{key}.url", raw.get("url"))
    min_i = _number(source, f"{key}.min_interval", raw.get("min_interval", 60), minimum=1)
    max_i = _number(source, f"{key}.max_interval", raw.get("max_interval", 1800), minimum=1)
    if max_i < min_i:
        raise ConfigError(source, f"{key}.max_interval", f"must be >= min_interval ({min_i}), got {max_i}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(source, f"{key}.enabled", f"must be true or false, got {enabled!r}")
    fid = raw.get("id") or feed_id_for(url)
    if not isinstance(fid, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", fid):
        raise ConfigError(source, f"{key}.id", f"must be 1-80 characters of [A-Za-z0-9_.-], got {fid!r}")
    name = raw.get("name") or (urlsplit(url).hostname or url)
    if not isinstance(name, str):
        raise ConfigError(source, f"{key}.name", f"must be a string, got {name!r}")
    return FeedConfig(url=url, id=fid, name=name, min_interval=min_i, max_interval=max_i, enabled=enabled)


_TOP_KEYS = {"feeds", "store_dir", "topics_dir", "dedup_window_days", "fetch", "elasticsearch", "metrics", "max_attempts"}


def parse_config(raw: Any, *, source: str, base: Config | None = None) -> Config:
    """Build a Config from parsed YAML; keys not given keep ``base``'s values."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "<top>", "must be a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(source, sorted(unknown)[0], f"unknown key (allowed: {sorted(_TOP_KEYS)})")
    cfg = base if base is not None else Config(feeds=(), source=source)
    changes: dict[str, Any] = {"source": source}
    if "feeds" in raw:
        feeds_raw = raw["feeds"]
        if not isinstance(feeds_raw, list):
            raise ConfigError(source, "feeds", "must be a list")
        feeds = tuple(parse_feed(source, f"feeds[{i}]", f) for i, f in enumerate(feeds_raw))
        seen: dict[str, int] = {}
        for i, f in enumerate(feeds):
            if f.id in seen:
                raise ConfigError(source, f"feeds[{i}].id", f"duplicate feed id {f.id!r} (also feeds[{seen[f.id]}])")
            seen[f.id] = i
        changes["feeds"] = feeds
    if "store_dir" in raw:
        changes["store_dir"] = Path(str(raw["store_dir"]))
    if "topics_dir" in raw:
        changes["topics_dir"] = Path(str(raw["topics_dir"])) if raw["topics_dir"] else None
    if "dedup_window_days" in raw:
        changes["dedup_window_days"] = _number(source, "dedup_window_days", raw["dedup_window_days"], minimum=0.01)
    if "max_attempts" in raw:
        changes["max_attempts"] = int(_number(source, "max_attempts", raw["max_attempts"], minimum=1))
    if "fetch" in raw:
        changes["fetch"] = _parse_section(source, "fetch", raw["fetch"], cfg.fetch)
    if "elasticsearch" in raw:
        es = dict(raw["elasticsearch"] or {})
        if isinstance(es.get("urls"), str):
            es["urls"] = [es["urls"]]
        for secret in ("api_key", "password"):
            if secret in es:
                raise ConfigError(source, f"elasticsearch.{secret}", "secrets come from the environment only")
        changes["elasticsearch"] = _parse_section(source, "elasticsearch", es, cfg.elasticsearch)
        if changes["elasticsearch"].engine not in ("elasticsearch", "opensearch"):
            raise ConfigError(source, "elasticsearch.engine", f"must be elasticsearch or opensearch, got {changes['elasticsearch'].engine!r}")
    if "metrics" in raw:
        m = raw["metrics"] or {}
        if not isinstance(m, Mapping) or set(m) - {"host", "port"}:
            raise ConfigError(source, "metrics", "must be a mapping with 'host' and/or 'port'")
        if "host" in m:
            changes["metrics_host"] = str(m["host"])
        if "port" in m:
            changes["metrics_port"] = int(_number(source, "metrics.port", m["port"], minimum=0))
    return dataclasses.replace(cfg, **changes)


def _parse_section(source: str, name: str, raw: Any, current: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, name, "must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(current)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(source, f"{name}.{key}", f"unknown key (allowed: {sorted(fields)})")
        old = getattr(current, key)
        if isinstance(old, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(source, f"{name}.{key}", "must be a list of strings")
            value = tuple(value)
        elif isinstance(old, bool):
            if not isinstance(value, bool):
                raise ConfigError(source, f"{name}.{key}", f"must be true or false, got {value!r}")
        elif isinstance(old, (int, float)):
            value = type(old)(_number(source, f"{name}.{key}", value, minimum=0))
        elif value is not None and not isinstance(value, str):
            raise ConfigError(source, f"{name}.{key}", f"must be a string, got {value!r}")
        changes[key] = value
    return dataclasses.replace(current, **changes)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "<file>", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<parse>"
        raise ConfigError(str(path), where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc


def default_config() -> Config:
    text = resources.files("pipelines").joinpath("defaults/feeds.yaml").read_text(encoding="utf-8")
    return parse_config(yaml.safe_load(text), source="<shipped defaults>")


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Shipped defaults, then the file (``path`` or ``$NEWSMON_CONFIG``), then environment."""
    env = os.environ if env is None else env
    cfg = default_config()
    path = path or env.get("NEWSMON_CONFIG")
    if path:
        p = Path(path)
        cfg = parse_config(load_yaml(p), source=str(p), base=cfg)
    return from_environment(cfg, env)


def from_environment(cfg: Config, env: Mapping[str, str]) -> Config:
    """Apply NEWSMON_* environment variables. Secrets are only ever read here."""
    es = cfg.elasticsearch
    es_changes: dict[str, Any] = {}
    if env.get("NEWSMON_ES_URL"):
        es_changes["urls"] = tuple(u.strip() for u in env["NEWSMON_ES_URL"].split(",") if u.strip())
    for var, key in (
        ("NEWSMON_ES_API_KEY", "api_key"),
        ("NEWSMON_ES_USERNAME", "username"),
        ("NEWSMON_ES_PASSWORD", "password"),
        ("NEWSMON_ES_CA_CERT", "ca_cert"),
        ("NEWSMON_ES_INDEX", "index_prefix"),
        ("NEWSMON_KIBANA_URL", "kibana_url"),
    ):
        if env.get(var):
            es_changes[key] = env[var]
    if env.get("NEWSMON_ES_VERIFY_CERTS", "").lower() in ("0", "false", "no"):
        es_changes["verify_certs"] = False
    if env.get("NEWSMON_OPENSEARCH_URL"):  # OpenSearch: same settings, the opensearch-py client
        es_changes["urls"] = tuple(u.strip() for u in env["NEWSMON_OPENSEARCH_URL"].split(",") if u.strip())
        es_changes["engine"] = "opensearch"
    changes: dict[str, Any] = {}
    if es_changes:
        changes["elasticsearch"] = dataclasses.replace(es, **es_changes)
    if env.get("NEWSMON_STORE"):
        changes["store_dir"] = Path(env["NEWSMON_STORE"])
    if env.get("NEWSMON_TOPICS_DIR"):
        changes["topics_dir"] = Path(env["NEWSMON_TOPICS_DIR"])
    if env.get("NEWSMON_METRICS_HOST"):
        changes["metrics_host"] = env["NEWSMON_METRICS_HOST"]
    if env.get("NEWSMON_METRICS_PORT"):
        try:
            changes["metrics_port"] = int(env["NEWSMON_METRICS_PORT"])
        except ValueError as exc:
            raise ConfigError("environment", "NEWSMON_METRICS_PORT", "must be an integer") from exc
    return dataclasses.replace(cfg, **changes) if changes else cfg
