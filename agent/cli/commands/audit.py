"""``replenish audit verify|show``: the hash-chained record of consent and orders."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime

from agent.config import Settings
from agent.domain import JsonObject
from agent.storage.ledger import Ledger
from agent.storage.readonly import connect_readonly

CHECK_FAILED = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="verify or show the audit trail")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check every link of the hash chain")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="list audit records")
    show.add_argument("--limit", type=int, default=50, help="newest N records (0: all)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    ledger = Ledger(connect_readonly(settings.storage.path))  # never creates the file
    try:
        if args.action == "verify":
            result = ledger.verify_audit()
            if args.json:
                print(json.dumps({"ok": result.ok, "checked": result.checked,
                                  "head": result.head, "first_bad_id": result.first_bad_id,
                                  "problem": result.problem}, indent=2))
            elif result.ok:
                print(f"audit chain OK: {result.checked} records, head {result.head}")
            else:
                print(f"audit chain BROKEN at record {result.first_bad_id}: {result.problem} "
                      f"({result.checked} records before it verified)")
            return 0 if result.ok else CHECK_FAILED
        records = ledger.audit_records()
        if args.limit:
            records = records[-args.limit:]
        rows: list[JsonObject] = [
            {"id": r.id, "ts": datetime.fromtimestamp(r.ts, UTC).isoformat(), "kind": r.kind,
             "consumable": r.consumable, "body": r.fields(), "hash": r.hash}
            for r in records]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in records:
                when = datetime.fromtimestamp(r.ts, UTC).isoformat()
                print(f"{r.id:>5} {when[:19]} {r.kind:<20} "
                      f"{r.consumable or '-':<22} {json.dumps(r.fields(), sort_keys=True)}")
        return 0
    finally:
        ledger.close()
