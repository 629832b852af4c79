"""The ``newsmon`` command line.

Each command lives in its own module that exposes ``register(subparsers)``; the
subparser sets ``func`` to a callable taking the parsed arguments and returning the
exit code. Environment variables are read at this edge, by the configuration loader
(``pipelines.config.from_environment``), with one deliberate exception: code that runs on a
distributed worker (the search-engine clients of ``Resources.open_sink``, the shared dedup
store, the worker metrics exporter) reads its secrets and metrics address from the worker's
own environment, because secrets are never pickled into the pipeline graph.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "pipelines.run_cmd",  # run, backfill, feeds check
    "pipelines.query_cmd",  # search, status
    "pipelines.topics_cmd",  # classify, topics check
    "pipelines.dedup_cmd",  # dedup
    "pipelines.es_cmd",  # setup elasticsearch|kibana, deadletter list|replay
)


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0-65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535 (0: any free port), got {value}")
    return value


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("newsmon")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsmon", description="Indonesian news monitoring pipeline")
    parser.add_argument("--version", action="version", version=f"newsmon {version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:  # Beam is chatty at INFO (type hints, state cache); keep its warnings
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # Beam's GCP extras are not installed, and need not be
        handler.addFilter(lambda record: not record.getMessage().startswith("apitools not found"))
    # ... and Beam logs that on the root logger itself when a command imports it late (dedup)
    logging.getLogger().addFilter(lambda record: not record.getMessage().startswith("apitools not found"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        hint = getattr(args, "dash_hint", None)
        dashed = hint and any(e.startswith("-") for e in extra)
        parser.error(f"unrecognized arguments: {' '.join(extra)}" + (f"\n{hint}" if dashed else ""))
    args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(max(args.verbose, getattr(args, "default_verbosity", 0)))
    from connectors.sink import SinkError
    from pipelines.config import ConfigError

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows up here, not in the interpreter's exit
        return code
    except ConfigError as exc:
        print(f"newsmon: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    except SinkError as exc:  # search engine down, refusing, or misconfigured: one line, not a traceback
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except _user_errors() as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe a problem with the user's setup in one line (no traceback).

    StoreError comes from the one store opener (missing, a file, not writable, locked); the
    dead-letter and dedup stores' open errors carry their path and reason the same way.
    """
    from connectors.deadletter import DeadLetterError
    from connectors.metrics import MetricsServeError
    from connectors.sqlite import StoreError
    from transforms.dedupstate import DedupStoreError

    return (StoreError, MetricsServeError, DeadLetterError, DedupStoreError)


def _stdout_closed() -> int:
    """The reader of our stdout went away (``newsmon search ... | head``): stop quietly.

    Point stdout at /dev/null so the interpreter's final flush does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
