"""Absences in an iCalendar text, read with ``icalendar`` and ``recurring-ical-events``.

The libraries do what a hand-written reader got wrong: ``RRULE`` (a weekly absence with
``COUNT=4`` is four absences, not one), ``EXDATE`` and moved occurrences
(``RECURRENCE-ID``), ``VTIMEZONE`` blocks and the Windows zone names Outlook and
Exchange export (``W. Europe Standard Time``), all-day events (``DTEND`` exclusive, as
RFC 5545 says) and ``DURATION``. Floating times use the caller's zone.

An event counts as an absence when its summary or categories mention one of the
keywords, or, when the household configured a category, when it carries that category.
Recurring events are expanded only inside a window: an open-ended weekly rule has no
last occurrence.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import icalendar

from agent.errors import ConsentError

AWAY_WORDS = ("away", "vacation", "holiday", "travel", "urlaub", "trip")
# A whole calendar's expansion is bounded: a daily rule without end over a long window
# would otherwise produce tens of thousands of occurrences on a Raspberry Pi.
MAX_OCCURRENCES = 5_000
DEFAULT_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(slots=True, frozen=True)
class AwayEvent:
    """One absence (one occurrence of a recurring event); ``uid`` is unique per occurrence."""

    uid: str | None
    start: datetime
    end: datetime
    summary: str


@dataclass(slots=True, frozen=True)
class AwayRule:
    """What counts as away: keywords in summary or categories, or one configured category."""

    keywords: Sequence[str] = AWAY_WORDS
    category: str | None = None

    def matches(self, summary: str, categories: Iterable[str]) -> bool:
        cats = [c.strip().lower() for c in categories]
        if self.category is not None:
            return self.category.strip().lower() in cats
        text = " ".join([summary.lower(), *cats])
        return any(word.lower() in text for word in self.keywords)


def load_calendar(text: str) -> icalendar.Calendar:
    """Parse a calendar; anything that is not a ``VCALENDAR`` is a one-line error."""
    if "BEGIN:VCALENDAR" not in text[:4096].upper():
        raise ConsentError("not an iCalendar file (no BEGIN:VCALENDAR)")
    # Imported here: the web process uses this package's date parsing and rules but only
    # parses a calendar when the household subscribes one; icalendar and its
    # dependencies are ~3.5 MB of its footprint (bench/results/web.md).
    import icalendar  # noqa: PLC0415

    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError) as err:
        raise ConsentError(f"not a valid iCalendar file: {str(err)[:120]}") from err
    if not isinstance(cal, icalendar.Calendar) or cal.name != "VCALENDAR":
        raise ConsentError("not an iCalendar file (no VCALENDAR component)")
    return cal


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return datetime.combine(value, time(), zone)


def _categories(event: Any) -> list[str]:
    try:
        return [str(c) for c in event.categories]
    except (ValueError, TypeError, AttributeError):
        return []


def _occurrence_uid(event: Any, start: datetime, recurring: set[str]) -> str | None:
    uid = str(event.get("UID", "")).strip()
    if not uid:
        return None
    # Every occurrence of a recurring event shares the UID: the start makes it unique, so
    # re-reading the same calendar finds the same occurrences again.
    if uid in recurring:
        return f"{uid}@{start.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return uid


def _prepare(cal: icalendar.Calendar) -> set[str]:
    """Drop events that end before they start; the UIDs of recurring series.

    The expansion library quietly swaps an inverted DTSTART/DTEND; such an event is a
    mistake in the calendar, not an absence, so it goes before expansion.
    """
    recurring: set[str] = set()
    kept = []
    for comp in cal.subcomponents:
        if comp.name == "VEVENT":
            if comp.get("RRULE") is not None or comp.get("RECURRENCE-ID") is not None:
                recurring.add(str(comp.get("UID", "")).strip())
            start, end = comp.get("DTSTART"), comp.get("DTEND")
            if start is not None and end is not None:
                a, b = _aware(start.dt, UTC), _aware(end.dt, UTC)
                if b < a:
                    continue
        kept.append(comp)
    cal.subcomponents[:] = kept
    return recurring


def parse_ics(text: str, zone: tzinfo = UTC, rule: AwayRule | None = None,
              since: datetime = DEFAULT_SINCE,
              until: datetime = DEFAULT_UNTIL) -> list[AwayEvent]:
    """The absences in an iCalendar text that overlap ``[since, until)``."""
    import recurring_ical_events  # noqa: PLC0415 - see load_calendar

    rule = rule or AwayRule()
    cal = load_calendar(text)
    events: list[AwayEvent] = []
    try:
        recurring = _prepare(cal)
        query = recurring_ical_events.of(cal, skip_bad_series=False)
        for ev in itertools.islice(query.between(since, until), MAX_OCCURRENCES):
            summary = str(ev.get("SUMMARY", "")).strip()
            if not rule.matches(summary, _categories(ev)):
                continue
            start = _aware(ev.start, zone)
            end = _aware(ev.end, zone) if ev.get("DTEND") or ev.get("DURATION") else (
                start + timedelta(days=0 if isinstance(ev.start, datetime) else 1))
            if end <= start:
                continue
            events.append(AwayEvent(_occurrence_uid(ev, start, recurring), start.astimezone(UTC),
                                    end.astimezone(UTC), summary))
    except ConsentError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConsentError(f"calendar event cannot be read: {str(err)[:160]}") from err
    events.sort(key=lambda e: (e.start, e.end))
    return events
