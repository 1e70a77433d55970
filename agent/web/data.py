"""What the pages show, read through one read-only connection per request.

The web process never migrates or writes through these objects: the connection is opened
``mode=ro`` with ``query_only`` (the agent owns the schema; WAL lets us read while it
writes). Writes go through :mod:`agent.app.actions` and the ledger on their own connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.app.actions import proposal_ref, stale_reason
from agent.app.planner import Planner
from agent.errors import AgentError, StoreError, VendorRetryable
from agent.forecast.types import Forecast
from agent.household.views import StoreRow, consumable_views
from agent.ops.doctor import open_readonly
from agent.storage.ledger import Intent, Ledger, State
from agent.storage.store import Store, consumable_key
from agent.vendor.client import CatalogItem

OUTLOOK_TTL_S = 60.0
CACHE_KIB = 1024
WARMUP_WAIT_S = 60.0
log = logging.getLogger(__name__)

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
        # The forecast queries group months of readings: SQLite's sorter would hold them
        # in memory (a transient +16 MB on a year of 50 devices); spill to a temp file.
        conn.execute("PRAGMA temp_store=FILE")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    except sqlite3.Error as err:
        raise StoreError(f"cannot read database {path}: {err}") from err
    try:
        yield ReadOnlyStore(conn), Ledger(conn)
    finally:
        conn.close()


def _no_catalog(sku: str) -> CatalogItem:
    raise VendorRetryable("the web app does not ask the vendor")


def outlook(store: Store, ledger: Ledger, now: datetime) -> dict[str, Forecast]:
    return Planner(store, ledger, _no_catalog, vendor_name="-").outlook(now)


class ForecastCache:
    """Every consumable's forecast, served from memory and refreshed in the background.

    Reading four months of history for 125 consumables takes a second or more on a small
    gateway (bench/results/footprint.md, bench/results/web.md), too slow for a page. So
    pages get the last computed forecasts at once; when they are older than ``ttl_s`` (or
    a change made here, such as an approval or an away period, marked them stale) one
    background thread recomputes them on its own read-only connection. Only the very first
    request, before :meth:`refresh` has ever finished, waits for the computation.
    """

    def __init__(self, db: Path, clock: Callable[[], datetime], ttl_s: float = OUTLOOK_TTL_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self._value: dict[str, Forecast] | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._running = False
        self._ready = threading.Event()

    def refresh(self) -> dict[str, Forecast]:
        """Recompute now (on this thread, with its own connection)."""
        with reader(self.db) as (store, ledger):
            value = outlook(store, ledger, self.clock())
        self._value, self._at = value, self.monotonic()
        self._ready.set()
        return value

    def _background(self) -> None:
        try:
            self.refresh()
        except AgentError as err:  # keep serving the last forecasts; say why once
            log.warning("web.forecast_refresh_failed error=%s", err)
        finally:
            self._running = False

    def get(self) -> dict[str, Forecast]:
        value = self._value
        if value is None:
            # The start-up warm-up may be on it already: wait for it rather than compute
            # the same forecasts twice on a small CPU.
            if self._running and self._ready.wait(WARMUP_WAIT_S) and self._value is not None:
                return self._value
            return self.refresh()
        if self.monotonic() - self._at > self.ttl_s:
            self.refresh_soon()
        return value

    def refresh_soon(self) -> None:
        """Start a background refresh unless one is running."""
        with self._lock:
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._background, name="forecast-refresh", daemon=True).start()

    def stale(self) -> None:
        self._at = float("-inf")


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


def _problems(fc: Forecast | None, online: bool | None, last_ts: float | None,
              now: datetime) -> list[str]:
    out = []
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
              forecasts: dict[str, Forecast]) -> list[Row]:
    """Every consumable, those with problems first, then soonest run-out first."""
    rows = []
    for v in consumable_views(store.devices(), store.consumables(counts=False), ledger,
                              forecasts):
        p10, p50, _ = v.days_left
        rows.append(Row(
            v.key, v.cid, v.device_id, v.consumable_id, v.level, v.unit, v.state,
            v.updated_at, p50, p10,
            v.forecast.confidence.value if v.forecast else "insufficient_data", v.mode,
            v.open_order, tuple(_problems(v.forecast, v.online, v.last_ts, now))))
    rows.sort(key=lambda r: (not r.problems, r.p10 if r.p10 is not None else 1e9, r.key))
    return rows


@dataclass(slots=True, frozen=True)
class ProposalView:
    intent: Intent
    ref: str
    stale: str | None
    expires_at: datetime


def proposals(ledger: Ledger, now: datetime, ttl: timedelta) -> list[ProposalView]:
    out = []
    for it in ledger.intents([State.PROPOSED]):
        ref = proposal_ref(it)
        out.append(ProposalView(it, ref, stale_reason(it, ref, now, ttl), it.created_at + ttl))
    return out


def find_consumable(store: Store, key: str) -> StoreRow | None:
    return next((c for c in store.consumables(counts=False) if consumable_key(c) == key), None)


def level_history(store: Store, cid: int, now: datetime,
                  days: float = 90.0) -> list[tuple[datetime, float]]:
    """Level points of the last ``days``, thinned to about :data:`PLOT_POINTS`."""
    since = now.timestamp() - days * 86400
    bucket = days * 86400 / PLOT_POINTS
    rows = store.history(cid, since, since, fine_bucket_s=bucket, coarse_bucket_s=bucket)
    return [(datetime.fromtimestamp(r.ts, UTC), r.level) for r in rows if r.level is not None]


def last_decision(ledger: Ledger, key: str) -> str | None:
    """The newest reason the agent gave for this consumable, in its own words."""
    its = [i for i in ledger.intents(None, key) if i.reason]
    return its[-1].reason if its else None
