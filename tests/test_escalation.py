"""The escalation rule, on fixed datetimes (agent.escalation is pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.escalation import AlertView, Rule, Send, active_contacts, due_contacts, retry_delay

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
RULE = Rule(event="fall_alert", contacts=("anna", "ben", "carla"),
            renotify_after=timedelta(minutes=5), escalate_after=timedelta(minutes=10),
            fold_window=timedelta(minutes=30))


def view(*sends: Send, acknowledged: bool = False) -> AlertView:
    return AlertView(raised_at=T0, acknowledged=acknowledged, sends=sends)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_first_contact_at_once_then_one_more_per_escalation_step() -> None:
    assert active_contacts(RULE, T0, T0) == ("anna",)
    assert active_contacts(RULE, T0, at(9.9)) == ("anna",)
    assert active_contacts(RULE, T0, at(10)) == ("anna", "ben")
    assert active_contacts(RULE, T0, at(25)) == ("anna", "ben", "carla")
    assert active_contacts(RULE, T0, at(500)) == ("anna", "ben", "carla")


def test_a_new_alert_goes_to_the_first_contact() -> None:
    assert due_contacts(RULE, view(), T0) == ["anna"]


def test_reached_contacts_are_told_again_after_renotify_until_acknowledged() -> None:
    sent = Send("anna", T0, True)
    assert due_contacts(RULE, view(sent), at(4)) == []
    assert due_contacts(RULE, view(sent), at(5)) == ["anna"]
    assert due_contacts(RULE, view(sent, acknowledged=True), at(5)) == []


def test_escalation_adds_the_next_contact_and_keeps_the_first() -> None:
    sends = (Send("anna", T0, True), Send("anna", at(5), True))
    assert due_contacts(RULE, view(*sends), at(10)) == ["anna", "ben"]
    more = (*sends, Send("anna", at(10), True), Send("ben", at(10), True))
    assert due_contacts(RULE, view(*more), at(12)) == []


def test_a_failed_send_is_retried_with_backoff_not_after_renotify() -> None:
    failed = Send("anna", T0, False)
    assert due_contacts(RULE, view(failed), T0 + timedelta(seconds=1)) == []
    assert due_contacts(RULE, view(failed), T0 + timedelta(seconds=2)) == ["anna"]
    twice = (failed, Send("anna", T0 + timedelta(seconds=2), False))
    assert due_contacts(RULE, view(*twice), T0 + timedelta(seconds=5)) == []
    assert due_contacts(RULE, view(*twice), T0 + timedelta(seconds=6)) == ["anna"]


def test_retry_backoff_is_bounded() -> None:
    assert retry_delay(1) == timedelta(seconds=2)
    assert retry_delay(4) == timedelta(seconds=16)
    assert retry_delay(1000) == timedelta(seconds=60)


def test_an_unreachable_first_contact_does_not_hold_back_escalation() -> None:
    failing = tuple(Send("anna", at(m), False) for m in range(0, 11))
    assert "ben" in due_contacts(RULE, view(*failing), at(10))
