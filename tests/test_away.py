"""The small iCalendar reader: which events are absences, and their exact times."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.errors import ConsentError
from agent.sources.calendar.away import parse_day_or_time, parse_ics


def cal(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e}END:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n"


def test_all_day_event_end_is_exclusive() -> None:
    [ev] = parse_ics(cal("UID:1\r\nDTSTART;VALUE=DATE:20260801\r\n"
                         "DTEND;VALUE=DATE:20260803\r\nSUMMARY:Vacation\r\n"))
    assert (ev.start, ev.end) == (datetime(2026, 8, 1, tzinfo=UTC),
                                  datetime(2026, 8, 3, tzinfo=UTC))
    assert ev.uid == "1"


def test_all_day_without_end_is_one_day() -> None:
    [ev] = parse_ics(cal("DTSTART;VALUE=DATE:20260801\r\nSUMMARY:Holiday\r\n"))
    assert ev.end - ev.start == datetime(2026, 8, 2) - datetime(2026, 8, 1)


def test_tzid_duration_folding_and_categories() -> None:
    [ev] = parse_ics(cal("DTSTART;TZID=Europe/Berlin:20260901T090000\r\nDURATION:PT3H\r\n"
                         "SUMMARY:Conference in\r\n  Lyon\r\nCATEGORIES:TRAVEL,WORK\r\n"))
    assert ev.start == datetime(2026, 9, 1, 7, 0, tzinfo=UTC)
    assert ev.end == datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
    assert ev.summary == "Conference in Lyon"


def test_floating_time_uses_the_given_zone() -> None:
    [ev] = parse_ics(cal("DTSTART:20260901T090000\r\nDTEND:20260902T090000\r\n"
                         "SUMMARY:Away\r\n"), zone=ZoneInfo("America/New_York"))
    assert ev.start == datetime(2026, 9, 1, 13, 0, tzinfo=UTC)


def test_ordinary_events_and_alarm_text_are_ignored() -> None:
    events = parse_ics(cal(
        "DTSTART:20260910T090000Z\r\nDTEND:20260910T100000Z\r\nSUMMARY:Dentist\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nSUMMARY:vacation reminder\r\nEND:VALARM\r\n",
        "DTSTART:20260910T090000Z\r\nDTEND:20260910T080000Z\r\nSUMMARY:Away\r\n"))
    assert events == []  # a dentist visit; an away event that ends before it starts


def test_bad_values_are_reported() -> None:
    with pytest.raises(ConsentError):
        parse_ics(cal("DTSTART:2026-09-10\r\nSUMMARY:Vacation\r\n"))
    with pytest.raises(ConsentError):
        parse_day_or_time("next tuesday")
    assert parse_day_or_time("2026-08-01", end=True) == datetime(2026, 8, 2, tzinfo=UTC)
