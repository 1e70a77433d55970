"""``consent set`` asks the real vendor sandbox over HTTP whether the mandate's SKUs exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.storage.ledger import Ledger
from firmware_sim.vendor import VendorSandbox
from tests.test_household_cli import seed_consumables

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
TOKEN = "consent-catalog-token"
AUTO = ["consent", "set", "printer-1/toner", "auto", "--max-price", "80", "--max-qty", "1"]


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=TOKEN, seed=3) as sb:
        yield sb


def config_for(tmp_path: Path, base_url: str) -> Path:
    (tmp_path / "token").write_text(TOKEN)
    path = tmp_path / "agent.toml"
    path.write_text(f'[storage]\npath = "{tmp_path / "a.db"}"\n[vendor]\n'
                    f'base_url = "{base_url}"\ntoken_file = "{tmp_path / "token"}"\n'
                    "timeout_s = 1.0\ndeadline_s = 2.0\n")
    seed_consumables(tmp_path / "a.db")
    return path


def stored_skus(tmp_path: Path) -> list[str]:
    ledger = Ledger.open(tmp_path / "a.db")
    try:
        return [s for c in ledger.consents() if c.mandate for s in c.mandate.skus]
    finally:
        ledger.close()


def test_unknown_sku_is_refused_and_a_known_one_accepted(
    sandbox: VendorSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, sandbox.url)
    assert main(["--config", str(config), *AUTO, "--sku", "NOPE-1"]) == 2
    assert "vendor catalog does not know SKU NOPE-1" in capsys.readouterr().err
    assert stored_skus(tmp_path) == []
    assert main(["--config", str(config), *AUTO, "--sku", "TN-2420"]) == 0
    io = capsys.readouterr()
    assert "unverified" not in io.err and "auto" in io.out
    assert stored_skus(tmp_path) == ["TN-2420"]


def test_unreachable_vendor_marks_the_sku_unverified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, "http://127.0.0.1:9")  # nothing listens on discard
    assert main(["--config", str(config), *AUTO, "--sku", "TN-2420"]) == 0
    assert "SKU TN-2420 is unverified" in capsys.readouterr().err
    assert stored_skus(tmp_path) == ["TN-2420"]
