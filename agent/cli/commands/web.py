"""``replenish web`` (serve the household pages) and ``replenish web set-password``."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from agent.config import Settings
from agent.errors import ConfigError
from agent.logs import setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("web", help="serve the household web app (or set its password)")
    parser.add_argument("--host", help="address to bind (default: [web] host)")
    parser.add_argument("--port", type=int, help="port (default: [web] port)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    pw = actions.add_parser("set-password", help="set the household (or viewer) password")
    pw.add_argument("--viewer", action="store_true",
                    help="the read-only password for family members")
    pw.add_argument("--stdin", action="store_true",
                    help="read the password from standard input (for scripts)")
    actions.add_parser("url", help="print the address the web app listens on")
    parser.set_defaults(func=run, action=None)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New web password: ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("<input>", "password", "the two passwords differ")
    return first


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(
            update={"web": settings.web.model_copy(update=overrides)})
    from agent.web import auth, server  # noqa: PLC0415 - web deps only for this command

    if args.action == "set-password":
        path = server.paths(settings).password
        auth.set_password(path, _read_password(args.stdin),
                          "viewer" if args.viewer else "household")
        print(f"{'viewer' if args.viewer else 'household'} password stored in {path} (0600)")
        return 0
    if args.action == "url":
        print(server.url(settings))
        return 0
    setup_logging(settings.log_level)
    server.serve(settings)
    return 0
