"""``replenish run``: the long-running agent (what systemd starts)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from agent.app.service import AgentService
from agent.clock import SIM_OPT_IN_ENV, simulated_clock
from agent.config import Settings, read_secret
from agent.logs import WARNINGS_FILE, setup_logging, under_journald, warnings_file_handler
from agent.ops import broker_log_acl

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent until stopped")
    parser.add_argument(
        "--clock", metavar="URL|FILE", default=None,
        help="simulated time for tests: the vendor sandbox's /_sandbox/clock URL (sent the "
             "vendor token) or a file holding an ISO 8601 instant; needs "
             f"{SIM_OPT_IN_ENV}=1 and is refused under systemd")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    setup_logging(settings.log_level)
    if not under_journald(sys.stderr):
        # Off journald the support bundle reads warnings from this file instead.
        path = settings.storage.path.parent / WARNINGS_FILE
        try:
            logging.getLogger().addHandler(warnings_file_handler(path))
        except OSError as err:
            log.warning("logs.file_unavailable path=%s reason=%s", path, type(err).__name__)
    broker_log_acl.warn_at_start(broker_log_acl.acl_file_of(settings)[0],
                                 settings.mqtt.username)
    simulated = None
    if args.clock is not None:
        token = read_secret(settings.vendor.token_file, "vendor.token_file")
        simulated = simulated_clock(args.clock, token)
        log.warning("clock.simulated source=%s now=%s effect=not_for_a_real_household",
                    simulated.source, simulated.now().isoformat())
    return AgentService(settings, simulated=simulated).run()
