"""A vendor that is down during a decision pass is one canonical warning line per pass."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.app.planner import Planner
from agent.consent import Mode
from agent.errors import VendorRetryable
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.vendor.client import CatalogItem
from tests.test_planner import NOW, history


def down(sku: str) -> CatalogItem:
    raise VendorRetryable("catalog: ConnectError")


def test_catalog_down_is_one_event_line_per_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, ledger = Store(tmp_path / "a.db"), Ledger.open(tmp_path / "a.db")
    try:
        history(store, {"black": 6.0, "cyan": 6.0, "magenta": 5.0, "yellow": 4.0})
        for colour in ("black", "cyan", "magenta", "yellow"):
            ledger.set_consent(f"printer-1/{colour}", Mode.CONFIRM, None, NOW)
        planner = Planner(store, ledger, down, vendor_name="shop")
        with caplog.at_level(logging.INFO, logger="agent.app.planner"):
            planner.run_once(NOW)
            planner.run_once(NOW)
    finally:
        ledger.close()
        store.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ['planner.catalog_unavailable reason="catalog: ConnectError" '
                        'skus=TONER-TN2420'] * 2
