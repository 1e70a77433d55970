"""Who to tell about an urgent alert, and when: the pure escalation rule.

An alert (a fall, a failed sensor) goes to the first contact of its rule at once. Until
somebody acknowledges it, the contacts told so far are told again every
``renotify_after``, and every ``escalate_after`` since the alert was raised one more
contact joins them. A send that failed is retried with a short backoff: a caregiver
not reached is the failure this exists to prevent, so retries never wait for the
re-notify interval.

Pure: an :class:`AlertView` and ``now`` in, the contacts due out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

RETRY_FIRST = timedelta(seconds=2)
RETRY_MAX = timedelta(seconds=60)


@dataclass(slots=True, frozen=True, kw_only=True)
class Rule:
    """How one event type escalates: contacts in order, and the two intervals."""

    event: str
    contacts: tuple[str, ...]
    renotify_after: timedelta
    escalate_after: timedelta
    fold_window: timedelta


@dataclass(slots=True, frozen=True)
class Send:
    """One delivery attempt to one contact."""

    contact: str
    at: datetime
    ok: bool


@dataclass(slots=True, frozen=True, kw_only=True)
class AlertView:
    """What the rule needs of a stored alert."""

    raised_at: datetime
    acknowledged: bool
    sends: Sequence[Send]


def active_contacts(rule: Rule, raised_at: datetime, now: datetime) -> tuple[str, ...]:
    """The contacts an unacknowledged alert has reached by ``now`` (first one at once)."""
    if not rule.contacts:
        return ()
    step = rule.escalate_after.total_seconds()
    levels = int((now - raised_at).total_seconds() // step) if step > 0 else 0
    return rule.contacts[: min(len(rule.contacts), 1 + max(levels, 0))]


def retry_delay(failures: int) -> timedelta:
    """Backoff after ``failures`` failed sends in a row to one contact: 2, 4, 8 ... 60 s."""
    backoff: timedelta = RETRY_FIRST * (2 ** max(min(failures, 16) - 1, 0))
    return min(RETRY_MAX, backoff)


def due_contacts(rule: Rule, alert: AlertView, now: datetime) -> list[str]:
    """Contacts to send to now; empty once the alert is acknowledged."""
    if alert.acknowledged:
        return []
    due = []
    for contact in active_contacts(rule, alert.raised_at, now):
        mine = [s for s in alert.sends if s.contact == contact]
        last_ok = max((s.at for s in mine if s.ok), default=None)
        failed_since = [s for s in mine if not s.ok and (last_ok is None or s.at > last_ok)]
        if failed_since:
            last_try = max(s.at for s in failed_since)
            if now - last_try >= retry_delay(len(failed_since)):
                due.append(contact)
        elif last_ok is None or now - last_ok >= rule.renotify_after:
            due.append(contact)
    return due
