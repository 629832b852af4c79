"""``newsmon setup elasticsearch|kibana`` and ``newsmon deadletter list|replay``.

Connection settings come from ``pipelines.config.load_config`` (file, then ``NEWSMON_ES_*`` /
``NEWSMON_KIBANA_URL`` environment variables). Exit codes: 0 done, 1 the cluster/Kibana
refused or could not be reached (message on stderr, secrets redacted), 2 configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.config import Config, ConfigError, load_config


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _store_dir(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.store) if args.store else cfg.store_dir / "deadletter"


def _need_es(cfg: Config) -> None:
    if not cfg.elasticsearch.enabled:
        raise ConfigError(
            "environment",
            "NEWSMON_ES_URL",
            "set it, or NEWSMON_OPENSEARCH_URL for OpenSearch (or elasticsearch.urls in the config file)",
        )


def setup_elasticsearch_cmd(args: argparse.Namespace) -> int:
    from connectors.elasticsearch import setup_elasticsearch
    from connectors.sink import SinkError

    cfg = _config(args)
    _need_es(cfg)
    es = cfg.elasticsearch
    if getattr(args, "setup_command", None) == "opensearch" and es.engine != "opensearch":
        es = dataclasses.replace(es, engine="opensearch")
    try:
        for line in setup_elasticsearch(es):
            print(line)
    except SinkError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1
    return 0


def _topic_names(cfg: Config) -> list[str]:
    from connectors.kibana import DEFAULT_TOPICS

    try:
        from transforms.topics import load_topics
    except ImportError:  # topics module absent: the shipped names
        return list(DEFAULT_TOPICS)
    return [t.name for t in load_topics(cfg.topics_dir)]


def setup_kibana_cmd(args: argparse.Namespace) -> int:
    from connectors.kibana import (
        KibanaError,
        data_view_id,
        import_ndjson,
        import_saved_objects,
        saved_objects,
        set_default_data_view,
        to_ndjson,
    )

    cfg = _config(args)
    if not cfg.elasticsearch.kibana_url:
        raise ConfigError("environment", "NEWSMON_KIBANA_URL", "set it to the Kibana base URL")
    try:
        if args.file:
            report = import_saved_objects(
                cfg.elasticsearch, [Path(f) for f in args.file], overwrite=not args.no_overwrite
            )
        else:
            objects = saved_objects(_topic_names(cfg), prefix=cfg.elasticsearch.index_prefix)
            report = import_ndjson(
                cfg.elasticsearch, to_ndjson(objects).encode("utf-8"), overwrite=not args.no_overwrite
            )
            if report.ok and not report.errors:
                view = data_view_id(cfg.elasticsearch.index_prefix)
                set_default_data_view(cfg.elasticsearch, view)
                print(f"default data view: {view} (unless another was already the default)")
    except KibanaError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1
    for line in report.describe():
        print(line)
    return 0 if report.ok and not report.errors else 1


def deadletter_list_cmd(args: argparse.Namespace) -> int:
    from connectors.deadletter import DeadLetterStore

    cfg = _config(args)
    store = DeadLetterStore(_store_dir(args, cfg))
    entries = list(store.entries(status=None if args.all else "pending"))
    for e in entries:
        if args.json:
            print(json.dumps(e.summary(), ensure_ascii=False))
        else:
            print(
                f"{e.seq:>5} {e.status:<8} x{e.attempts} {e.last_at} {e.article_id[:12]} {e.document.get('url')}"
            )
            print(f"      {e.reason}")
    if not args.json:
        print(f"{len(entries)} {'entries' if args.all else 'pending entries'} in {store.directory}")
    store.close()
    return 0


def deadletter_replay_cmd(args: argparse.Namespace) -> int:
    from connectors.deadletter import DeadLetterStore
    from connectors.elasticsearch import ElasticsearchSink
    from connectors.sink import SinkError

    cfg = _config(args)
    _need_es(cfg)
    directory = _store_dir(args, cfg)
    store = DeadLetterStore(directory)
    try:
        sink = ElasticsearchSink(cfg.elasticsearch, deadletter_dir=directory)
        report = store.replay(sink.write, sink=sink.name)
        sink.close()
    except SinkError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    out: dict[str, Any] = {
        "replayed": len(report.replayed),
        "still_rejected": len(report.still_rejected),
        "retry_later": len(report.retry),
    }
    print(json.dumps(out))
    return 0 if not report.still_rejected and not report.retry else 1


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $NEWSMON_CONFIG or the shipped defaults)")

    setup = subparsers.add_parser("setup", help="install Elasticsearch/OpenSearch templates or Kibana objects")
    setup_sub = setup.add_subparsers(dest="setup_command", metavar="TARGET", required=True)
    es = setup_sub.add_parser(
        "elasticsearch", parents=[common], help="install the index template (idempotent)"
    )
    es.set_defaults(func=setup_elasticsearch_cmd)
    os_ = setup_sub.add_parser(
        "opensearch", parents=[common], help="the same for OpenSearch (NEWSMON_OPENSEARCH_URL or elasticsearch.engine)"
    )
    os_.set_defaults(func=setup_elasticsearch_cmd)
    kb = setup_sub.add_parser(
        "kibana", parents=[common], help="import the data view, saved searches and dashboard"
    )
    kb.add_argument(
        "--file", action="append", help="import these NDJSON files instead of the generated objects"
    )
    kb.add_argument("--no-overwrite", action="store_true", help="keep objects that already exist")
    kb.set_defaults(func=setup_kibana_cmd)

    dl = subparsers.add_parser("deadletter", help="documents the sink rejected permanently")
    dl_sub = dl.add_subparsers(dest="deadletter_command", metavar="ACTION", required=True)
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", help="dead-letter directory (default: <store_dir>/deadletter)")
    ls = dl_sub.add_parser("list", parents=[common, store], help="list dead-lettered documents")
    ls.add_argument("--all", action="store_true", help="include replayed entries")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=deadletter_list_cmd)
    rp = dl_sub.add_parser(
        "replay", parents=[common, store], help="send pending entries to Elasticsearch again"
    )
    rp.set_defaults(func=deadletter_replay_cmd)
