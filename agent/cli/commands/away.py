"""``replenish away add|list|remove|import|subscribe|unsubscribe|refresh|subscriptions``:
when nobody is home."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path

from agent.app import calendars
from agent.clock import cli_now, household_zone
from agent.config import Settings
from agent.domain import JsonObject
from agent.errors import ConsentError
from agent.sources.calendar.away import AwayRule, import_ics, parse_day_or_time
from agent.sources.calendar.subscription import away_rule
from agent.storage.ledger import Ledger
from agent.storage.readonly import connect_readonly


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("away", help="away periods (no use, no perishable deliveries)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a period: FROM TO (dates are whole days)")
    add.add_argument("start", metavar="FROM", help="YYYY-MM-DD or ISO time")
    add.add_argument("end", metavar="TO", help="YYYY-MM-DD (inclusive) or ISO time")
    add.add_argument("--label", default="away")
    listing = actions.add_parser("list", help="stored away periods")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    remove = actions.add_parser("remove", help="remove a period by id")
    remove.add_argument("id", type=int)
    imp = actions.add_parser("import", help="import away/vacation events from an .ics file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--category", help="only events with this category are absences")
    subscribe = actions.add_parser(
        "subscribe", help="follow a secret iCalendar URL ('-' reads it from stdin)")
    subscribe.add_argument("url", metavar="URL")
    subscribe.add_argument("--name", default="calendar", help="name of this subscription")
    subscribe.add_argument("--no-fetch", action="store_true", help="do not fetch it now")
    unsubscribe = actions.add_parser("unsubscribe", help="forget a subscription")
    unsubscribe.add_argument("name")
    actions.add_parser("refresh", help="fetch every subscribed calendar now")
    subs = actions.add_parser("subscriptions", help="subscribed calendars and their state")
    subs.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _local(iso: str, zone: tzinfo) -> str:
    return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _calendar_text(path: Path) -> str | None:
    """The file's text if it is an iCalendar file; else say why on stderr (None)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        print(f"replenish away import: cannot read {path}: {type(err).__name__}",
              file=sys.stderr)
        return None
    if "BEGIN:VCALENDAR" not in text.lstrip("\ufeff")[:4096].upper():
        # "imported 0 away periods" from a wrong file would look like an empty calendar.
        print(f"replenish away import: {path} is not an iCalendar (.ics) file "
              "(no BEGIN:VCALENDAR); export the calendar as .ics and import that",
              file=sys.stderr)
        return None
    return text


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    now = cli_now()
    # Whole days are the household's days: midnight where it lives, not UTC midnight.
    zone = household_zone(settings.time_zone)
    text: str | None = ""
    if args.action == "import":
        text = _calendar_text(args.file)
        if text is None:
            return 2
    ledger = (Ledger(connect_readonly(settings.storage.path)) if args.action == "list"
              else Ledger.open(settings.storage.path))
    try:
        if args.action == "add":
            start = parse_day_or_time(args.start, zone)
            end = parse_day_or_time(args.end, zone, end=True)
            away_id = ledger.add_away(start, end, args.label, "cli", now)
            print(f"away {away_id}: {start.isoformat()} .. {end.isoformat()}")
        elif args.action == "list":
            periods = ledger.away_periods()
            rows: list[JsonObject] = [
                {"id": i, "start": s.isoformat(), "end": e.isoformat(), "label": label}
                for i, s, e, label in periods]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for i, s, e, label in periods:
                    print(f"{i:>4} {_local(s.isoformat(), zone)} .. "
                          f"{_local(e.isoformat(), zone)}  {label}")
                if not rows:
                    print("(no away periods)")
                else:
                    print(f"(times in {zone})")
        elif args.action == "remove":
            if not ledger.remove_away(args.id, now):
                raise ConsentError(f"no away period {args.id}")
            print(f"away {args.id} removed")
        elif args.action == "import":
            rule = away_rule(settings)
            if args.category:
                rule = AwayRule(rule.keywords, args.category)
            added, skipped = import_ics(ledger, text or "", now, zone, rule=rule)
            print(f"imported {added} away periods ({skipped} already known)")
        else:
            return _subscriptions(args, settings, ledger, now)
    finally:
        ledger.close()
    return 0


def _subscriptions(args: argparse.Namespace, settings: Settings, ledger: Ledger,
                   now: datetime) -> int:
    # The web app's Away page goes through the same agent.app.calendars functions.
    if args.action == "subscribe":
        url = sys.stdin.readline() if args.url == "-" else args.url
        subs = calendars.subscribe(settings, args.name, url)
        print(f"calendar {args.name} subscribed (URL kept in {subs.dir}, mode 0600)")
        names: list[str] | None = [] if args.no_fetch else [args.name]
    elif args.action == "unsubscribe":
        calendars.unsubscribe(settings, ledger, args.name, now)
        print(f"calendar {args.name} unsubscribed; its coming absences removed")
        return 0
    elif args.action == "subscriptions":
        rows = [{"name": n, **st} for n, st in calendars.states(settings)]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in [] if args.json else rows:
            print(f"{r['name']}: last success {r.get('last_success', 'never')}, "
                  f"failures {r.get('failures', 0)} {r.get('last_error', '')}".rstrip())
        if not rows and not args.json:
            print("(no calendar subscriptions)")
        return 0
    else:
        names = None
    failed = 0
    for res in calendars.refresh(settings, ledger, now, names):
        if res.status == "failed":
            failed += 1
            print(f"calendar {res.name}: fetch failed ({res.reason}); last good copy kept")
        else:
            print(f"calendar {res.name}: {res.status}, {res.added} absences added, "
                  f"{res.removed} removed")
    return 1 if failed else 0
