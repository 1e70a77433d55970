"""``replenish consent show|set|revoke``: what the agent may do per consumable."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.clock import cli_now
from agent.config import Settings
from agent.consent import Mandate, Mode, parse_consumable
from agent.errors import ConsentError
from agent.sources.calendar.away import parse_day_or_time
from agent.storage.ledger import Consent, Ledger


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("consent", help="show, grant or revoke ordering consent")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="consent per consumable")
    show.add_argument("consumable", nargs="?", help="DEVICE/CONSUMABLE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    grant = actions.add_parser("set", help="set the mode (and mandate for auto)")
    grant.add_argument("consumable", type=parse_consumable, help="DEVICE/CONSUMABLE")
    grant.add_argument("mode", type=Mode, choices=list(Mode))
    grant.add_argument("--sku", action="append", default=[], help="allowed SKU (repeatable)")
    grant.add_argument("--vendor", help="allowed vendor (default: any configured)")
    grant.add_argument("--max-price", type=_money, help="max unit price")
    grant.add_argument("--max-qty", type=int, help="max packs per order")
    grant.add_argument("--budget", type=_money, help="monthly budget")
    grant.add_argument("--expires", help="expiry date (YYYY-MM-DD: end of that day, UTC)")
    revoke = actions.add_parser("revoke", help="back to monitor; pending orders cancelled")
    revoke.add_argument("consumable", type=parse_consumable, help="DEVICE/CONSUMABLE")
    parser.set_defaults(func=run)


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}")
    return value


def as_json(c: Consent) -> dict[str, Any]:
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


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'CONSUMABLE':<24} {'MODE':<8} MANDATE"]
    for r in rows:
        m = r["mandate"]
        text = "-" if m is None else (
            f"skus={','.join(m['skus'])} max_price={m['max_unit_price'] or '-'} "
            f"max_qty={m['max_quantity'] or '-'} budget={m['monthly_budget'] or '-'} "
            f"expires={(m['expires_at'] or '-')[:16]}")
        lines.append(f"{r['consumable']:<24} {r['mode']:<8} {text}")
    if not rows:
        lines.append("(no consent given: every consumable is monitor only)")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    now = cli_now()
    ledger = Ledger.open(settings.storage.path)
    try:
        if args.action == "show":
            rows = [as_json(c) for c in ledger.consents()
                    if args.consumable in (None, c.consumable)]
            print(json.dumps(rows, indent=2) if args.json else render(rows))
        elif args.action == "set":
            mandate = None
            if args.sku:
                expires = (parse_day_or_time(args.expires, end=True) if args.expires
                           else None)
                mandate = Mandate(tuple(args.sku), args.vendor, args.max_price, args.max_qty,
                                  args.budget, expires)
            elif args.mode is Mode.AUTO:
                raise ConsentError("auto needs a mandate: give at least one --sku")
            rid = ledger.set_consent(args.consumable, args.mode, mandate, now)
            print(f"{args.consumable}: {args.mode.value} (audit {rid})")
        else:
            rid, cancelled = ledger.revoke(args.consumable, now)
            print(f"{args.consumable}: revoked, monitor only (audit {rid}); "
                  f"cancelled orders: {', '.join(map(str, cancelled)) or 'none'}")
    finally:
        ledger.close()
    return 0
