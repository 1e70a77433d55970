"""Away periods: typed by the household or imported from an iCalendar file.

Nobody is home, so nothing is used (the forecast treats away days as idle) and no
perishable should be delivered (the policy moves such orders to arrive on return).

The iCalendar reader is deliberately small: it unfolds lines and reads VEVENT ``UID``,
``DTSTART``, ``DTEND``/``DURATION``, ``SUMMARY`` and ``CATEGORIES``; an event counts as
an absence when its summary or categories mention away, vacation, holiday or travel.
Date-only values are whole days (``DTEND`` exclusive, as RFC 5545 says); ``TZID`` is
resolved with :mod:`zoneinfo`; floating times use the caller's zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConsentError
from agent.forecast import Away
from agent.storage.ledger import Ledger

AWAY_WORDS = ("away", "vacation", "holiday", "travel", "urlaub", "trip")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


@dataclass(slots=True, frozen=True)
class AwayEvent:
    uid: str | None
    start: datetime
    end: datetime
    summary: str


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def _split(line: str) -> tuple[str, dict[str, str], str]:
    head, _, value = line.partition(":")
    name, *params = head.split(";")
    opts = {}
    for p in params:
        k, _, v = p.partition("=")
        opts[k.upper()] = v.strip('"')
    return name.upper(), opts, value


def _when(value: str, params: dict[str, str], zone: tzinfo) -> tuple[datetime, bool]:
    """A DTSTART/DTEND value as an aware datetime, and whether it was a whole date."""
    value = value.strip()
    if params.get("VALUE") == "DATE" or re.fullmatch(r"\d{8}", value):
        d = datetime.strptime(value, "%Y%m%d").date()
        return datetime.combine(d, time(), zone), True
    if value.endswith("Z"):
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), False
    tz: tzinfo = zone
    if "TZID" in params:
        try:
            tz = ZoneInfo(params["TZID"])
        except (ZoneInfoNotFoundError, ValueError):
            tz = zone
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz), False


def _duration(value: str) -> timedelta:
    m = _DURATION.match(value.strip())
    if not m:
        raise ValueError(f"bad DURATION {value!r}")
    w, d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def _is_away(summary: str, categories: str) -> bool:
    text = f"{summary} {categories}".lower()
    return any(word in text for word in AWAY_WORDS)


def parse_ics(text: str, zone: tzinfo = UTC) -> list[AwayEvent]:
    """The absences in an iCalendar text (events not marked away are skipped)."""
    events: list[AwayEvent] = []
    current: dict[str, tuple[dict[str, str], str]] | None = None
    nested = 0  # inside a VALARM (or other component) of the event: not its properties
    for line in _unfold(text):
        name, params, value = _split(line)
        if name == "BEGIN" and value.upper() == "VEVENT":
            current, nested = {}, 0
        elif name == "BEGIN" and current is not None:
            nested += 1
        elif name == "END" and value.upper() == "VEVENT" and current is not None:
            event = _event(current, zone)
            if event is not None:
                events.append(event)
            current = None
        elif name == "END" and current is not None:
            nested = max(0, nested - 1)
        elif current is not None and not nested and name not in current:
            current[name] = (params, value)
    return events


def _event(props: dict[str, tuple[dict[str, str], str]], zone: tzinfo) -> AwayEvent | None:
    summary = props.get("SUMMARY", ({}, ""))[1].replace("\\,", ",").strip()
    categories = props.get("CATEGORIES", ({}, ""))[1]
    if "DTSTART" not in props or not _is_away(summary, categories):
        return None
    try:
        start, whole = _when(props["DTSTART"][1], props["DTSTART"][0], zone)
        if "DTEND" in props:
            end, _ = _when(props["DTEND"][1], props["DTEND"][0], zone)
        elif "DURATION" in props:
            end = start + _duration(props["DURATION"][1])
        else:
            end = start + timedelta(days=1 if whole else 0)
    except ValueError as err:
        raise ConsentError(f"calendar event {summary!r}: {err}") from err
    if end <= start:
        return None
    uid = props.get("UID", ({}, ""))[1].strip() or None
    return AwayEvent(uid, start.astimezone(UTC), end.astimezone(UTC), summary)


def import_ics(ledger: Ledger, text: str, now: datetime,
               zone: tzinfo = UTC) -> tuple[int, int]:
    """Store the absences of a calendar; an event already imported (same UID) is skipped.

    Returns (added, skipped).
    """
    added = skipped = 0
    for ev in parse_ics(text, zone):
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
