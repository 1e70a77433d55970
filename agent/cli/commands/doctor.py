"""``replenish doctor``: OK/WARN/FAIL per check with the fix; exit 0, 1 (warn) or 3 (fail)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from agent.app.simtime import doctor_check
from agent.config import Settings
from agent.errors import AgentError
from agent.ops import doctor


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check config, broker, vendor, database, clock, disk and devices",
        description="Read-only health checks. Exit code: 0 all OK, 1 warnings, 3 failures.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S",
        help="seconds to wait for the broker and the vendor (default 5)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    results = doctor.run_checks(settings_loader, doctor.Probes(timeout_s=args.timeout))
    results = with_simulated_clock(results, settings_loader)
    if args.json:
        print(json.dumps(doctor.as_json(results), indent=2))
    else:
        print(doctor.render_text(results))
    return doctor.exit_code(results)


def with_simulated_clock(results: list[doctor.CheckResult],
                         settings_loader: Callable[[], Settings]) -> list[doctor.CheckResult]:
    """Say, right after the clock check, when the agent runs on a simulated clock."""
    try:
        check = doctor_check(settings_loader().storage.path)
    except AgentError:  # unusable settings: the config check already says why
        return results
    if check is None:
        return results
    at = next((i + 1 for i, r in enumerate(results) if r.name == "clock"), len(results))
    return [*results[:at], check, *results[at:]]
