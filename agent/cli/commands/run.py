"""``replenish run``: the long-running agent (what systemd starts)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from agent.app.service import AgentService
from agent.config import Settings
from agent.logs import setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent until stopped")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    setup_logging(settings.log_level)
    return AgentService(settings).run()
