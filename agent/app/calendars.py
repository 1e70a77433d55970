"""Calendar subscriptions as the household manages them: ``replenish away subscribe``,
``unsubscribe``, ``refresh`` and ``subscriptions``, and the web app's Away page, through
these functions, so both check, store and fetch a subscription the same way.

The URL is a secret (whoever has it reads the household's calendar): it is kept in its
own 0600 file and never shown back; a listing gives names and fetch state only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.config import Settings
from agent.errors import ConsentError
from agent.sources.calendar.subscription import (
    CalendarSubscriptions,
    FetchResult,
    away_rule,
    calendar_dir,
    source_name,
)
from agent.storage.ledger import Ledger


@dataclass(slots=True, frozen=True)
class Subscription:
    """One subscribed calendar's fetch state (never its URL)."""

    name: str
    last_success: datetime | None
    failures: int
    last_error: str


def _subs(settings: Settings) -> CalendarSubscriptions:
    return CalendarSubscriptions(calendar_dir(settings))


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def states(settings: Settings) -> list[tuple[str, dict[str, object]]]:
    """Each subscription's name and stored fetch state (validators included)."""
    subs = _subs(settings)
    return [(name, subs.state(name)) for name in subs.names()]


def subscriptions(settings: Settings) -> list[Subscription]:
    out = []
    for name, st in states(settings):
        last, failures, error = st.get("last_success"), st.get("failures"), st.get("last_error")
        out.append(Subscription(name, _when(last),
                                failures if isinstance(failures, int) else 0,
                                "" if error is None else str(error)))
    return out


def subscribe(settings: Settings, name: str, url: str) -> CalendarSubscriptions:
    """Store the subscription (ConsentError for a bad name or URL); fetch it with
    :func:`refresh`."""
    subs = _subs(settings)
    subs.add(name, url)
    return subs


def unsubscribe(settings: Settings, ledger: Ledger, name: str, now: datetime) -> None:
    """Forget the subscription and the coming absences it brought (ConsentError if none)."""
    if not _subs(settings).remove(name):
        raise ConsentError(f"no calendar subscription {name}")
    ledger.sync_away(source_name(name), {}, now)


def refresh(settings: Settings, ledger: Ledger, now: datetime,
            names: list[str] | None = None) -> list[FetchResult]:
    """Fetch the named (default: every) subscribed calendar now; a failed fetch keeps the
    last good copy."""
    subs, cs = _subs(settings), settings.calendar
    return [subs.refresh(name, ledger, now, rule=away_rule(settings), timeout_s=cs.timeout_s,
                         deadline_s=cs.deadline_s)
            for name in (subs.names() if names is None else names)]
