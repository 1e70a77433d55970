"""``replenish orders [list|approve|cancel|now|report|reminders]``: the household's controls."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta, tzinfo

from agent.app import actions, factory
from agent.app.dispatcher import Dispatcher
from agent.app.order_now import Outcome, order_now_for
from agent.clock import cli_now, household_zone
from agent.config import Settings
from agent.consent import parse_consumable
from agent.errors import ConfigError, ConsentError
from agent.storage.ledger import FEEDBACK_KINDS, OPEN, Intent, Ledger
from agent.storage.readonly import connect_readonly
from agent.storage.store import Store
from agent.vendor.client import VendorClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("orders", help="list, approve, cancel or report orders")
    # `orders --json` lists (list is the default action); SUPPRESS keeps `orders --json list`
    # from being reset by the subcommand's own default.
    parser.add_argument("--all", action="store_true", help="include finished orders")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="orders and proposals (default)")
    listing.add_argument("--all", action="store_true", default=argparse.SUPPRESS,
                         help="include finished orders")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="machine-readable output")
    approve = actions.add_parser("approve", help="approve a proposed order")
    approve.add_argument("id", type=int)
    cancel = actions.add_parser("cancel", help="cancel (before sending, or in the vendor's "
                                               "cancel window)")
    cancel.add_argument("id", type=int)
    report = actions.add_parser("report", help="report a problem with a delivered order")
    report.add_argument("id", type=int)
    report.add_argument("kind", choices=FEEDBACK_KINDS)
    now = actions.add_parser("now", help="order a refill now (one tap): placed inside an "
                                         "auto mandate, else proposed with its price")
    now.add_argument("consumable", type=_consumable, help="DEVICE/CONSUMABLE")
    now.add_argument("--qty", type=int, default=None, help="packs (default 1)")
    now.add_argument("--sku", default=None, help="the product (default: the mandate's first "
                                                 "SKU, or the one the device reports)")
    reminders = actions.add_parser("reminders", help="reminders and care tips")
    reminders.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")
    parser.set_defaults(func=run, action=None)


def _consumable(text: str) -> str:
    try:
        return parse_consumable(text)
    except ConsentError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _when(value: datetime | None, zone: tzinfo = UTC) -> str:
    return "-" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def render(intents: list[Intent], zone: tzinfo = UTC) -> str:
    """The orders table; times in the household's zone (named below the table)."""
    lines = [f"{'ID':>4} {'STATE':<10} {'CONSUMABLE':<22} {'PRODUCT':<26} {'QTY':>3} "
             f"{'PRICE':>9} {'SENDS/SENT':<16} {'DELIVERY':<16} NOTE"]
    for i in intents:
        product = f"{i.sku} {i.name or ''}".strip()[:26]
        sends = i.first_sent_at or i.send_after
        lines.append(
            f"{i.id:>4} {i.state.value:<10} {i.consumable:<22} {product:<26} {i.quantity:>3} "
            f"{i.unit_price:>9} {_when(sends, zone):<16} "
            f"{_when(i.delivered_at or i.expected_delivery, zone):<16} {i.reason or ''}")
    if not intents:
        lines.append("(no orders)")
    else:
        lines.append(f"(times in {zone})")
    return "\n".join(lines)


def _vendor(settings: Settings, why: str) -> VendorClient:
    client = factory.vendor_client(settings)
    if client is None:
        raise ConfigError(settings.source, "vendor.token_file", why)
    return client


def _dispatcher(settings: Settings, ledger: Ledger, stack: ExitStack) -> Dispatcher:
    """Built only when a placed order must be cancelled at the vendor; closed on exit."""
    client = stack.enter_context(closing(_vendor(settings, "needed to cancel at the vendor")))
    return factory.dispatcher(settings, ledger, client)


def _order_now(settings: Settings, ledger: Ledger, args: argparse.Namespace,
               now: datetime) -> int:
    with closing(_vendor(settings, "needed to look up the product's price")) as client, \
            closing(Store(settings.storage.path)) as store:
        result = order_now_for(store, ledger, client.catalog, args.consumable, via="cli",
                               vendor_name=settings.vendor.name, now=now, quantity=args.qty,
                               sku=args.sku)
    print(result.message)
    return 0 if result.outcome in (Outcome.QUEUED, Outcome.PROPOSED,
                                   Outcome.ALREADY_ON_ORDER) else 2


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    zone = household_zone(settings.time_zone)
    now = cli_now()
    action = args.action or "list"
    # Listing never creates the database; approve, cancel and report write to it.
    ledger = (Ledger(connect_readonly(settings.storage.path)) if action in ("list", "reminders")
              else Ledger.open(settings.storage.path))
    stack = ExitStack()
    try:
        if action == "list":
            intents = ledger.intents(None if args.all else OPEN)
            print(json.dumps([i.to_json() for i in intents], indent=2) if args.json
                  else render(intents, zone))
        elif action in ("approve", "cancel"):
            # The same checks and ledger calls as the web app and the MQTT commands.
            ttl = timedelta(hours=settings.household.proposal_ttl_h)
            out = (actions.approve(ledger, args.id, None, now, ttl, source="cli")
                   if action == "approve" else
                   actions.cancel(ledger, args.id, now,
                                  lambda: _dispatcher(settings, ledger, stack), source="cli"))
            if not out.ok:
                raise ConsentError(out.message)
            print(out.message)
        elif action == "now":
            return _order_now(settings, ledger, args, now)
        elif action == "report":
            rid = ledger.report(args.id, args.kind, now)
            extra = ("; that product is blocked, choose a new one with replenish consent set"
                     if args.kind == "wrong-item" else "")
            print(f"order {args.id}: {args.kind} recorded (audit {rid}){extra}")
        else:
            rows = ledger.reminders()
            if args.json:
                print(json.dumps([r.to_json() for r in rows], indent=2))
            for r in [] if args.json else rows:
                when = datetime.fromtimestamp(r.ts, UTC)
                print(f"{_when(when, zone)} {r.consumable:<22} {r.message}")
    finally:
        stack.close()
        ledger.close()
    return 0
