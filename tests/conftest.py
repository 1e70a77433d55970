"""Fixtures most unit tests share: a ledger on a fresh SQLite file, the fake vendor and
an outbox dispatcher over both (a fixed 10 s backoff keeps retries predictable)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app.dispatcher import Dispatcher
from agent.storage.ledger import Ledger
from tests.vendor_fake import FakeVendor


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(tmp_path / "agent.db")
    yield led
    led.close()


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor()


@pytest.fixture
def dispatcher(ledger: Ledger, vendor: FakeVendor) -> Dispatcher:
    return Dispatcher(ledger, vendor.client(), vendor_name="shop",
                      backoff=lambda attempt, after: max(after or 0.0, 10.0))
