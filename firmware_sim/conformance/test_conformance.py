"""The conformance checks as a pytest module a vendor runs against its own API::

    VENDOR_URL=https://api.example VENDOR_TOKEN_FILE=token VENDOR_SKU=TN-2420 \\
        python -m pytest --pyargs firmware_sim.conformance.test_conformance

Options come from the environment (``VENDOR_URL``, ``VENDOR_TOKEN_FILE``, and optional
``VENDOR_SKU``, ``VENDOR_TIMEOUT``, ``VENDOR_SETTLE_S``), so no conftest is needed. A
check that cannot be provoked on the vendor (409 needs a slow server, 429 a limited
one) is reported as skipped with the reason. Only test-mode orders are placed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.conformance.checks import CHECKS, Check
from firmware_sim.conformance.kit import DEFAULT_SETTLE_S, Kit
from firmware_sim.conformance.runner import FAIL, NOT_EXERCISED, run_check


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    url, token_file = os.environ.get("VENDOR_URL"), os.environ.get("VENDOR_TOKEN_FILE")
    if not url or not token_file:
        pytest.skip("set VENDOR_URL and VENDOR_TOKEN_FILE to run the vendor conformance kit")
    token = Path(token_file).read_text().strip()
    vendor = Kit(
        url,
        token,
        os.environ.get("VENDOR_SKU", "TN-2420"),
        timeout=float(os.environ.get("VENDOR_TIMEOUT", "10")),
        settle_s=float(os.environ.get("VENDOR_SETTLE_S", str(DEFAULT_SETTLE_S))),
    )
    yield vendor
    vendor.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_vendor(kit: Kit, check: Check) -> None:
    result = run_check(kit, check)
    if result.outcome == NOT_EXERCISED:
        pytest.skip(f"not exercised: {result.detail}")
    assert result.outcome != FAIL, f"{result.detail}\nrequest: {result.request}"
