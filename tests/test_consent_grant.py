"""Consent that cannot work or is unsafe is refused with the reason and a fix: the pure
rule (``agent.consent.review_grant``) and ``replenish consent set`` on top of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.consent import Mandate, Mode, review_grant
from agent.storage.ledger import Ledger
from tests.test_household_cli import seed_consumables

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KNOWN = {"printer-1/toner", "printer-1/drum", "fridge-1/milk"}


def mandate(**kw: object) -> Mandate:
    args: dict[str, object] = {"skus": ("TN-2420",), "max_unit_price": Decimal("60"),
                               "monthly_budget": Decimal("100")}
    args.update(kw)
    return Mandate(**args)  # type: ignore[arg-type]


def test_a_safe_auto_mandate_passes() -> None:
    review = review_grant("printer-1/toner", Mode.AUTO, mandate(), NOW, KNOWN, {"TN-2420"})
    assert review.refusals == () and review.notes == ()
    qty_cap = mandate(monthly_budget=None, max_quantity=2)
    assert review_grant("printer-1/toner", Mode.AUTO, qty_cap, NOW, KNOWN, None).refusals == ()


def test_expiry_in_the_past_is_refused() -> None:
    past = mandate(expires_at=datetime(2020, 1, 2, tzinfo=UTC))
    [reason] = review_grant("printer-1/toner", Mode.AUTO, past, NOW, KNOWN, None).refusals
    assert "in the past" in reason and "--expires" in reason


def test_unknown_consumable_suggests_the_closest() -> None:
    [typo] = review_grant("printer-1/tonr", Mode.CONFIRM, None, NOW, KNOWN, None).refusals
    assert "unknown consumable printer-1/tonr" in typo and "did you mean printer-1/toner" in typo
    [other] = review_grant("nosuch/thing", Mode.REMIND, None, NOW, KNOWN, None).refusals
    assert "did you mean" not in other and "replenish status" in other


def test_auto_needs_a_price_cap_and_a_budget_or_quantity_cap() -> None:
    no_price = mandate(max_unit_price=None)
    [why] = review_grant("printer-1/toner", Mode.AUTO, no_price, NOW, KNOWN, None).refusals
    assert "--max-price" in why
    unlimited = mandate(monthly_budget=None, max_quantity=None)
    [why] = review_grant("printer-1/toner", Mode.AUTO, unlimited, NOW, KNOWN, None).refusals
    assert "--budget or --max-qty" in why
    # confirm asks every time: no caps needed
    bare = mandate(max_unit_price=None, monthly_budget=None)
    assert review_grant("printer-1/toner", Mode.CONFIRM, bare, NOW, KNOWN, None).refusals == ()
    assert review_grant("printer-1/toner", Mode.AUTO, None, NOW, KNOWN, None).refusals


def test_unknown_sku_refused_and_unverified_sku_noted() -> None:
    two = mandate(skus=("NOPE-1", "TN-2420"))
    review = review_grant("printer-1/toner", Mode.AUTO, two, NOW, KNOWN, set(), {"NOPE-1"})
    assert [r for r in review.refusals if "does not know SKU NOPE-1" in r]
    assert review.notes == ("SKU TN-2420 is unverified: the vendor catalog could not be "
                            "asked; the agent checks it again before every order",)


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'time_zone = "Europe/Berlin"\n[storage]\npath = "{tmp_path / "a.db"}"\n')
    seed_consumables(tmp_path / "a.db")
    return path


def run(config: Path, *argv: str) -> int:
    try:
        return main(["--config", str(config), *argv])
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)


def consents(config: Path) -> list[str]:
    ledger = Ledger.open(config.with_name("a.db"))
    try:
        return [c.consumable for c in ledger.consents()]
    finally:
        ledger.close()


def test_malformed_consumable_is_a_one_line_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "consent", "set", "toner", "confirm") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DEVICE/CONSUMABLE" in err
    assert err.splitlines()[-1].startswith("replenish consent set: error:")


@pytest.mark.parametrize("argv, needle", [
    (["printer-1/toner", "auto", "--sku", "TN-2420", "--max-price", "60", "--budget", "90",
      "--expires", "2020-01-01"], "in the past"),
    (["printer-1/tonr", "confirm"], "did you mean printer-1/toner"),
    (["printer-1/toner", "auto", "--sku", "TN-2420"], "--max-price"),
    (["printer-1/toner", "auto", "--sku", "TN-2420", "--max-price", "60"], "--budget"),
    (["printer-1/toner", "auto", "--sku", "TN-2420", "--expires", "next week"],
     "not a date"),
])
def test_refusals_exit_2_and_store_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert run(config, "consent", "set", *argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert consents(config) == []


def test_expiry_is_the_end_of_the_local_day_and_shown_so(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "consent", "set", "printer-1/toner", "auto", "--sku", "TN-2420",
               "--max-price", "60", "--max-qty", "2", "--expires", "2027-06-30") == 0
    io = capsys.readouterr()
    assert "expires 2027-06-30 end of day (Europe/Berlin)" in io.out
    assert "TN-2420 is unverified" in io.err  # no vendor token configured
    assert run(config, "consent", "show", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    # Midnight after 30 June in Berlin (CEST, UTC+2).
    assert datetime.fromisoformat(row["mandate"]["expires_at"]) == datetime(
        2027, 6, 30, 22, 0, tzinfo=UTC)
    assert run(config, "consent", "show") == 0
    assert "expires=2027-06-30 end of day" in capsys.readouterr().out


def test_expired_mandate_audit_holds_the_expiry_only(config: Path) -> None:
    ledger = Ledger.open(config.with_name("a.db"))
    try:
        ends = datetime(2026, 12, 2, tzinfo=UTC)
        ledger.set_consent("printer-1/toner", Mode.AUTO, mandate(expires_at=ends), NOW)
        assert ledger.expire_mandates(datetime(2026, 12, 3, tzinfo=UTC)) == ["printer-1/toner"]
        body = json.loads(ledger.conn.execute(
            "SELECT body FROM audit WHERE kind='mandate_expired'").fetchone()[0])
    finally:
        ledger.close()
    assert body == {"expires_at": ends.isoformat()}
