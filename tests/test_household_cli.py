"""The household's commands: consent, orders, away, audit (through ``agent.cli.main.main``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.consent import Mode, Proposal
from agent.storage.ledger import Ledger, State
from agent.storage.store import Store
from agent.wire.device import StateMessage

ICS = """BEGIN:VCALENDAR\r
BEGIN:VEVENT\r
UID:v-1\r
DTSTART;VALUE=DATE:20260801\r
DTEND;VALUE=DATE:20260815\r
SUMMARY:Summer\r
CATEGORIES:VACATION\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:v-2\r
DTSTART;TZID=Europe/Berlin:20260901T090000\r
DURATION:P2DT12H\r
SUMMARY:Away at a\r
  conference\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:v-3\r
DTSTART:20260910T090000Z\r
DTEND:20260910T100000Z\r
SUMMARY:Dentist\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "agent.db"}"\n')

    def run(*argv: str) -> tuple[int, str]:
        code = main(["--config", str(config), *argv])
        return code, capsys.readouterr().out

    run.db = tmp_path / "agent.db"  # type: ignore[attr-defined]
    seed_consumables(run.db)
    return run


def seed_consumables(db: Path) -> None:
    """Readings from the printer and the fridge: consent names consumables the agent knows."""
    fixtures = Path(__file__).parent / "fixtures"
    with Store(db) as store:
        store.write_batch([StateMessage.model_validate_json(
            (fixtures / name).read_text()) for name in ("payload_printer_exact.json",
                                                        "payload_fridge.json")], 1.0)


def test_consent_set_show_revoke(cli) -> None:  # type: ignore[no-untyped-def]
    code, _ = cli("consent", "set", "printer-1/toner", "auto", "--sku", "TN-2420",
                  "--max-price", "60", "--max-qty", "2", "--budget", "100",
                  "--expires", "2027-06-30")
    assert code == 0
    _, out = cli("consent", "show", "--json")
    [row] = json.loads(out)
    assert row["mode"] == "auto" and row["mandate"]["skus"] == ["TN-2420"]
    assert row["mandate"]["max_unit_price"] == "60"
    assert row["mandate"]["expires_at"] == "2027-07-01T00:00:00+00:00"  # end of the day
    assert cli("consent", "set", "printer-1/toner", "auto")[0] == 2  # no mandate
    code, out = cli("consent", "revoke", "printer-1/toner")
    assert code == 0 and "revoked" in out
    assert json.loads(cli("consent", "show", "--json")[1])[0]["mode"] == "monitor"


def test_orders_approve_cancel_report(cli) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger.open(cli.db)
    now = datetime.now(UTC)
    prop = Proposal("fridge-1/milk", "sandbox", "MILK-1L", 2, 1000, Decimal("1.19"), "Milk")
    a = ledger.create_intent(prop, Mode.CONFIRM, State.PROPOSED, now)
    b = ledger.create_intent(prop, Mode.CONFIRM, State.PROPOSED, now)
    ledger.close()
    code, out = cli("orders")
    assert code == 0 and "MILK-1L" in out and "proposed" in out
    assert cli("orders", "approve", str(a.id))[0] == 0
    assert cli("orders", "cancel", str(b.id))[0] == 0
    listed = {o["id"]: o["state"] for o in json.loads(cli("orders", "list", "--all",
                                                          "--json")[1])}
    assert listed == {a.id: "queued", b.id: "cancelled"}
    assert cli("orders", "approve", str(b.id))[0] == 1  # cancelled cannot be approved
    assert cli("orders", "report", str(b.id), "damaged")[0] == 1  # never delivered


def test_away_add_import_list_remove(cli) -> None:  # type: ignore[no-untyped-def]
    ics = Path(str(cli.db)).with_name("cal.ics")
    ics.write_text(ICS)
    assert cli("away", "add", "2026-12-20", "2026-12-27")[0] == 0
    code, out = cli("away", "import", str(ics))
    assert code == 0 and "imported 2" in out
    assert "imported 0" in cli("away", "import", str(ics))[1]
    rows = json.loads(cli("away", "list", "--json")[1])
    assert [(r["start"], r["end"]) for r in rows] == [
        ("2026-08-01T00:00:00+00:00", "2026-08-15T00:00:00+00:00"),
        ("2026-09-01T07:00:00+00:00", "2026-09-03T19:00:00+00:00"),
        ("2026-12-20T00:00:00+00:00", "2026-12-28T00:00:00+00:00"),
    ]
    assert rows[1]["label"] == "Away at a conference"
    assert cli("away", "remove", str(rows[0]["id"]))[0] == 0
    assert len(json.loads(cli("away", "list", "--json")[1])) == 2
    assert cli("away", "add", "2026-12-27", "2026-12-20")[0] == 1


def test_audit_verify_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    cli("consent", "set", "fridge-1/milk", "confirm")
    cli("consent", "revoke", "fridge-1/milk")
    code, out = cli("audit", "verify")
    assert code == 0 and "2 records" in out
    ledger = Ledger.open(cli.db)
    ledger.conn.execute("DROP TRIGGER audit_no_update")
    ledger.conn.execute("UPDATE audit SET body='{\"mode\":\"auto\"}' WHERE id=1")
    ledger.close()
    code, out = cli("audit", "verify", "--json")
    assert code == 3 and json.loads(out)["first_bad_id"] == 1
    assert "consent_set" in cli("audit", "show")[1]


def test_commands_act_at_the_simulated_now(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REPLENISH_NOW", "2030-01-02T03:04:05+00:00")
    cli("consent", "set", "fridge-1/milk", "confirm")
    row = json.loads(cli("consent", "show", "--json")[1])[0]
    assert row["updated_at"] == "2030-01-02T03:04:05+00:00"
