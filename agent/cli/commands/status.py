"""``replenish status``: what the agent has stored, for households and support staff."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.app.planner import Planner
from agent.clock import cli_now
from agent.config import Settings
from agent.errors import VendorRetryable
from agent.household.views import consumable_views
from agent.storage.learned import as_json, load_learned
from agent.storage.ledger import Ledger
from agent.storage.readonly import connect_readonly
from agent.storage.store import Store
from agent.vendor.client import CatalogItem


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="devices, consumables, last levels, rejects")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _no_catalog(sku: str) -> CatalogItem:
    raise VendorRetryable("status does not ask the vendor")


def collect(store: Store, ledger: Ledger, now: datetime) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data: stored levels plus the forecast."""
    forecasts = Planner(store, ledger, _no_catalog, vendor_name="-").outlook(now)
    learned = as_json(load_learned(ledger.conn))
    devices, rows = store.devices(), store.consumables()
    consumables = []
    for row, view in zip(rows, consumable_views(devices, rows, ledger, forecasts), strict=True):
        p10, p50, p90 = view.days_left
        consumables.append({**row, "mode": view.mode,
                            "days_left": p50, "days_left_p10": p10, "days_left_p90": p90,
                            "confidence": view.forecast.confidence.value if view.forecast
                            else None,
                            "learned": learned.get(f"consumable:{view.key}", {})})
    return {
        "now": now.isoformat(),
        "devices": devices,
        "consumables": consumables,
        "rejects": store.reject_counts(),
        # Per vendor SKU (lead-time quantiles from our delivered orders).
        "learned": {k: v for k, v in learned.items() if not k.startswith("consumable:")},
    }


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _level(row: dict[str, Any]) -> str:
    if row["last_level"] is None:
        return row["last_state"] or "-"
    unit = {"percent": "%", "grams": " g", "millilitres": " ml"}.get(row["unit"], f" {row['unit']}")
    text = f"{row['last_level']:g}{unit}"
    return f"{text} ({row['last_state']})" if row["last_state"] else text


def _days(row: dict[str, Any]) -> str:
    """Median days to run-out, with the pessimistic (p10) one: "12 (9 worst)"."""
    if row["days_left"] is None:
        return "-"
    text = f"{row['days_left']:.0f}"
    if row["days_left_p10"] is not None and round(row["days_left_p10"]) < round(
            row["days_left"]):
        text += f" ({row['days_left_p10']:.0f} worst)"
    return text


def render(data: dict[str, Any]) -> str:
    """Human-readable tables."""
    lines = [f"{'DEVICE':<20} {'KIND':<9} {'ONLINE':<7} {'LAST SEEN':<21} LAST SEQ"]
    for d in data["devices"]:
        online = {1: "yes", 0: "no"}.get(d["online"], "?")
        lines.append(
            f"{d['device_id']:<20} {d['kind']:<9} {online:<7} {_when(d['last_seen']):<21} "
            f"{d['last_seq']}"
        )
    if not data["devices"]:
        lines.append("(no devices yet)")
    lines += ["", f"{'DEVICE':<20} {'CONSUMABLE':<16} {'LEVEL':<20} {'AS OF':<21} "
              f"{'READINGS':<9} {'DAYS LEFT':<16} {'MODE':<8} CONFIDENCE"]
    for c in data["consumables"]:
        lines.append(
            f"{c['device_id']:<20} {c['consumable_id']:<16} {_level(c):<20} "
            f"{_when(c['last_ts']):<21} {c['readings']:<9} {_days(c):<16} {c['mode']:<8} "
            f"{c['confidence'] or '-'}"
        )
    if data["rejects"]:
        lines += ["", f"{'DEVICE':<20} {'REJECT REASON':<16} {'COUNT':<8} LAST"]
        for r in data["rejects"]:
            lines.append(
                f"{r['device_id']:<20} {r['reason']:<16} {r['count']:<8} {_when(r['last_at'])}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    now = cli_now()
    # Looking never creates the database (agent.storage.readonly).
    with Store.open_readonly(settings.storage.path) as store:
        ledger = Ledger(connect_readonly(settings.storage.path))
        try:
            data = collect(store, ledger, now)
        finally:
            ledger.close()
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0
