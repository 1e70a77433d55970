"""agent/app/actions.py: the approve/cancel/snooze path the web app and the CLI share."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.app import actions
from agent.cli.main import main
from agent.storage.ledger import Ledger, State
from tests.vendor_fake import T0, FakeVendor
from tests.web_helpers import seed

TTL = timedelta(hours=48)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    seed(tmp_path / "agent.db", T0, FakeVendor().client().catalog)
    return Ledger.open(tmp_path / "agent.db")


def test_approve_is_idempotent_and_pins_the_terms(ledger: Ledger) -> None:
    [it] = ledger.intents()
    now = it.created_at + timedelta(minutes=1)
    assert not actions.approve(ledger, it.id, "p1-deadbeef", now, TTL).ok
    ref = actions.proposal_ref(it)
    first = actions.approve(ledger, it.id, ref, now, TTL)
    again = actions.approve(ledger, it.id, ref, now, TTL)
    assert first.ok and again.ok and "already approved" in again.message
    assert [i.state for i in ledger.intents()] == [State.QUEUED]
    kinds = [r.kind for r in ledger.audit_records()]
    assert kinds.count("order_approved") == 1 and kinds.count("household_command_refused") == 1


def test_expired_proposal_is_refused_and_audited(ledger: Ledger) -> None:
    [it] = ledger.intents()
    out = actions.approve(ledger, it.id, None, it.created_at + TTL, TTL, source="cli")
    assert not out.ok and "expired" in out.message
    refused = [r.fields() for r in ledger.audit_records()
               if r.kind == "household_command_refused"]
    assert refused[-1]["source"] == "cli" and ledger.intent(it.id).state is State.PROPOSED


def test_snooze_declines_until_a_time_and_cancel_needs_a_vendor_when_placed(
        ledger: Ledger) -> None:
    [it] = ledger.intents()
    now = it.created_at
    out = actions.snooze(ledger, it.id, now, now + timedelta(days=3))
    assert out.ok and ledger.intent(it.id).state is State.CANCELLED
    assert ledger.snoozed_until(it.consumable) == now + timedelta(days=3)
    assert not actions.snooze(ledger, it.id, now).ok  # no longer a proposal
    assert not actions.cancel(ledger, 999, now).ok


def test_cli_approve_goes_through_the_same_checks(tmp_path: Path, ledger: Ledger,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    [it] = ledger.intents()
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "agent.db"}"\n')
    monkeypatch.setenv("REPLENISH_NOW", (it.created_at + TTL).isoformat())
    assert main(["--config", str(config), "orders", "approve", str(it.id)]) != 0
    assert "expired" in capsys.readouterr().err
    monkeypatch.setenv("REPLENISH_NOW", (it.created_at + timedelta(hours=1)).isoformat())
    assert main(["--config", str(config), "orders", "approve", str(it.id)]) == 0
    assert "approved" in capsys.readouterr().out
    assert ledger.intent(it.id).state is State.QUEUED
