"""``replenish status``: what the agent has stored, for households and support staff."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.app.planner import Planner
from agent.clock import cli_now
from agent.config import Settings
from agent.domain import JsonObject
from agent.errors import VendorRetryable
from agent.household.views import ConsumableView, consumable_views
from agent.storage.learned import as_json, load_learned
from agent.storage.ledger import Ledger
from agent.storage.readonly import connect_readonly
from agent.storage.rows import ConsumableRow, DeviceRow, RejectCountRow
from agent.storage.store import Store
from agent.vendor.client import CatalogItem


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="devices, consumables, last levels, rejects")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _no_catalog(sku: str) -> CatalogItem:
    raise VendorRetryable("status does not ask the vendor")


@dataclass(slots=True, frozen=True)
class StatusReport:
    """Everything ``status`` shows: stored rows plus the one dashboard view."""

    now: datetime
    devices: Sequence[DeviceRow]
    consumables: Sequence[tuple[ConsumableRow, ConsumableView]]
    rejects: Sequence[RejectCountRow]
    # agent.storage.learned.as_json: {subject: {name: {value, prior, cycles}}}
    learned: Mapping[str, Mapping[str, Mapping[str, float | int | None]]]

    def to_json(self) -> JsonObject:
        rows: list[JsonObject] = []
        for row, view in self.consumables:
            p10, p50, p90 = view.days_left
            rows.append({**_stored(row), "mode": view.mode,
                         "days_left": p50, "days_left_p10": p10, "days_left_p90": p90,
                         "confidence": view.forecast.confidence.value if view.forecast
                         else None,
                         "learned": self.learned.get(f"consumable:{view.key}", {})})
        return {
            "now": self.now.isoformat(),
            "devices": [dataclasses.asdict(d) for d in self.devices],
            "consumables": rows,
            "rejects": [dataclasses.asdict(r) for r in self.rejects],
            # Per vendor SKU (lead-time quantiles from our delivered orders).
            "learned": {k: v for k, v in self.learned.items()
                        if not k.startswith("consumable:")},
        }


def _stored(row: ConsumableRow) -> JsonObject:
    """A consumable's stored columns and count of readings, under the names (and in the
    order) ``status --json`` has always given them."""
    return {"cid": row.cid, "device_id": row.device_id, "consumable_id": row.consumable_id,
            "sku": row.sku, "unit": row.unit.value, "capacity": row.capacity,
            "last_level": row.last_level,
            "last_state": None if row.last_state is None else row.last_state.value,
            "last_ts": row.last_ts, "last_counters": row.last_counters,
            "readings": row.readings}


def collect(store: Store, ledger: Ledger, now: datetime) -> StatusReport:
    """Stored levels plus the forecast of every consumable."""
    forecasts = Planner(store, ledger, _no_catalog, vendor_name="-").outlook(now)
    devices, rows = store.devices(), store.consumables(as_of=now.timestamp())
    views = consumable_views(devices, rows, ledger, forecasts)
    return StatusReport(now, devices, list(zip(rows, views, strict=True)),
                        store.reject_counts(), as_json(load_learned(ledger.conn)))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _level(view: ConsumableView) -> str:
    if view.level is None:
        return view.state or "-"
    unit = {"percent": "%", "grams": " g", "millilitres": " ml"}.get(view.unit, f" {view.unit}")
    text = f"{view.level:g}{unit}"
    return f"{text} ({view.state})" if view.state else text


def _days(view: ConsumableView) -> str:
    """Median days to run-out, with the pessimistic (p10) one: "12 (9 worst)"."""
    p10, p50, _ = view.days_left
    if p50 is None:
        return "-"
    text = f"{p50:.0f}"
    if p10 is not None and round(p10) < round(p50):
        text += f" ({p10:.0f} worst)"
    return text


def render(data: StatusReport) -> str:
    """Human-readable tables."""
    lines = [f"{'DEVICE':<20} {'KIND':<9} {'ONLINE':<7} {'LAST SEEN':<21} LAST SEQ"]
    for d in data.devices:
        online = "?" if d.online is None else "yes" if d.online else "no"
        lines.append(
            f"{d.device_id:<20} {d.kind.value:<9} {online:<7} {_when(d.last_seen):<21} "
            f"{d.last_seq}"
        )
    if not data.devices:
        lines.append("(no devices yet)")
    lines += ["", f"{'DEVICE':<20} {'CONSUMABLE':<16} {'LEVEL':<20} {'AS OF':<21} "
              f"{'READINGS':<9} {'DAYS LEFT':<16} {'MODE':<8} CONFIDENCE"]
    for _, v in data.consumables:
        confidence = v.forecast.confidence.value if v.forecast else "-"
        lines.append(
            f"{v.device_id:<20} {v.consumable_id:<16} {_level(v):<20} "
            f"{_when(v.last_ts):<21} {v.readings:<9} {_days(v):<16} {v.mode:<8} "
            f"{confidence}"
        )
    if data.rejects:
        lines += ["", f"{'DEVICE':<20} {'REJECT REASON':<16} {'COUNT':<8} LAST"]
        for r in data.rejects:
            lines.append(
                f"{r.device_id:<20} {r.reason:<16} {r.count:<8} {_when(r.last_at)}"
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
    print(json.dumps(data.to_json(), indent=2) if args.json else render(data))
    return 0
