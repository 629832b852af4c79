"""The ``newsmon`` command line.

Each command lives in its own module that exposes ``register(subparsers)``; the
subparser sets ``func`` to a callable taking the parsed arguments and returning the
exit code. Environment variables are read here, at the edge, and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "pipelines.run_cmd",  # run, backfill, search, feeds check, status
    "pipelines.topics_cmd",  # classify, topics check
    "pipelines.dedup_cmd",  # dedup
    "pipelines.es_cmd",  # setup elasticsearch|kibana, deadletter list|replay
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsmon", description="Indonesian news monitoring pipeline")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:  # Beam is chatty at INFO (type hints, state cache); keep its warnings
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # Beam's GCP extras are not installed, and need not be
        handler.addFilter(lambda record: not record.getMessage().startswith("apitools not found"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(max(args.verbose, getattr(args, "default_verbosity", 0)))
    from connectors.sink import SinkError
    from pipelines.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"newsmon: configuration error: {exc}", file=sys.stderr)
        return 2
    except SinkError as exc:  # search engine down, refusing, or misconfigured: one line, not a traceback
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
