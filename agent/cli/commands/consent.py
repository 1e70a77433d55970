"""``replenish consent show|set|revoke``: what the agent may do per consumable."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation

from agent.clock import cli_now, household_zone
from agent.config import Settings, read_secret
from agent.consent import Mandate, Mode, parse_consumable, review_grant
from agent.domain import JsonObject
from agent.errors import ConfigError, ConsentError, VendorError, VendorFinal
from agent.sources.calendar.away import parse_day_or_time
from agent.storage.ledger import Consent, Ledger
from agent.storage.readonly import connect_readonly
from agent.storage.store import Store, consumable_key
from agent.vendor.client import VendorClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("consent", help="show, grant or revoke ordering consent")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="consent per consumable")
    show.add_argument("consumable", nargs="?", help="DEVICE/CONSUMABLE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    grant = actions.add_parser("set", help="set the mode (and mandate for auto)")
    grant.add_argument("consumable", type=_consumable, help="DEVICE/CONSUMABLE")
    grant.add_argument("mode", type=Mode, choices=list(Mode))
    grant.add_argument("--sku", action="append", default=[], help="allowed SKU (repeatable)")
    grant.add_argument("--vendor", help="allowed vendor (default: any configured)")
    grant.add_argument("--max-price", type=_money, help="max unit price")
    grant.add_argument("--max-qty", type=int, help="max packs per order")
    grant.add_argument("--budget", type=_money, help="monthly budget")
    grant.add_argument("--expires", help="expiry (YYYY-MM-DD: the end of that day in the "
                       "household's time zone, or an ISO time)")
    revoke = actions.add_parser("revoke", help="back to monitor; pending orders cancelled")
    revoke.add_argument("consumable", type=_consumable, help="DEVICE/CONSUMABLE")
    parser.set_defaults(func=run)


def _consumable(text: str) -> str:
    # argparse turns only ArgumentTypeError into a usage error (exit 2, one line).
    try:
        return parse_consumable(text)
    except ConsentError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}")
    return value


def as_json(c: Consent) -> JsonObject:
    m = c.mandate
    return {
        "consumable": c.consumable, "mode": c.mode.value, "audit_id": c.audit_id,
        "updated_at": c.updated_at.isoformat(),
        "mandate": None if m is None else {
            "skus": list(m.skus), "vendor": m.vendor,
            "max_unit_price": None if m.max_unit_price is None else str(m.max_unit_price),
            "max_quantity": m.max_quantity,
            "monthly_budget": None if m.monthly_budget is None else str(m.monthly_budget),
            "expires_at": None if m.expires_at is None else m.expires_at.isoformat()},
    }


def show_time(iso: str | None, zone: tzinfo) -> str:
    """An instant as the household reads it: a date's end shows as that date."""
    if iso is None:
        return "-"
    local = datetime.fromisoformat(iso).astimezone(zone)
    if local.time() == time():
        return f"{(local - timedelta(days=1)).date().isoformat()} end of day"
    return local.strftime("%Y-%m-%d %H:%M")


def render(rows: Sequence[Consent], zone: tzinfo) -> str:
    lines = [f"{'CONSUMABLE':<24} {'MODE':<8} MANDATE"]
    for r in rows:
        m = r.mandate
        text = "-" if m is None else (
            f"skus={','.join(m.skus)} max_price={m.max_unit_price or '-'} "
            f"max_qty={m.max_quantity or '-'} budget={m.monthly_budget or '-'} "
            f"expires={show_time(m.expires_at.isoformat() if m.expires_at else None, zone)}")
        lines.append(f"{r.consumable:<24} {r.mode.value:<8} {text}")
    if not rows:
        lines.append("(no consent given: every consumable is monitor only)")
    elif any(r.mandate and r.mandate.expires_at for r in rows):
        lines.append(f"(times in {zone})")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    zone = household_zone(settings.time_zone)
    now = cli_now()
    if args.action == "set":
        return _set(args, settings, zone, now)
    ledger = (Ledger(connect_readonly(settings.storage.path)) if args.action == "show"
              else Ledger.open(settings.storage.path))
    try:
        if args.action == "show":
            rows = [c for c in ledger.consents() if args.consumable in (None, c.consumable)]
            print(json.dumps([as_json(c) for c in rows], indent=2) if args.json
                  else render(rows, zone))
        else:
            rid, cancelled = ledger.revoke(args.consumable, now)
            print(f"{args.consumable}: revoked, monitor only (audit {rid}); "
                  f"cancelled orders: {', '.join(map(str, cancelled)) or 'none'}")
    finally:
        ledger.close()
    return 0


def _usage(message: str) -> int:
    print(f"replenish consent set: {message}", file=sys.stderr)
    return 2


def _set(args: argparse.Namespace, settings: Settings, zone: tzinfo, now: datetime) -> int:
    try:
        expires = parse_day_or_time(args.expires, zone, end=True) if args.expires else None
        mandate = (Mandate(tuple(args.sku), args.vendor, args.max_price, args.max_qty,
                           args.budget, expires) if args.sku else None)
    except ConsentError as err:
        return _usage(str(err))
    ledger = Ledger.open(settings.storage.path)
    try:
        with Store(settings.storage.path) as store:
            known = {consumable_key(r) for r in store.consumables(counts=False)}
        known |= {c.consumable for c in ledger.consents()}
        verified, unknown = check_skus(settings, mandate.skus if mandate else ())
        review = review_grant(args.consumable, args.mode, mandate, now, known,
                              verified if mandate else None, unknown)
        if review.refusals:
            for reason in review.refusals:
                print(f"replenish consent set: refused: {reason}", file=sys.stderr)
            return 2
        for note in review.notes:
            print(f"replenish consent set: note: {note}", file=sys.stderr)
        rid = ledger.set_consent(args.consumable, args.mode, mandate, now)
    finally:
        ledger.close()
    until = (f"; expires {show_time(expires.isoformat(), zone)} ({zone})"
             if expires is not None else "")
    print(f"{args.consumable}: {args.mode.value} (audit {rid}){until}")
    return 0


def check_skus(settings: Settings, skus: Sequence[str]) -> tuple[set[str], set[str]]:
    """(SKUs the vendor catalog knows, SKUs it says it does not); the rest are unverified."""
    verified: set[str] = set()
    unknown: set[str] = set()
    if not skus:
        return verified, unknown
    try:
        token = read_secret(settings.vendor.token_file, "vendor.token_file")
    except ConfigError:
        token = None
    if token is None:
        return verified, unknown
    vs = settings.vendor
    with VendorClient(vs.base_url, token, timeout=vs.timeout_s, deadline_s=vs.deadline_s) as c:
        for sku in skus:
            try:
                c.catalog(sku)
                verified.add(sku)
            except VendorFinal as err:
                if err.status == 404:
                    unknown.add(sku)
            except VendorError:
                pass
    return verified, unknown
