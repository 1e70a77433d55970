"""The load side of the ingest benchmark: simulated devices publishing through
``mosquitto_pub``, the bare paho reference subscriber, and the agent's commits watched
from outside in its WAL database. Also used by ``bench.footprint``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import IngestSettings
from agent.domain import DeviceKind, Unit
from agent.storage import packed
from agent.wire.device import Channel, Consumable, StateMessage, device_topic, encode
from firmware_sim.broker import LocalBroker, find_client_tool

STATE_FILTER = "replenish/v1/devices/+/state"


# ---- devices and payloads ---------------------------------------------------------------

@dataclass
class Fleet:
    """Simulated devices: half printers (four toners with page counters), half fridges."""

    names: list[str]
    passwords: dict[str, str]
    seq: dict[str, int] = field(default_factory=dict)

    @classmethod
    def make(cls, count: int) -> Fleet:
        names = [f"bench-{i:04d}" for i in range(count)]
        return cls(names, {n: f"pw-{n}" for n in names}, {n: 0 for n in names})

    def consumables(self, name: str) -> int:
        return 4 if self.names.index(name) % 2 == 0 else 1

    def payload(self, name: str, ts: float) -> bytes:
        """The device's next state message (seq increments per device)."""
        self.seq[name] += 1
        seq = self.seq[name]
        when = datetime.fromtimestamp(ts, UTC)
        if self.consumables(name) == 4:
            level = max(0.0, 100.0 - (seq % 1000) / 10)
            cons = [Consumable(id=c, sku=f"TN-{c[:1].upper()}243", level=level,
                               unit=Unit.PERCENT, counters={"pages": seq})
                    for c in ("black", "cyan", "magenta", "yellow")]
            msg = StateMessage(device_id=name, seq=seq, ts=when, kind=DeviceKind.PRINTER,
                               consumables=cons, fw="1.4.2")
        else:
            cons = [Consumable(id="milk", level=float(2000 - seq % 2000), unit=Unit.GRAMS,
                               capacity=2000.0)]
            msg = StateMessage(device_id=name, seq=seq, ts=when, kind=DeviceKind.FRIDGE,
                               consumables=cons)
        return encode(msg)

    def expected_rows(self) -> int:
        return sum(self.seq[n] * self.consumables(n) for n in self.names)

    def total(self) -> int:
        return sum(self.seq.values())


def _pub_cmd(broker: LocalBroker, fleet: Fleet, name: str) -> list[str]:
    return [str(find_client_tool("mosquitto_pub")), "-h", broker.host, "-p", str(broker.port),
            "-u", name, "-P", fleet.passwords[name], "-i", f"{name}-pub", "-V", "5",
            "-q", "1", "-t", device_topic(name, Channel.STATE), "-l"]


def publish_flat_out(broker: LocalBroker, fleet: Fleet, total: int, work: Path) -> float:
    """Every device publishes its share at once, as fast as the broker takes it.

    Payloads are written to one file per device first, so the publishers only read and
    send. Returns the epoch time just before the first publisher started.
    """
    lines: dict[str, list[bytes]] = {n: [] for n in fleet.names}
    now = time.time()
    for k in range(total):
        name = fleet.names[k % len(fleet.names)]
        lines[name].append(fleet.payload(name, now))
    files = []
    for name, body in lines.items():
        path = work / f"{name}.lines"
        path.write_bytes(b"\n".join(body) + b"\n")
        files.append((name, path))
    t0 = time.time()
    procs = []
    for name, path in files:
        with path.open("rb") as stdin:
            procs.append(subprocess.Popen(_pub_cmd(broker, fleet, name), stdin=stdin,
                                          stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"mosquitto_pub failed: {err.decode(errors='replace')}")
    return t0


def publish_paced(broker: LocalBroker, fleet: Fleet, total: int, rate: float,
                  sent: dict[tuple[str, int], float]) -> None:
    """Publish ``total`` messages at ``rate``/s round-robin; records each send time."""
    procs = {n: subprocess.Popen(_pub_cmd(broker, fleet, n), stdin=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL) for n in fleet.names}
    time.sleep(1.0)  # let every publisher connect; lines written earlier would wait
    start = time.monotonic()
    for k in range(total):
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = fleet.names[k % len(fleet.names)]
        ts = time.time()
        line = fleet.payload(name, ts) + b"\n"
        sent[(name, fleet.seq[name])] = ts
        stdin = procs[name].stdin
        assert stdin is not None
        stdin.write(line)
        stdin.flush()
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs.values():
        proc.wait(120)


# ---- reference subscribers --------------------------------------------------------------

def _sub_cmd(broker: LocalBroker, client_id: str) -> list[str]:
    return [str(find_client_tool("mosquitto_sub")), "-h", broker.host, "-p", str(broker.port),
            "-u", "agent", "-P", broker.passwords["agent"], "-V", "5", "-c", "-x", "3600",
            "-i", client_id, "-q", "1", "-t", STATE_FILTER]


def paho_subscriber(argv: list[str]) -> int:
    """The bare paho reference (own process): connect, count, report JSON on stdout.

    Same session settings as the agent (MQTT 5, persistent session, QoS 1, the agent's
    Receive Maximum) but auto-ack on return from ``on_message`` and no work at all.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port, password, mode = argv[0], int(argv[1]), argv[2], argv[3]
    count = int(argv[4])
    received: list[float] = []
    payloads: list[bytes] = []
    subscribed, done = threading.Event(), threading.Event()
    keep = mode == "latency"

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(STATE_FILTER, qos=1)

    def on_subscribe(*_: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        received.append(time.time())
        if keep:
            payloads.append(bytes(msg.payload))
        if len(received) >= count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho-sub",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("agent", password)
    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = IngestSettings().receive_maximum
    t_connect = time.time()
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    subscribed.wait(30)
    sys.stdout.write("subscribed\n")
    sys.stdout.flush()
    if mode != "session":
        done.wait(600)
    client.disconnect()
    client.loop_stop()
    lat = [t - datetime.fromisoformat(json.loads(body)["ts"]).timestamp()
           for t, body in zip(received, payloads, strict=False)]
    json.dump({"t_connect": t_connect, "count": len(received),
               "t_last": received[-1] if received else None, "latencies": lat}, sys.stdout)
    return 0


class PahoRef:
    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.proc: subprocess.Popen[str] | None = None
        self.spawned_at = 0.0

    def start(self, mode: str, count: int) -> None:
        b = self.broker
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "--paho-subscriber", b.host, str(b.port),
             b.passwords["agent"], mode, str(count)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "subscribed":
            raise RuntimeError("paho subscriber did not subscribe")

    def result(self) -> dict[str, Any]:
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=600)
        data: dict[str, Any] = json.loads(out)
        return data


# ---- the agent's database, seen from outside ---------------------------------------------

# Per consumable, the last reading of its last packed part of hour ``?`` (rowids
# ``(hour << CID_BITS | cid) << PART_BITS | part``, agent.storage.packed).
_LAST_OF_SLOT = (
    "SELECT c.cid, (SELECT m.rows ->> '$[#-1][0]' FROM readings_main m "
    f"WHERE m.id BETWEEN ((? << {packed.CID_BITS} | c.cid) << {packed.PART_BITS}) "
    f"AND ((? << {packed.CID_BITS} | c.cid) << {packed.PART_BITS} | {packed.PART_MASK}) "
    "ORDER BY m.id DESC LIMIT 1) FROM consumables c")


@dataclass
class _SeqScan:
    """What one connection has read of the readings: the newest seq per consumable, and
    the recent tier's row ids it has seen (new rows are read by id, no table scan)."""

    tops: dict[int, int] = field(default_factory=dict)
    folds: int | None = None  # the agent's fold count (history_marks, cid 0) last seen
    last_id: int = 0


class CommitWatch:
    """Polls the newest committed reading seq per device in the agent's database (WAL:
    readers never block). The readings themselves are the marker: ``devices.last_seq``
    is rewritten only every ``ingest.last_values_interval_s``."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None
        self._scans: dict[int, _SeqScan] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if not self.db.exists():
            return None
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)

    def last_seqs(self, conn: sqlite3.Connection | None = None) -> dict[str, int]:
        if conn is None:
            self.conn = self.conn or self._connect()
            conn = self.conn
        if conn is None:
            return {}
        scan = self._scans.setdefault(id(conn), _SeqScan())
        try:
            conn.execute("BEGIN")  # one read transaction: both tiers at one commit
            try:
                owner = dict(conn.execute("SELECT cid, device_id FROM consumables"))
                self._scan(conn, scan)
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError:  # schema not created yet
            return {}
        seqs: dict[str, int] = {}
        for cid, top in scan.tops.items():
            dev = owner.get(cid)
            if dev is not None:
                seqs[dev] = max(seqs.get(dev, 0), top)
        return seqs

    @staticmethod
    def _scan(conn: sqlite3.Connection, scan: _SeqScan) -> None:
        hi, folds = conn.execute(
            "SELECT (SELECT MAX(id) FROM readings_recent), "
            "(SELECT gen FROM history_marks WHERE cid = 0)").fetchone()
        if folds != scan.folds:
            # A fold moved the recent rows (their ids start again, so neither MIN(id)
            # nor MAX(id) tells: a watcher that compared them missed rows appended
            # below its last id and waited for them until its timeout): the last reading of
            # each consumable's last packed part in the newest two hours (a device's seqs
            # grow with its time, and an hour's parts are in time order), then the recent
            # tier anew. One lookup per slot at the end of its rowid range: reading every
            # part's last element (all parts of the burst's hour, ~2,000 of ~4 KB JSON)
            # took the watcher tens of ms per fold, and its own time was counted as the
            # agent's commit latency.
            newest = conn.execute("SELECT MAX(id) FROM readings_main").fetchone()[0]
            if newest is not None:
                hour = packed.decode(int(newest))[0]
                for h in (hour - 1, hour):
                    for cid, top in conn.execute(_LAST_OF_SLOT, (h, h)):
                        if top is not None:
                            scan.tops[cid] = max(scan.tops.get(cid, 0), int(top))
            scan.folds, scan.last_id = folds, 0
        for cid, seq in conn.execute(
                "SELECT cid, MAX(seq) FROM readings_recent WHERE id > ? GROUP BY cid",
                (scan.last_id,)):
            scan.tops[cid] = max(scan.tops.get(cid, 0), int(seq))
        scan.last_id = max(scan.last_id, hi or 0)

    def wait_all(self, fleet: Fleet, timeout: float, interval: float = 0.01) -> float | None:
        """Epoch time when every device's last seq was committed; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seqs = self.last_seqs()
            if all(seqs.get(n, 0) >= fleet.seq[n] for n in fleet.names):
                return time.time()
            time.sleep(interval)
        return None

    def latencies(self, sent: dict[tuple[str, int], float], stop: threading.Event,
                  out: list[float], interval: float = 0.005,
                  seen_at: list[tuple[float, float]] | None = None) -> None:
        """Until ``stop``: for every newly committed seq, record commit - send time (and
        in ``seen_at`` (send time, commit time seen) for a timeline)."""
        conn = self._connect()  # this thread's own connection
        seen = self.last_seqs(conn)
        while True:
            stopping = stop.is_set()  # then one last pass: what committed meanwhile
            now = time.time()
            for dev, last in self.last_seqs(conn).items():
                for s in range(seen.get(dev, 0) + 1, last + 1):
                    if (dev, s) in sent:
                        out.append(now - sent[(dev, s)])
                        if seen_at is not None:
                            seen_at.append((sent[(dev, s)], now))
                seen[dev] = max(seen.get(dev, 0), last)
            if stopping:
                break
            time.sleep(interval)
        if conn is not None:
            conn.close()

    def stored(self) -> tuple[int, int]:
        """(distinct messages, reading rows) in the database."""
        assert self.conn is not None
        msgs = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT c.device_id, r.seq FROM readings r "
            "JOIN consumables c USING (cid))").fetchone()[0]
        rows = self.conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        return int(msgs), int(rows)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
