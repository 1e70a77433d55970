"""A weekly recurring absence from a calendar stops perishable deliveries on every occurrence.

The Outlook-shaped fixture has a weekly weekend away (COUNT=4, one EXDATE): each of its
three occurrences, read through the calendar subscription's sync into the ledger, moves
a milk order that would arrive during it to the return.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.forecast import forecast
from agent.policy import plan_reorder
from agent.sources.calendar.away import away_periods
from agent.sources.calendar.subscription import CalendarSubscriptions
from agent.storage.ledger import Ledger
from tests.test_policy_timing import LEAD, MILK, falling

FIXTURE = Path(__file__).parent / "fixtures" / "calendar" / "outlook_weekly_windows_tz.ics"


def test_every_occurrence_moves_the_milk_delivery(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "agent.db")
    synced = datetime(2026, 9, 20, tzinfo=UTC)
    CalendarSubscriptions.sync("family", FIXTURE.read_text(encoding="utf-8"), ledger, synced)
    away = away_periods(ledger)
    assert len(away) == 3
    for trip in away:
        now = trip.start - timedelta(hours=12)  # milk for about half a day left, as we leave
        obs = falling(3500.0, 200.0, 17.0, t0=now - timedelta(days=17))
        home = forecast(obs, MILK, now)
        assert plan_reorder(home, MILK, now, LEAD).order_now  # would arrive during the trip
        fc = forecast(obs, MILK, now, away=away)
        plan = plan_reorder(fc, MILK, now, LEAD, away=away)
        assert not plan.order_now and "away" in plan.reason
        assert plan.expected_arrival is not None
        assert abs(plan.expected_arrival - trip.end) < timedelta(seconds=1)
    ledger.close()
