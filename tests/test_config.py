"""Configuration: shipped defaults, file overrides, environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import ConfigError, default_config, feed_id_for, load_config


def test_shipped_defaults_list_real_indonesian_outlets() -> None:
    cfg = default_config()
    assert len(cfg.feeds) >= 15
    ids = [f.id for f in cfg.feeds]
    assert len(ids) == len(set(ids))
    names = {f.name for f in cfg.feeds}
    for outlet in (
        "ANTARA",
        "detikcom",
        "Kompas",
        "CNN Indonesia",
        "Tempo",
        "Republika",
        "Okezone",
        "VIVA",
        "Kontan",
        "SINDOnews",
        "Tribunnews",
        "Liputan6",
        "Merdeka",
        "Suara",
    ):
        assert outlet in names
    assert all(f.url.startswith("https://") for f in cfg.feeds)
    assert all(f.min_interval <= f.max_interval for f in cfg.feeds)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "newsmon.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_file_overrides_defaults(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "feeds:\n  - url: https://example.id/rss\n    name: Contoh\n    min_interval: 30\nstore_dir: /tmp/x\n",
    )
    cfg = load_config(p, env={})
    assert [f.url for f in cfg.feeds] == ["https://example.id/rss"]
    assert cfg.feeds[0].name == "Contoh" and cfg.feeds[0].min_interval == 30
    assert cfg.store_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("feeds:\n  - url: ftp://x\n", "feeds[0].url", "not an http(s) URL"),
        (
            "feeds:\n  - url: https://a.id/\n    min_interval: 100\n    max_interval: 10\n",
            "feeds[0].max_interval",
            ">= min_interval",
        ),
        ("feeds:\n  - url: https://a.id/\n    colour: red\n", "feeds[0].colour", "unknown key"),
        ("feeds: {}\n", "feeds", "must be a list"),
        ("fetch:\n  timeout: soon\n", "fetch.timeout", "must be a number"),
        ("elasticsearch:\n  password: hunter2\n", "elasticsearch.password", "environment only"),
        (
            "feeds:\n  - url: https://a.id/\n    id: x\n  - url: https://b.id/\n    id: x\n",
            "feeds[1].id",
            "duplicate",
        ),
        ("feeds: [\n", "line 2", "invalid YAML"),
    ],
)
def test_invalid_config_names_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    msg = str(info.value)
    assert str(p) in msg and key in msg and problem in msg
    assert "hunter2" not in msg


def test_environment_overrides_and_secrets_are_not_in_repr() -> None:
    env = {
        "NEWSMON_ES_URL": "https://es1:9200, https://es2:9200",
        "NEWSMON_ES_API_KEY": "c2VjcmV0LWtleQ==",
        "NEWSMON_ES_PASSWORD": "s3cret-pw",
        "NEWSMON_ES_USERNAME": "newsmon",
        "NEWSMON_STORE": "/var/lib/newsmon",
    }
    cfg = load_config(None, env=env)
    assert cfg.elasticsearch.urls == ("https://es1:9200", "https://es2:9200")
    assert cfg.elasticsearch.enabled and cfg.elasticsearch.verify_certs
    assert cfg.store_dir == Path("/var/lib/newsmon")
    assert "c2VjcmV0LWtleQ==" not in repr(cfg) and "s3cret-pw" not in repr(cfg)


def test_feed_id_is_stable_and_label_safe() -> None:
    assert feed_id_for("https://www.antaranews.com/rss/dunia.xml") == "antaranews.com-rss-dunia-xml"
    assert feed_id_for("http://127.0.0.1:8080/feed.xml") == "127.0.0.1-feed-xml-8080"
