"""What the pages show, read through one read-only connection per request.

The web process never migrates or writes through these objects: the connection is opened
``mode=ro`` with ``query_only`` (the agent owns the schema; WAL lets us read while it
writes). Writes go through :mod:`agent.app.actions` and the ledger on their own connection.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.app.actions import proposal_ref, stale_reason
from agent.errors import StoreError
from agent.household.views import consumable_views
from agent.ops.doctor import open_readonly
from agent.storage.forecasts import StoredForecast, load_forecasts
from agent.storage.learned import LearnedRow, load_learned
from agent.storage.ledger import Intent, Ledger, State
from agent.storage.rows import ConsumableRow
from agent.storage.store import Store, consumable_key

CACHE_KIB = 1024
# A forecast older than this means the agent's decision pass has stopped (it runs every
# 15 minutes by default): the home page says so instead of showing old numbers as new.
FORECAST_STALE_S = 6 * 3600

# A year of five-minute readings is ~100k points: the plot shows at most this many.
PLOT_POINTS = 400


class ReadOnlyStore(Store):
    """A :class:`Store` on an existing read-only connection (no mkdir, no migration)."""

    def __init__(self, conn: sqlite3.Connection) -> None:  # noqa: D107
        self.path = "<read-only>"
        self.rejects_kept = 0
        self.conn = conn


@contextmanager
def reader(path: Path) -> Iterator[tuple[ReadOnlyStore, Ledger]]:
    """A store and a ledger sharing one read-only connection."""
    try:
        conn = open_readonly(path)
        # The plot's query groups 90 days of readings: SQLite's sorter would hold them in
        # memory; spill to a temp file.
        conn.execute("PRAGMA temp_store=FILE")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    except sqlite3.Error as err:
        raise StoreError(f"cannot read database {path}: {err}") from err
    try:
        yield ReadOnlyStore(conn), Ledger(conn)
    finally:
        conn.close()


def forecasts(store: Store, key: str | None = None) -> dict[str, StoredForecast]:
    """The agent's forecasts from its newest decision pass (of one consumable).

    The web app never recomputes them: reading four months of history for every
    consumable took seconds and tens of MB on a year of 50 devices, and the agent has just
    done it (with what it learned, which a recomputation here would not know).
    """
    try:
        return load_forecasts(store.conn, key)
    except sqlite3.OperationalError as err:
        # Upgraded package, agent not restarted yet: its migration adds the table.
        if "no such table" not in str(err):
            raise
        return {}


@dataclass(slots=True, frozen=True)
class Row:
    """One consumable on the home page."""

    key: str
    cid: int
    device_id: str
    consumable_id: str
    level: float | None
    unit: str
    state: str | None
    last_ts: datetime | None
    p50: float | None
    p10: float | None
    confidence: str
    mode: str
    next_order: Intent | None
    problems: tuple[str, ...]


def _problems(fc: StoredForecast | None, online: bool | None, last_ts: float | None,
              now: datetime) -> list[str]:
    out = []
    if fc is not None and (now - fc.computed_at).total_seconds() > FORECAST_STALE_S:
        out.append(f"forecast from {fc.computed_at:%Y-%m-%d %H:%M} UTC: is the agent running?")
    if online is False:
        out.append("device offline")
    if last_ts is None or now.timestamp() - last_ts > 24 * 3600:
        out.append("no reading for a day")
    if fc is not None and fc.low_signal:
        out.append("the device says it is low")
    p10 = fc.time_to_empty_days[0] if fc else None
    if p10 is not None and p10 < 3:
        out.append("may run out within 3 days")
    return out


def home_rows(store: Store, ledger: Ledger, now: datetime,
              forecasts: dict[str, StoredForecast]) -> list[Row]:
    """Every consumable, those with problems first, then soonest run-out first."""
    rows = []
    shown = store.consumables(counts=False, as_of=now.timestamp())
    for v in consumable_views(store.devices(), shown, ledger, forecasts):
        p10, p50, _ = v.days_left
        rows.append(Row(
            v.key, v.cid, v.device_id, v.consumable_id, v.level, v.unit, v.state,
            v.updated_at, p50, p10,
            v.forecast.confidence.value if v.forecast else "not forecast yet", v.mode,
            v.open_order, tuple(_problems(forecasts.get(v.key), v.online, v.last_ts, now))))
    rows.sort(key=lambda r: (not r.problems, r.p10 if r.p10 is not None else 1e9, r.key))
    return rows


@dataclass(slots=True, frozen=True)
class ProposalView:
    intent: Intent
    ref: str
    stale: str | None
    expires_at: datetime
    # (likely, latest) arrival if approved now: the lead time the decision used.
    arrival: tuple[datetime, datetime] | None


def proposals(ledger: Ledger, now: datetime, ttl: timedelta) -> list[ProposalView]:
    out = []
    for it in ledger.intents([State.PROPOSED]):
        ref = proposal_ref(it)
        out.append(ProposalView(it, ref, stale_reason(it, ref, now, ttl), it.created_at + ttl,
                                it.arrival_if_sent(now)))
    return out


def expected_arrival(it: Intent, now: datetime) -> datetime | None:
    """The vendor's date once it gave one, else sending time plus the stored lead time."""
    if it.expected_delivery is not None:
        return it.expected_delivery
    sent = it.first_sent_at or max(now, it.send_after or now)
    estimate = it.arrival_if_sent(sent)
    return estimate[0] if estimate else None


def find_consumable(store: Store, key: str, now: datetime) -> ConsumableRow | None:
    return next((c for c in store.consumables(counts=False, as_of=now.timestamp())
                 if consumable_key(c) == key), None)


def level_history(store: Store, cid: int, now: datetime,
                  days: float = 90.0) -> list[tuple[datetime, float]]:
    """Level points of the last ``days``, thinned to about :data:`PLOT_POINTS`."""
    since = now.timestamp() - days * 86400
    bucket = days * 86400 / PLOT_POINTS
    rows = store.history(cid, since, since, fine_bucket_s=bucket, coarse_bucket_s=bucket)
    return [(datetime.fromtimestamp(r.ts, UTC), r.level) for r in rows if r.level is not None]


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _learned_line(row: LearnedRow, unit: str) -> tuple[str, str] | None:
    """One learned value in plain words (label, sentence); None for names we do not know."""
    since = f" (it started from {_g(row.prior)})" if row.prior is not None else ""
    n = row.cycles
    if row.value is None:
        return None
    if row.name == "yield_per_pack":
        return ("Yield", f"{_g(row.value)} pages (or counts) per pack, from {n} pack"
                f"{'s' if n != 1 else ''} used up{since}")
    if row.name == "low_level":
        return ("LOW warning", f"the device says LOW at about {_g(row.value)} {unit}, seen "
                f"{n} time{'s' if n != 1 else ''}{since}")
    if row.name == "realised_service":
        target = f" against a target of {row.prior:.0%}" if row.prior is not None else ""
        return ("Service", f"{row.value:.0%} of our {n} deliveries arrived before it ran "
                f"out{target}")
    if row.name == "planned_service":
        return ("Planning for", f"{row.value:.1%} of orders arriving before it runs out "
                "(raised when deliveries came late)")
    if row.name == "burst_ratio" and row.value > 0:
        return ("Busy weeks", f"use in its busy weeks strays about {math.sqrt(row.value):.1f}x "
                "a typical day's use a day, so it is reordered earlier")
    if row.name.startswith("lead_time_p"):
        q = row.name.removeprefix("lead_time_p")
        return (f"Lead time (p{q})", f"{row.value:.1f} days from sending to delivery, "
                f"from {n} delivered order{'s' if n != 1 else ''}")
    return None


def learned(store: Store, key: str, sku: str | None, unit: str) -> list[tuple[str, str]]:
    """What the decision pass learned about this consumable (and its product), in words."""
    rows = load_learned(store.conn, f"consumable:{key}")
    if sku:
        rows += load_learned(store.conn, f"sku:{sku}")
    return [line for r in rows if (line := _learned_line(r, unit)) is not None]


def last_decision(ledger: Ledger, key: str) -> str | None:
    """The newest reason the agent gave for this consumable, in its own words."""
    its = [i for i in ledger.intents(None, key) if i.reason]
    return its[-1].reason if its else None
