"""``replenish alerts list|ack|test``: urgent device events and the caregivers told."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from agent.clock import cli_now
from agent.config import Settings
from agent.errors import ConfigError
from agent.storage.alerts import AlertLedger, AlertRow

TEST_DEVICE = "gateway"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("alerts", help="urgent alerts: list, acknowledge, test the chain")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("list", help="recent alerts, open ones first")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    ack = actions.add_parser("ack", help="acknowledge an alert: stops re-notifying")
    ack.add_argument("id", type=int, help="alert id (from the message or `alerts list`)")
    ack.add_argument("--by", default="cli", help="who acknowledges (recorded in the audit)")
    test = actions.add_parser("test", help="send a test alert to every contact, via the agent")
    test.add_argument("--wait", type=float, default=60.0,
                      help="seconds to wait for the running agent to deliver it")
    parser.set_defaults(func=run)


def _row(a: AlertRow, sent: int, failed: int) -> dict[str, object]:
    return {"id": a.id, "type": a.type, "device": a.device_id,
            "raised_at": a.raised_at.isoformat(), "events": a.events,
            "acknowledged_at": a.acked_at.isoformat() if a.acked_at else None,
            "acknowledged_by": a.acked_by, "sent": sent, "failed": failed}


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    ledger = AlertLedger.open(settings.storage.path)
    try:
        if args.action == "list":
            alerts = sorted(ledger.alerts(), key=lambda a: (a.acked_at is not None, -a.id))
            sends = ledger.sends(a.id for a in alerts)
            rows = [_row(a, sum(s.ok for s in sends[a.id]), sum(not s.ok for s in sends[a.id]))
                    for a in alerts]
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print("(no alerts)")
            for r in [] if args.json else rows:
                state = f"acknowledged by {r['acknowledged_by']}" if r["acknowledged_at"] \
                    else "OPEN"
                print(f"{r['id']:>4} {str(r['raised_at'])[:16]} {r['type']:<14} "
                      f"{r['device']:<20} sent {r['sent']}, failed {r['failed']}  {state}")
        elif args.action == "ack":
            alert = ledger.acknowledge(args.id, args.by, cli_now())
            print(f"alert {alert.id} acknowledged by {alert.acked_by}; no more messages")
        else:
            return _test(ledger, settings, args.wait)
    finally:
        ledger.close()
    return 0


def _test(ledger: AlertLedger, settings: Settings, wait: float) -> int:
    """Queue a test alert; the running agent delivers it like a real one."""
    contacts = [c.name for c in settings.alerts.contacts]
    if not settings.alerts.rules or not contacts:
        raise ConfigError(settings.source, "alerts.rules",
                          "no alert rules or contacts configured (see docs/alerts.md)")
    alert_id = ledger.raise_test(TEST_DEVICE, cli_now())
    print(f"test alert {alert_id} queued for {', '.join(contacts)}; waiting for the agent")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sends = ledger.sends([alert_id])[alert_id]
        reached = {s.contact for s in sends if s.ok}
        if reached >= set(contacts):
            print(f"delivered to {', '.join(sorted(reached))}")
            return 0
        time.sleep(0.5)
    sends = ledger.sends([alert_id])[alert_id]
    for contact in contacts:
        mine = [s for s in sends if s.contact == contact]
        if any(s.ok for s in mine):
            status = "delivered"
        elif mine:
            status = f"FAILED ({len(mine)} attempts)"
        else:
            status = "not attempted (is the agent running?)"
        print(f"  {contact}: {status}")
    return 3
