"""The ``replenish`` command line.

Each subcommand lives in its own module under :mod:`agent.cli.commands` and registers itself
there (``register(sub)``), so adding a command never touches this file. Errors map to exit
codes: 0 fine, 1 runtime failure, 2 configuration or usage error, 3 a check failed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agent import __version__
from agent.cli import commands
from agent.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from agent.errors import AgentError
from agent.logs import RedactFilter
from agent.storage.connect import use_wal_index, wal_index

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="replenish",
        description="Edge agent that forecasts consumables and reorders within your consent.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"settings file (default: $REPLENISH_CONFIG or {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)parser records itself, so the innermost one reached reports a stray flag
    with its own usage (argparse would show the top-level usage)."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _remember_parsers(child)


def _note_defaults(path: Path | None, settings: Settings) -> None:
    """Say once, on stderr, that no settings file was found and what the defaults are."""
    if path is not None:
        return
    print(f"replenish: no settings file ({DEFAULT_CONFIG_PATH} is missing; give --config "
          f"or $REPLENISH_CONFIG): using the defaults: database {settings.storage.path}, "
          f"broker {settings.mqtt.host}:{settings.mqtt.port}, vendor "
          f"{settings.vendor.base_url}", file=sys.stderr)


def config_path(args: argparse.Namespace) -> Path | None:
    """The settings file to read: the flag, then $REPLENISH_CONFIG, then the default if present."""
    if args.config is not None:
        return Path(args.config)
    if env_path := os.environ.get("REPLENISH_CONFIG"):
        return Path(env_path)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler of a one-shot command (replaced, never stacked, per call)."""


def cli_logging() -> Callable[[], None]:
    """Logging for every command but ``run``: warnings and errors only, ``event key=value``.

    A command reports its own outcome (doctor's vendor check, ``orders cancel``'s error):
    the vendor client's per-call ``vendor.call`` warnings would only repeat it in log
    syntax, so that logger is raised to ERROR here. ``run`` sets up the service's logging.
    """
    root, vendor = logging.getLogger(), logging.getLogger("agent.vendor")
    levels = root.level, vendor.level
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    handler = _CliHandler(sys.stderr)
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("replenish: %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    vendor.setLevel(logging.ERROR)

    def restore() -> None:  # main() runs many times in one process in tests and scripts
        root.removeHandler(handler)
        root.setLevel(levels[0])
        vendor.setLevel(levels[1])

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``replenish`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    restore_logging = cli_logging() if args.command != "run" else None
    loaded: list[Settings] = []
    wal_index_before = wal_index()  # main() runs many times in one process in tests

    def settings_loader() -> Settings:
        if not loaded:
            path = config_path(args)
            loaded.append(load_settings(path))
            # Before any command opens the database (agent.storage.connect).
            use_wal_index(loaded[0].storage.wal_index, owner=args.command == "run")
            _note_defaults(path, loaded[0])
        return loaded[0]

    try:
        return int(args.func(args, settings_loader))
    except AgentError as err:
        print(f"replenish: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        use_wal_index(wal_index_before[0], owner=wal_index_before[1])
        if restore_logging is not None:
            restore_logging()


if __name__ == "__main__":
    sys.exit(main())
