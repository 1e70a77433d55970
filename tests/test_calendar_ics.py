"""iCalendar exports shaped like real ones (Outlook/Exchange, Google) read into absences.

The fixtures in tests/fixtures/calendar/ follow the structure those services publish
(Exchange: Windows zone names with a VTIMEZONE block, line-folded UIDs, VALARMs;
Google: X-WR-TIMEZONE, all-day events, a weekly series with an EXDATE and a moved
occurrence as a RECURRENCE-ID override), as described by RFC 5545 sections 3.8.5
(recurrence), 3.8.4.4 (RECURRENCE-ID) and 3.6.5 (VTIMEZONE).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import ConsentError
from agent.sources.calendar.away import away_periods, import_ics
from agent.sources.calendar.ics import AwayRule, parse_ics
from agent.storage.ledger import Ledger

FIXTURES = Path(__file__).parent / "fixtures" / "calendar"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_weekly_count_with_exdate_in_a_windows_zone_is_three_absences() -> None:
    events = parse_ics(fixture("outlook_weekly_windows_tz.ics"))
    # FREQ=WEEKLY;COUNT=4 from Fri 2 Oct, 16 Oct excluded; the dentist is not an absence.
    assert [e.start for e in events] == [
        datetime(2026, 10, 2, 15, 0, tzinfo=UTC),   # 17:00 CEST (+02:00)
        datetime(2026, 10, 9, 15, 0, tzinfo=UTC),
        datetime(2026, 10, 23, 15, 0, tzinfo=UTC),
    ]
    assert events[0].end == datetime(2026, 10, 4, 18, 0, tzinfo=UTC)
    assert len({e.uid for e in events}) == 3  # one uid per occurrence
    assert all(e.summary == "Weekend away at the lake" for e in events)


def test_all_day_event_moved_occurrence_and_open_ended_rule_within_window() -> None:
    events = parse_ics(fixture("google_family_allday_recurring.ics"),
                       since=datetime(2026, 11, 1, tzinfo=UTC),
                       until=datetime(2027, 1, 1, tzinfo=UTC))
    christmas = [e for e in events if "Christmas" in e.summary]
    assert [(e.start, e.end) for e in christmas] == [
        (datetime(2026, 12, 24, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC))]
    shifts = [e.start for e in events if "shift" in e.summary]
    # Thursdays 18:00 New York from 5 Nov; 12 Nov moved to Fri 13; 26 Nov excluded; the
    # rule has no end, so the window bounds it. 5 Nov is EST after 1 Nov (UTC-5).
    assert shifts[:4] == [datetime(2026, 11, 5, 23, 0, tzinfo=UTC),
                          datetime(2026, 11, 13, 23, 0, tzinfo=UTC),
                          datetime(2026, 11, 19, 23, 0, tzinfo=UTC),
                          datetime(2026, 12, 3, 23, 0, tzinfo=UTC)]
    assert len(shifts) == 8  # 5,13,19 Nov; 3,10,17,24,31 Dec
    assert not any("teacher" in e.summary for e in events)


def test_a_configured_category_decides_instead_of_keywords() -> None:
    text = fixture("google_family_allday_recurring.ics")
    events = parse_ics(text, rule=AwayRule(category="family"),
                       since=datetime(2026, 11, 1, tzinfo=UTC),
                       until=datetime(2027, 1, 1, tzinfo=UTC))
    assert [e.summary for e in events] == ["Christmas at Grandma's"]


@pytest.mark.parametrize("text", [
    "", "hello world\n", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jo\r\nEND:VCARD\r\n",
    "<html><body>Sign in</body></html>", "BEGIN:VCALENDAR\r\nthis is: broken\r\n",
])
def test_a_file_that_is_not_a_calendar_is_an_error(text: str) -> None:
    with pytest.raises(ConsentError, match="iCalendar"):
        parse_ics(text)


def test_import_stores_each_occurrence_once(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "agent.db")
    now = datetime(2026, 9, 20, tzinfo=UTC)
    text = fixture("outlook_weekly_windows_tz.ics")
    assert import_ics(ledger, text, now) == (3, 0)
    assert import_ics(ledger, text, now) == (0, 3)
    periods = away_periods(ledger)
    assert [p.start for p in periods][1] - periods[0].start == timedelta(days=7)
    ledger.close()
