"""Urgent alerts: a durable queue in SQLite, with every step in the audit chain.

A device event that a rule covers (``fall_alert``...) is committed by ingest before it
is acknowledged to the broker; :meth:`AlertLedger.absorb_events` turns such events into
alert rows, so an alert exists as soon as its event does and survives any crash after
that. Each delivery attempt is a row too: the escalation rule reads them back, and a
restarted agent carries on where the dead one stopped (at-least-once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.domain import JsonObject
from agent.errors import ConsentError
from agent.escalation import Send
from agent.storage.ledger.base import LedgerBase
from agent.storage.ledger.rows import ts

TEST_ALERT = "test"
# Events older than this when first seen (a device flushing a month-old buffer) are not
# paged out: nobody can help with a fall from last month, and the household sees them
# in the audit trail instead.
MAX_EVENT_AGE = timedelta(hours=6)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(slots=True, frozen=True, kw_only=True)
class AlertRow:
    id: int
    device_id: str
    type: str
    raised_at: datetime
    last_event_at: datetime
    events: int
    acked_at: datetime | None
    acked_by: str | None


def _alert(row: object) -> AlertRow:
    r = dict(row)  # type: ignore[call-overload]
    return AlertRow(
        id=r["id"], device_id=r["device_id"], type=r["type"], raised_at=_at(r["raised_at"]),
        last_event_at=_at(r["last_event_at"]), events=r["events"],
        acked_at=_at(r["acked_at"]) if r["acked_at"] is not None else None,
        acked_by=r["acked_by"],
    )


class AlertLedger(LedgerBase):
    """Alerts, their folded events and delivery attempts, on the agent's database."""

    def absorb_events(self, types: dict[str, timedelta], now: datetime) -> list[int]:
        """Turn new events of the given types (type -> fold window) into alerts.

        An event folds into the device's open alert of the same type when it came within
        that type's fold window of the alert's last event; otherwise it raises a new one.
        Returns the ids of alerts raised.
        """
        if not types:
            return []
        marks = ",".join("?" * len(types))
        raised: list[int] = []
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT e.device_id, e.seq, e.ts, e.type, e.received_at FROM events e "
                f"WHERE e.type IN ({marks}) AND NOT EXISTS (SELECT 1 FROM alert_events a "
                f"WHERE a.device_id = e.device_id AND a.seq = e.seq) "
                f"ORDER BY e.received_at, e.device_id, e.seq", tuple(types)).fetchall()
            for device_id, seq, event_ts, kind, received_at in rows:
                at = min(event_ts, received_at)
                alert_id = self._fold(device_id, kind, at, types[kind])
                if alert_id is None and ts(now) - at > MAX_EVENT_AGE.total_seconds():
                    alert_id = self._stale(device_id, seq, kind, at, now)
                elif alert_id is None:
                    alert_id = self._raise(device_id, kind, at, now)
                    raised.append(alert_id)
                conn.execute("INSERT INTO alert_events (device_id, seq, alert_id) "
                             "VALUES (?, ?, ?)", (device_id, seq, alert_id))
        return raised

    def _fold(self, device_id: str, kind: str, at: float, window: timedelta) -> int | None:
        row = self.conn.execute(
            "SELECT id, last_event_at FROM alerts WHERE device_id=? AND type=? AND "
            "acked_at IS NULL ORDER BY id DESC LIMIT 1", (device_id, kind)).fetchone()
        if row is None or at - row[1] > window.total_seconds():
            return None
        self.conn.execute("UPDATE alerts SET events = events + 1, "
                          "last_event_at = max(last_event_at, ?) WHERE id=?", (at, row[0]))
        return int(row[0])

    def _raise(self, device_id: str, kind: str, at: float, now: datetime) -> int:
        cur = self.conn.execute(
            "INSERT INTO alerts (device_id, type, raised_at, last_event_at, events) "
            "VALUES (?, ?, ?, ?, 1)", (device_id, kind, at, at))
        alert_id = int(cur.lastrowid or 0)
        self._audit("alert_raised", None, {"alert": alert_id, "device": device_id,
                                           "type": kind, "at": _at(at).isoformat()}, now)
        return alert_id

    def _stale(self, device_id: str, seq: int, kind: str, at: float, now: datetime) -> int:
        """A late event: recorded, acknowledged by the agent, never paged."""
        alert_id = self._raise(device_id, kind, at, now)
        self.conn.execute("UPDATE alerts SET acked_at=?, acked_by='agent:stale' WHERE id=?",
                          (ts(now), alert_id))
        self._audit("alert_not_sent", None, {"alert": alert_id, "seq": seq,
                                             "reason": "event older than 6 h"}, now)
        return alert_id

    def raise_test(self, device_id: str, now: datetime) -> int:
        """A test alert through the whole chain (``replenish alerts test``)."""
        with self._tx():
            return self._raise(device_id, TEST_ALERT, ts(now), now)

    def open_alerts(self) -> list[AlertRow]:
        return [_alert(r) for r in self._q(
            "SELECT * FROM alerts WHERE acked_at IS NULL ORDER BY id")]

    def alerts(self, limit: int = 100) -> list[AlertRow]:
        return [_alert(r) for r in self._q(
            "SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))]

    def alert(self, alert_id: int) -> AlertRow:
        rows = self._q("SELECT * FROM alerts WHERE id=?", (alert_id,))
        if not rows:
            raise ConsentError(f"no alert {alert_id}")
        return _alert(rows[0])

    def sends(self, alert_ids: Iterable[int]) -> dict[int, list[Send]]:
        ids = list(alert_ids)
        out: dict[int, list[Send]] = {i: [] for i in ids}
        if not ids:
            return out
        marks = ",".join("?" * len(ids))
        for r in self._q(f"SELECT alert_id, contact, at, ok FROM alert_sends WHERE alert_id "
                         f"IN ({marks}) ORDER BY id", ids):
            out[r[0]].append(Send(r[1], _at(r[2]), bool(r[3])))
        return out

    def record_send(self, alert_id: int, contact: str, ok: bool, error: str | None,
                    now: datetime) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO alert_sends (alert_id, contact, at, ok, error) "
                         "VALUES (?, ?, ?, ?, ?)", (alert_id, contact, ts(now), int(ok), error))
            body: JsonObject = {"alert": alert_id, "contact": contact}
            if error:
                body["error"] = error
            self._audit("alert_sent" if ok else "alert_send_failed", None, body, now)

    def acknowledge(self, alert_id: int, by: str, now: datetime) -> AlertRow:
        """Mark an alert acknowledged; acknowledging it twice keeps the first."""
        with self._tx() as conn:
            row = conn.execute("SELECT acked_at FROM alerts WHERE id=?", (alert_id,)).fetchone()
            if row is None:
                raise ConsentError(f"no alert {alert_id}")
            if row[0] is None:
                conn.execute("UPDATE alerts SET acked_at=?, acked_by=? WHERE id=?",
                             (ts(now), by, alert_id))
                self._audit("alert_acknowledged", None, {"alert": alert_id, "by": by}, now)
        return self.alert(alert_id)

    def failed_sends_since(self, since: datetime) -> dict[str, int]:
        """Failed delivery attempts per contact since ``since`` (for doctor)."""
        return {r[0]: r[1] for r in self._q(
            "SELECT contact, count(*) FROM alert_sends WHERE ok=0 AND at >= ? "
            "GROUP BY contact", (ts(since),))}

    def last_event_types(self, since: datetime) -> set[str]:
        return {r[0] for r in self._q("SELECT DISTINCT type FROM events WHERE received_at >= ?",
                                      (since.astimezone(UTC).timestamp(),))}
