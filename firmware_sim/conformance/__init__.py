"""Conformance kit: checks a vendor's API against what replenish-agent relies on.

``replenish-sim conformance --base-url URL --token-file FILE [--sku SKU]`` runs the
checks in :mod:`firmware_sim.conformance.checks` and reports pass, fail (with the
request that failed) or "not exercised" per check; the same checks run as a pytest
module (:mod:`firmware_sim.conformance.test_conformance`). Only test-mode orders are
placed. See docs/vendor-testing.md.
"""

from firmware_sim.conformance.checks import CHECKS, Check
from firmware_sim.conformance.kit import CheckFailed, Kit, NotExercised
from firmware_sim.conformance.runner import Result, add_arguments, main, run_checks

__all__ = [
    "CHECKS",
    "Check",
    "CheckFailed",
    "Kit",
    "NotExercised",
    "Result",
    "add_arguments",
    "main",
    "run_checks",
]
