"""``replenish check-config``: validate the settings file and the secret files it names."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from agent.config import Settings, read_secret


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("check-config", help="validate the configuration and exit")
    parser.add_argument("--show", action="store_true", help="print the effective settings")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    # Reading the secrets proves they exist and are readable; their values go nowhere.
    read_secret(settings.mqtt.password_file, "mqtt.password_file")
    read_secret(settings.vendor.token_file, "vendor.token_file")
    if args.show:
        print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
    if settings.source == "<defaults>":
        # Not a silent "OK": nothing was checked but the built-in defaults.
        print("no settings file: the built-in defaults are valid (the note above says "
              "which file was looked for)")
    else:
        print(f"{settings.source}: OK")
    return 0
