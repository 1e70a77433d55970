"""Typed rows and batch bookkeeping of the store: what goes in, what comes out, and how
a storage fault is named. Kept apart from :mod:`agent.storage.store` (the SQL)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from agent.domain import CoarseState, ConsumableKey, DeviceKind, Unit
from agent.wire.device import Consumable, EventMessage, StateMessage

PAYLOAD_HEAD_BYTES = 256
UNKNOWN_DEVICE = "?"


@dataclass(slots=True, frozen=True)
class Rejected:
    """A message refused by validation, as the store keeps it."""

    device_id: str
    reason: str
    topic: str
    payload: bytes


@dataclass(slots=True, frozen=True)
class Pending:
    """A message kept for later judgement: it would be rejected for clock skew, but the
    gateway's clock is not trusted yet, so the skew may be the gateway's own."""

    device_id: str
    topic: str
    payload: bytes


@dataclass(slots=True, frozen=True)
class PendingRow:
    id: int
    device_id: str
    topic: str
    payload: bytes
    received_at: float


@dataclass(slots=True, frozen=True)
class StatusUpdate:
    device_id: str
    online: bool


@dataclass(slots=True, frozen=True)
class BatchResult:
    stored: int  # state messages with at least one new reading
    duplicates: int
    rejected: int
    # What the caller needs of the items once they are written, so that it can hand
    # them over one at a time (validated messages are ~4 KB each: a batch of 1,000
    # held at once was the largest part of the ingest burst's peak RSS).
    pending: int = 0
    devices: frozenset[str] = frozenset()  # of every state message in the batch
    rejects: tuple[Rejected, ...] = ()


@dataclass(slots=True, frozen=True, kw_only=True)
class DeviceRow:
    """A known device and its last contact, as the ``devices`` table keeps it."""

    device_id: str
    kind: DeviceKind
    first_seen: float
    last_seen: float
    last_seq: int
    online: bool | None  # None: no status message seen yet
    status_at: float | None
    fw: str | None


@dataclass(slots=True, frozen=True, kw_only=True)
class ConsumableRow:
    """A known consumable and its latest reading, as the ``consumables`` table keeps it,
    with the kind of its device (``other`` for a device not stored)."""

    cid: int
    device_id: str
    consumable_id: str
    sku: str | None
    unit: Unit
    capacity: float | None
    last_level: float | None
    last_state: CoarseState | None
    last_ts: float | None  # epoch seconds of the newest reading
    last_counters: str | None  # the newest reading's counters, as stored (JSON text)
    device_kind: DeviceKind
    readings: int | None  # stored readings; None when read without counts

    @property
    def key(self) -> ConsumableKey:
        return ConsumableKey(self.device_id, self.consumable_id)


@dataclass(slots=True, frozen=True)
class RejectCountRow:
    """How many messages of one device were refused for one reason, and when last."""

    device_id: str
    reason: str
    count: int
    last_at: float


@dataclass(slots=True, frozen=True)
class ReadingRow:
    """One stored reading of one consumable (what the forecast consumes)."""

    ts: float
    level: float | None
    state: str | None
    counter: int | None


@dataclass(slots=True, frozen=True)
class HistoryChanges:
    """What changed in the stored readings since a reader's last look
    (:meth:`agent.storage.store.Store.history_changes`)."""

    marks: dict[int, tuple[int, float]]  # cid -> (generation, oldest reading it touched)
    fresh: dict[int, float]  # cid -> oldest reading appended to the recent tier since
    top_id: int  # the recent tier's newest row id (0: empty)


Item = StateMessage | EventMessage | Rejected | StatusUpdate | Pending

# A "last" value dated this far past the gateway's clock at write time came from a
# device (or gateway) clock running ahead: any later-received reading replaces it.
FUTURE_SLACK_S = 300.0


def consumable_key(row: ConsumableRow) -> str:
    """The ledger's name for a stored consumable (``device_id/consumable_id``)."""
    return str(row.key)


@dataclass(slots=True)
class _DeviceUpdate:
    """A device's later messages, folded together until its row is written."""

    kind: str
    last_seq: int
    fw: str | None
    seen_at: float  # the gateway's time of the latest message ("last seen")
    repeated: bool = False

    def repeat(self, kind: str, seq: int, fw: str | None, seen_at: float) -> None:
        self.kind = kind
        self.last_seq = max(self.last_seq, seq)
        self.fw = fw if fw is not None else self.fw
        self.seen_at = seen_at
        self.repeated = True


@dataclass(slots=True)
class _Last:
    """The newest reading of one consumable in a batch, and the sku/capacity an older
    reading of the batch carried (with its ts) for when the newest one omits them."""

    ts: float
    consumable: Consumable
    sku: str | None = None
    sku_ts: float | None = None
    capacity: float | None = None
    capacity_ts: float | None = None


@dataclass(slots=True)
class _StateBatch:
    """What one transaction has seen: consumable ids, devices, newest readings.

    The devices and "last" values not yet written are carried from batch to batch
    (:meth:`carry`) until the store flushes them (see ``Store.lasts_every_s``);
    ``known`` names the devices whose row this store has written, so their later
    messages only update the carried values.
    """

    cids: dict[tuple[str, str], int] = field(default_factory=dict)
    devices: dict[str, _DeviceUpdate] = field(default_factory=dict)
    lasts: dict[int, _Last] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)

    def carry(self) -> _StateBatch:
        """A copy for the next transaction (this one stays as it was if that one rolls
        back); consumable ids are not carried (another connection may forget one)."""
        return _StateBatch(
            {}, {k: _DeviceUpdate(d.kind, d.last_seq, d.fw, d.seen_at, d.repeated)
                 for k, d in self.devices.items()},
            {k: _Last(v.ts, v.consumable, v.sku, v.sku_ts, v.capacity, v.capacity_ts)
             for k, v in self.lasts.items()}, set(self.known))

    @property
    def held(self) -> bool:
        """Something is waiting to be written."""
        return bool(self.lasts) or any(d.repeated for d in self.devices.values())

    def flushed(self) -> None:
        self.devices.clear()
        self.lasts.clear()

    def reading(self, cid: int, ts: float, c: Consumable, horizon: float) -> None:
        """Note a newly stored reading.

        Applied one by one, a reading updates the "last" values only if its ts is not
        older than every reading applied before it (stored or earlier in the batch). So
        only readings whose ts is a running maximum of the batch can apply; the newest
        one decides every value, except that a sku or capacity it omits comes from the
        latest earlier running-maximum reading that had one, if that one also applied.
        A "last" dated past ``horizon`` (the gateway clock plus slack) never holds off a
        later reading.
        """
        last = self.lasts.get(cid)
        if last is None:
            self.lasts[cid] = _Last(ts, c)
            return
        if ts < last.ts and last.ts <= horizon:
            return
        prev = last.consumable
        if prev.sku is not None:
            last.sku, last.sku_ts = prev.sku, last.ts
        if prev.capacity is not None:
            last.capacity, last.capacity_ts = prev.capacity, last.ts
        last.ts, last.consumable = ts, c


def fault_reason(err: sqlite3.Error) -> str:
    """A short stable token for a storage fault (log lines, status, doctor)."""
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL or "disk is full" in str(err):
        return "disk_full"
    if primary == sqlite3.SQLITE_IOERR:
        return "io_error"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "locked"
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return "corrupt"
    if primary == sqlite3.SQLITE_READONLY:
        return "read_only"
    return "sqlite_error"
