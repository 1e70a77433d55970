"""Time without trust: readings that look skewed while the gateway clock is not
synchronised are kept (pending) and judged again once it is; a reading dated in the
future never pins the last level, and last_seen follows the gateway's latest time."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.config import IngestSettings
from agent.domain import DeviceKind, Unit
from agent.mqtt.ingest import Inbound, Writer
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, current_version
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from tests.waiting import wait_until

DAY = 86_400.0
TOPIC = "replenish/v1/devices/printer-1/state"


def payload(seq: int, at: float, level: float = 50.0) -> bytes:
    ts = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"device_id": "printer-1", "seq": seq, "ts": ts, "kind": "printer",
                       "consumables": [{"id": "black", "level": level}]}).encode()


class Harness:
    def __init__(self, path: Path, trusted: bool) -> None:
        self.trusted = trusted
        self.acked: list[int] = []
        # Commits within a tenth of a second: this is about trust, not the window.
        settings = IngestSettings(idle_wakeup_s=0.05, commit_window_s=0.1)
        self.writer = Writer(lambda: Store(path), settings, lambda m: self.acked.append(m.mid),
                             clock_trusted=lambda: self.trusted)
        self.writer.trust_check_s = 0.0
        self.writer.start()


def test_clock_30_days_behind_then_corrected_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    now = time.time()
    behind = now - 30 * DAY  # the gateway's clock before NTP
    h = Harness(path, trusted=False)
    for seq in range(1, 21):
        h.writer.queue.put(Inbound(seq, 1, TOPIC, payload(seq, now - (20 - seq) * 60), behind))
    wait_until(lambda: len(h.acked) == 20, timeout=10.0)
    with Store(path) as s:
        assert s.pending_count() == 20 and s.reading_count() == 0
        assert s.reject_counts() == []  # nothing acknowledged was thrown away
    h.trusted = True  # timesyncd synchronised the clock
    wait_until(lambda: h.writer.stats.pending == 0, timeout=10.0)
    h.writer.stop()
    with Store(path) as s:
        assert s.seqs("printer-1") == list(range(1, 21))
        assert s.pending_count() == 0


def test_pending_survive_a_restart_and_a_real_future_reading_is_rejected(
        tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    now = time.time()
    h = Harness(path, trusted=False)
    h.writer.queue.put(Inbound(1, 1, TOPIC, payload(1, now), now - 30 * DAY))
    h.writer.queue.put(Inbound(2, 1, TOPIC, payload(2, now + 400 * DAY), now))  # device bug
    wait_until(lambda: len(h.acked) == 2, timeout=10.0)
    h.writer.stop()
    h2 = Harness(path, trusted=True)  # agent restarted after NTP sync
    wait_until(lambda: Store(path).pending_count() == 0, timeout=10.0)
    h2.writer.stop()
    with Store(path) as s:
        assert s.seqs("printer-1") == [1]
        assert [(r.reason, r.count) for r in s.reject_counts()] == [("clock_skew", 1)]


def msg(seq: int, ts: datetime, level: float) -> StateMessage:
    return StateMessage(device_id="fridge-1", seq=seq, ts=ts, kind=DeviceKind.FRIDGE,
                        consumables=[Consumable(id="milk", level=level, unit=Unit.GRAMS)])


def test_a_future_reading_never_pins_the_last_level(tmp_path: Path) -> None:
    now = datetime(2026, 11, 20, 8, tzinfo=UTC)
    with Store(tmp_path / "a.db") as s:
        s.write_batch([msg(1, now + timedelta(hours=23), 900)], now.timestamp())
        for i, level in enumerate((490, 480, 470), start=2):
            at = now + timedelta(minutes=10 * i)
            s.write_batch([msg(i, at, level)], at.timestamp())
        (row,) = s.consumables()
        assert row.last_level == 470
        # Also within one batch: the future one does not hold off the later reading.
        at = now + timedelta(hours=1)
        s.write_batch([msg(10, now + timedelta(hours=20), 999), msg(11, at, 460)],
                      at.timestamp())
        assert s.consumables()[0].last_level == 460


def test_a_dashboard_never_shows_a_future_level_the_writer_holds(tmp_path: Path) -> None:
    # The dashboards' read (``as_of``) takes the newest committed reading while the
    # writer holds the "last" columns: one dated far past "now" must not win, and a
    # stored "last" dated past "now" gives way to a reading that is not.
    now = datetime(2026, 11, 20, 8, tzinfo=UTC)
    with Store(tmp_path / "a.db") as s:
        s.lasts_every_s = 3600.0
        s.write_batch([msg(1, now + timedelta(hours=23), 900)], now.timestamp())
        at = now + timedelta(minutes=10)
        s.write_batch([msg(2, at, 490)], at.timestamp())
        at = now + timedelta(minutes=20)
        s.write_batch([msg(3, now + timedelta(hours=22), 950)], at.timestamp())
        assert s.holds_lasts
        (row,) = s.consumables(counts=False, as_of=at.timestamp())
        assert (row.last_level, row.last_ts) == (490, (now + timedelta(minutes=10)).timestamp())


def test_last_seen_follows_a_clock_corrected_backwards(tmp_path: Path) -> None:
    ahead = datetime(2026, 12, 20, tzinfo=UTC).timestamp()
    right = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    with Store(tmp_path / "a.db") as s:
        s.write_batch([msg(1, datetime(2026, 11, 19, tzinfo=UTC), 900)], ahead)
        s.write_batch([msg(2, datetime(2026, 11, 20, tzinfo=UTC), 890)], right)
        assert s.devices()[0].last_seen == right


def test_previous_schema_upgrades_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path) as s:
        s.write_batch([msg(1, datetime(2026, 11, 19, tzinfo=UTC), 900)], 1.0)
    # The database as it was before the pending table: its migration and every later one
    # undone (a fresh file then migrated up to the version before).
    pending_version = next(v for v, sql in MIGRATIONS if "CREATE TABLE pending" in sql)
    old = tmp_path / "older.db"
    conn = sqlite3.connect(old, isolation_level=None)
    for version, script in MIGRATIONS:
        if version >= pending_version:
            break
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("ATTACH DATABASE ? AS cur", (str(path),))
    conn.execute("INSERT INTO devices SELECT * FROM cur.devices")
    conn.execute("INSERT INTO consumables SELECT * FROM cur.consumables")
    conn.execute("INSERT INTO readings SELECT * FROM cur.readings")
    conn.execute("DETACH DATABASE cur")
    conn.close()
    with Store(old) as s:
        assert current_version(s.conn) == LATEST_VERSION
        assert s.reading_count() == 1 and s.pending_count() == 0


def test_writer_without_trust_hook_rejects_skew_as_before(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    done = threading.Event()
    writer = Writer(lambda: Store(path), IngestSettings(), lambda m: done.set())
    writer.start()
    writer.queue.put(Inbound(1, 1, TOPIC, payload(1, time.time() + 30 * DAY), time.time()))
    assert done.wait(10)
    writer.stop()
    with Store(path) as s:
        assert s.pending_count() == 0
        assert s.reject_counts()[0].reason == "clock_skew"


def test_doctor_names_the_readings_held_for_the_clock(tmp_path: Path) -> None:
    from agent.ops.doctor import Probes, check_clock
    from agent.storage.store import Pending

    path = tmp_path / "a.db"
    with Store(path) as s:
        s.write_batch([Pending("printer-1", TOPIC, payload(1, time.time()))], time.time())
    result = check_clock(path, Probes(synchronized=lambda: False))
    assert "1 readings held until it is" in result.summary
