"""The vendor conformance kit (firmware_sim.conformance) against the sandbox.

It passes against both profiles, places only test-mode orders, reports what it could
not provoke as "not exercised", and names the failing request when a vendor breaks the
contract (here: a sandbox patched to drop ``Idempotent-Replayed``, or a wrong token).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import firmware_sim.vendor.http as vendor_http
from firmware_sim.conformance import CHECKS, Kit, run_checks
from firmware_sim.conformance.runner import FAIL, NOT_EXERCISED, PASS
from firmware_sim.vendor import VendorSandbox
from tests.integration.vendor_helpers import TOKEN

pytestmark = pytest.mark.integration


def _outcomes(kit: Kit) -> dict[str, str]:
    try:
        return {r.name: r.outcome for r in run_checks(kit)}
    finally:
        kit.close()


def test_every_check_passes_against_the_full_sandbox(sandbox: VendorSandbox) -> None:
    outcomes = _outcomes(Kit(sandbox.url, TOKEN, "TN-2420"))
    assert outcomes == {c.name: PASS for c in CHECKS}
    assert sandbox.orders() and all(o.test for o in sandbox.orders())
    assert sandbox.faults.latency == 0 and sandbox.faults.rate_limit is None  # restored


def test_every_check_passes_against_the_minimal_sandbox(sandbox_minimal: VendorSandbox) -> None:
    # Client timeout below the held commit (2 s): the kit must settle unknown outcomes.
    outcomes = _outcomes(Kit(sandbox_minimal.url, TOKEN, "TN-2420", timeout=1.0))
    assert outcomes == {c.name: PASS for c in CHECKS}
    assert all(o.test for o in sandbox_minimal.orders())


def test_without_fault_knobs_409_and_429_are_not_exercised(sandbox: VendorSandbox) -> None:
    outcomes = _outcomes(Kit(sandbox.url, TOKEN, "TN-2420", sandbox_admin=False))
    assert outcomes.pop("in_flight") == outcomes.pop("rate_limit") == NOT_EXERCISED
    assert set(outcomes.values()) == {PASS}


def test_a_missing_replay_header_fails_with_the_request(
    sandbox: VendorSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vendor_http, "REPLAYED_HEADER", "X-Something-Else")
    kit = Kit(sandbox.url, TOKEN, "TN-2420")
    try:
        results = {r.name: r for r in run_checks(kit)}
    finally:
        kit.close()
    replay = results["idempotent_replay"]
    assert replay.outcome == FAIL and "Idempotent-Replayed" in replay.detail
    assert replay.request is not None and replay.request.startswith("POST /v1/orders")
    assert "Idempotency-Key: conformance-" in replay.request
    assert results["unknown_sku_replay"].outcome == FAIL
    assert results["auth"].outcome == PASS


def _cli(url: str, token_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware_sim", "conformance", "--base-url", url,
         "--token-file", str(token_file)],
        capture_output=True, text=True, timeout=120,
    )


def test_the_command_reports_per_check_and_exits_non_zero_on_failure(
    sandbox: VendorSandbox, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(TOKEN + "\n")
    bad.write_text("not-the-token\n")
    ok = _cli(sandbox.url, good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(CHECKS)} passed, 0 failed, 0 not exercised" in ok.stdout
    failed = _cli(sandbox.url, bad)
    assert failed.returncode == 1
    assert "FAIL           auth: expected 200, got 401" in failed.stdout
    assert "request: GET /v1/catalog/TN-2420 -> 401" in failed.stdout
    assert "not-the-token" not in failed.stdout and TOKEN not in failed.stdout
    missing = _cli(sandbox.url, tmp_path / "nope")
    assert missing.returncode == 2 and "cannot read token file" in missing.stderr


def test_the_pytest_module_runs_against_the_sandbox(
    sandbox_minimal: VendorSandbox, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    sandbox_minimal.commit_delay_s = 0.5
    env = {**os.environ, "VENDOR_URL": sandbox_minimal.url,
           "VENDOR_TOKEN_FILE": str(token_file), "VENDOR_TIMEOUT": "5"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
         "firmware_sim.conformance.test_conformance"],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"{len(CHECKS)} passed" in proc.stdout
