"""``replenish run``: the long-running agent (what systemd starts)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from agent.config import Settings
from agent.service import AgentService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent until stopped")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    return AgentService(settings).run()
