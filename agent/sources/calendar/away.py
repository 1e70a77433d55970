"""Away periods: typed by the household, imported from an iCalendar file or subscribed.

Nobody is home, so nothing is used (the forecast treats away days as idle) and no
perishable should be delivered (the policy moves such orders to arrive on return).
Reading iCalendar text is :mod:`agent.sources.calendar.ics`; subscriptions to a secret
calendar URL are :mod:`agent.sources.calendar.subscription`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from agent.errors import ConsentError
from agent.forecast import Away
from agent.sources.calendar.ics import AWAY_WORDS, AwayEvent, AwayRule, parse_ics
from agent.storage.ledger import Ledger

__all__ = ["AWAY_WORDS", "AwayEvent", "AwayRule", "away_periods", "import_ics",
           "parse_day_or_time", "parse_ics"]

# Recurring events are expanded from a year back (past absences explain idle days in the
# forecast) to a year ahead.
IMPORT_BACK = timedelta(days=400)
IMPORT_AHEAD = timedelta(days=400)


def import_ics(ledger: Ledger, text: str, now: datetime, zone: tzinfo = UTC,
               rule: AwayRule | None = None) -> tuple[int, int]:
    """Store the absences of a calendar; an occurrence already imported is skipped.

    Returns (added, skipped).
    """
    added = skipped = 0
    for ev in parse_ics(text, zone, rule, since=now - IMPORT_BACK, until=now + IMPORT_AHEAD):
        uid = f"ics:{ev.uid}" if ev.uid else None
        if ledger.add_away(ev.start, ev.end, ev.summary, "ics", now, uid) is None:
            skipped += 1
        else:
            added += 1
    return added, skipped


def away_periods(ledger: Ledger) -> list[Away]:
    """Every stored away period, as the forecast and policy take them."""
    return [Away(start, end) for _, start, end, _ in ledger.away_periods()]


def parse_day_or_time(text: str, zone: tzinfo = UTC, end: bool = False) -> datetime:
    """``2026-08-01`` (a whole day; as an end it means the end of that day) or an ISO time."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime.combine(d, time(), zone)
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise ConsentError(f"not a date or ISO time: {text!r}") from err
    return when if when.tzinfo else when.replace(tzinfo=zone)
