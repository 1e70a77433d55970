"""Run the conformance checks and report them (the ``replenish-sim conformance`` command)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from firmware_sim.conformance.checks import CHECKS, Check
from firmware_sim.conformance.kit import DEFAULT_SETTLE_S, CheckFailed, Kit, NotExercised

PASS, FAIL, NOT_EXERCISED = "pass", "fail", "not exercised"


@dataclass(frozen=True, slots=True)
class Result:
    """One check's outcome; ``request`` is the request that failed (fail only)."""

    name: str
    outcome: str
    detail: str
    request: str | None = None


def run_check(kit: Kit, check: Check) -> Result:
    try:
        return Result(check.name, PASS, check.run(kit))
    except NotExercised as why:
        return Result(check.name, NOT_EXERCISED, str(why))
    except CheckFailed as err:
        return Result(check.name, FAIL, str(err), err.request)
    except httpx.HTTPError as err:
        return Result(check.name, FAIL, f"{type(err).__name__}: {err}", kit.last)


def run_checks(kit: Kit, checks: Sequence[Check] = CHECKS) -> list[Result]:
    """Every check in order (each one's failure does not stop the others)."""
    return [run_check(kit, check) for check in checks]


def report(results: Sequence[Result], out: TextIO) -> None:
    for r in results:
        out.write(f"{r.outcome.upper():<14} {r.name}: {r.detail}\n")
        if r.request:
            out.write(f"{'':<15}request: {r.request}\n")
    counts = {o: sum(r.outcome == o for r in results) for o in (PASS, FAIL, NOT_EXERCISED)}
    out.write(f"{counts[PASS]} passed, {counts[FAIL]} failed, "
              f"{counts[NOT_EXERCISED]} not exercised\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", required=True, help="the vendor API, e.g. https://...")
    parser.add_argument("--token-file", type=Path, required=True,
                        help="file holding the bearer token (never echoed)")
    parser.add_argument("--sku", default="TN-2420",
                        help="a SKU the vendor sells (test orders only)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per request before it counts as 'outcome unknown'")
    parser.add_argument("--settle-s", type=float, default=DEFAULT_SETTLE_S,
                        help="how long an order POST may stay unsettled")
    parser.add_argument("--no-sandbox-admin", action="store_true",
                        help="never use the replenish sandbox's /_sandbox fault knobs")


def main(args: Sequence[str] | argparse.Namespace | None = None) -> int:
    """Exit 0 when no check failed, 1 when one did, 2 on a usage error."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="replenish-sim conformance")
        add_arguments(parser)
        args = parser.parse_args(args)
    try:
        token = args.token_file.read_text().strip()
    except OSError as err:
        sys.stderr.write(f"replenish-sim conformance: cannot read token file: {err.strerror}\n")
        return 2
    if not token:
        sys.stderr.write("replenish-sim conformance: the token file is empty\n")
        return 2
    kit = Kit(args.base_url, token, args.sku, timeout=args.timeout, settle_s=args.settle_s,
              sandbox_admin=False if args.no_sandbox_admin else None)
    try:
        results = run_checks(kit)
    finally:
        kit.close()
    report(results, sys.stdout)
    return 1 if any(r.outcome == FAIL for r in results) else 0
