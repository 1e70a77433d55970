"""Edge faults through the real Mosquitto (``broker_config/``) and the real
``replenish run``: a gateway clock 30 days behind that NTP then corrects, and a flood
from one device beside a calm one."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.broker import LocalBroker, find_client_tool
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"),
                   Path("/usr/lib/faketime/libfaketime.so.1"))
DAY = 86_400.0

# libfaketime 0.9.10 fails Python's time.sleep (clock_nanosleep on an absolute monotonic
# deadline, EINVAL) once monotonic time is left real, which it must be: NTP steps the
# wall clock only. The agent under test sleeps through an Event instead.
SITECUSTOMIZE = '''
import threading, time
_wake = threading.Event()
def _sleep(seconds):
    if seconds > 0:
        _wake.wait(seconds)
time.sleep = _sleep
'''



def query(db: Path, sql: str) -> int:
    if not db.exists():
        return -1
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0] or 0)
        except sqlite3.OperationalError:  # not migrated yet
            return -1


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def device(broker: LocalBroker, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-pub",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(name, broker.passwords[name])
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def state(name: str, seq: int, at: float, level: float = 50.0) -> str:
    return json.dumps({"device_id": name, "seq": seq, "ts": iso(at), "kind": "printer",
                       "consumables": [{"id": "black", "level": level}]})


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs libfaketime (Debian libfaketime)")
def test_clock_30_days_behind_then_corrected_loses_no_acknowledged_reading(
        tmp_path: Path, broker: LocalBroker) -> None:
    flag = tmp_path / "timesync-synchronized"
    offset = tmp_path / "faketime"
    offset.write_text("-30d\n")  # the Pi booted without RTC, before NTP
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = write_agent_config(tmp_path / "agent", broker, f"""
[ingest]
trust_clock = "flag"
clock_flag_file = "{flag}"
idle_wakeup_s = 0.5
""")
    db = tmp_path / "agent" / "agent.db"
    env = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset),
           "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    printer = device(broker, "printer-1")
    acked: list[int] = []
    printer.on_publish = lambda c, u, mid, rc, p: acked.append(mid)
    with AgentProcess(config, env=env) as agent:
        now = time.time()  # the devices' clocks are right, the gateway's is not
        for seq in range(1, 21):
            printer.publish("replenish/v1/devices/printer-1/state",
                            state("printer-1", seq, now - (20 - seq) * 60, 60 - seq), qos=1)
        wait_until(lambda: len(acked) == 20, timeout=30.0)  # every one acknowledged to the device
        wait_until(lambda: query(db, "SELECT COUNT(*) FROM pending") == 20, timeout=30.0)
        # Proof the agent ran 30 days behind: it received them a month before they were sent.
        newest = query(db, "SELECT MAX(received_at) FROM pending")
        assert newest < now - 29 * DAY
        assert query(db, "SELECT COUNT(*) FROM readings") == 0
        assert query(db, "SELECT COUNT(*) FROM rejects") == 0

        offset.write_text("+0\n")  # NTP steps the clock to the right time
        flag.touch()  # ... and timesyncd says so
        wait_until(lambda: query(db, "SELECT COUNT(*) FROM pending") == 0, timeout=40)
        later = time.time()
        for seq in range(21, 26):
            printer.publish("replenish/v1/devices/printer-1/state",
                            state("printer-1", seq, later, 40), qos=1)
        wait_until(lambda: query(db, "SELECT COUNT(*) FROM readings") == 25, timeout=30.0)
        assert agent.proc is not None and agent.proc.poll() is None
        log = agent.log()
    printer.loop_stop()
    printer.disconnect()
    assert query(db, "SELECT COUNT(*) FROM rejects") == 0  # 0 acknowledged readings lost
    assert query(db, "SELECT COUNT(DISTINCT seq) FROM readings") == 25
    # The last level follows the newest trusted reading, dated now, not a month ago.
    assert query(db, "SELECT MAX(last_ts) FROM consumables") >= int(later) - 1
    assert "ingest.pending_judged count=20" in log
    assert "Traceback" not in log


def test_flood_beside_a_calm_device(tmp_path: Path, broker: LocalBroker) -> None:
    interval = 2.0
    config = write_agent_config(tmp_path / "agent", broker, f"""
[ingest]
per_device_rate = 50
per_device_burst = 200
reject_log_interval_s = {interval}
""")
    db = tmp_path / "agent" / "agent.db"
    calm = device(broker, "fridge-1")
    # The flood comes from the C client (``mosquitto_pub -l``: one message per stdin
    # line), paced here at 1,000 lines per 100 ms; a Python publisher tops out below
    # 10,000 msg/s on a shared machine.
    flood = subprocess.Popen(
        [str(find_client_tool("mosquitto_pub")), "-h", broker.host, "-p", str(broker.port),
         "-u", "printer-1", "-P", broker.passwords["printer-1"], "-i", "printer-1-flood",
         "-t", "replenish/v1/devices/printer-1/state", "-q", "0", "-l"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert flood.stdin is not None
    stop = threading.Event()
    sent = [0]
    calm_acked: list[int] = []
    calm.on_publish = lambda c, u, mid, rc, p: calm_acked.append(mid)

    # Made up front, so pacing is only a write per tick even on a loaded machine.
    ts = time.time()
    batches = [("\n".join(state("printer-1", b * 1000 + i, ts) for i in range(1, 1001))
                + "\n").encode() for b in range(100)]

    def run_flood() -> None:
        assert flood.stdin is not None
        tick = time.monotonic()
        for batch in batches:  # 1,000 per 100 ms: 10,000 msg/s
            if stop.is_set():
                break
            flood.stdin.write(batch)
            flood.stdin.flush()
            sent[0] += 1000
            tick += 0.1
            time.sleep(max(0.0, tick - time.monotonic()))
        flood.stdin.close()

    with AgentProcess(config) as agent:
        start_log = len(agent.log().splitlines())
        flooder = threading.Thread(target=run_flood, daemon=True)
        began = time.monotonic()
        flooder.start()
        for seq in range(1, 21):  # the calm device: 4 readings a second for 5 s
            calm.publish("replenish/v1/devices/fridge-1/state",
                         json.dumps({"device_id": "fridge-1", "seq": seq, "ts": iso(time.time()),
                                     "kind": "fridge",
                                     "consumables": [{"id": "milk", "level": 900 - seq,
                                                      "unit": "grams"}]}), qos=1)
            time.sleep(0.25)
        stop.set()
        flooder.join(10)
        flood_s = time.monotonic() - began
        flood.wait(30)  # mosquitto_pub sent every line it read
        wait_until(lambda: len(calm_acked) == 20, timeout=30.0)

        def calm_stored() -> int:
            return query(db, "SELECT COUNT(*) FROM readings r JOIN consumables c "
                             "ON c.cid = r.cid WHERE c.device_id = 'fridge-1'")

        wait_until(lambda: calm_stored() == 20, timeout=60)
        wait_until(lambda: "ingest.reject device=printer-1" in agent.log(), timeout=30.0)

        def unlogged() -> int:
            """Rejects stored but not yet in a summary line (each line carries its count)."""
            logged = sum(int(n) for n in re.findall(
                r"ingest\.reject device=printer-1 count=(\d+)", agent.log()))
            return query(db, "SELECT SUM(count) FROM reject_counts "
                             "WHERE device_id = 'printer-1'") - logged

        # Positive marker that the last summary line is out: the lines account for every
        # reject stored (no fixed wait for the next interval).
        wait_until(lambda: unlogged() == 0, timeout=30.0,
                   what=lambda: f"summary lines for every stored reject ({unlogged()} not)")
        lines = agent.log().splitlines()[start_log:]
    calm.loop_stop()
    calm.disconnect()
    rate = sent[0] / flood_s
    summaries = [ln for ln in lines if "ingest.reject device=printer-1" in ln]
    rejected = query(db, "SELECT SUM(count) FROM reject_counts WHERE device_id = 'printer-1'")
    stored = query(db, "SELECT COUNT(*) FROM readings r JOIN consumables c "
                       "ON c.cid = r.cid WHERE c.device_id = 'printer-1'")
    print(f"flood: sent={sent[0]} in {flood_s:.1f}s ({rate:.0f} msg/s), stored={stored}, "
          f"rejected={rejected}, summary lines={len(summaries)}, log lines={len(lines)}")
    assert rate >= 9_000, f"the flood was offered at only {rate:.0f} msg/s"
    # The flood reached the agent and was counted: QoS 0 from mosquitto_pub, so none is
    # redelivered (stored + rejected can only fall short of sent, if the broker dropped
    # some QoS 0 messages to a lagging agent).
    assert sent[0] // 2 < rejected <= stored + rejected <= sent[0]
    # At most one line per device per interval (by the agent's own log timestamps), and
    # nothing else per message.
    stamps = [datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f") for ln in summaries]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(summaries) >= 2 and min(gaps) >= interval - 0.05, gaps
    assert len(lines) < 60, "\n".join(lines[:80])
    assert not any("ingest.reject device=fridge-1" in ln for ln in lines)


def test_payloads_over_the_broker_limit_are_counted(tmp_path: Path, broker: LocalBroker) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"

    def too_large() -> int:
        return query(db, "SELECT SUM(count) FROM reject_counts "
                         "WHERE device_id = 'printer-1' AND reason = 'too_large'")

    with AgentProcess(config) as agent:
        printer = device(broker, "printer-1")
        body = state("printer-1", 1, time.time())
        # 20 KiB: over the protocol's 16 KiB, under the broker's 64 KiB packet limit: the
        # agent sees and refuses it. 70 KiB: the broker disconnects the device. (QoS 0 so
        # each is sent once: a QoS 1 one is resent on every reconnect, and every
        # disconnect counts.)
        printer.publish("replenish/v1/devices/printer-1/state",
                        body[:-1] + ', "pad": "' + "x" * 20_000 + '"}', qos=1)
        wait_until(lambda: too_large() == 1, timeout=30.0)
        printer.publish("replenish/v1/devices/printer-1/state", b"x" * 70_000, qos=0)
        wait_until(lambda: too_large() == 2, timeout=30.0)
        printer.loop_stop()
        printer.disconnect()
        for mqtt_version in (mqtt.MQTTv311, mqtt.MQTTv5):  # another client id, other protocol
            other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"other-{mqtt_version}",
                                protocol=mqtt_version)
            other.username_pw_set("fridge-1", broker.passwords["fridge-1"])
            other.connect(broker.host, broker.port)
            other.loop_start()
            other.publish("replenish/v1/devices/fridge-1/state", b"y" * 100_000, qos=0)
            time.sleep(0.5)
            other.loop_stop()
        wait_until(lambda: query(db, "SELECT SUM(count) FROM reject_counts WHERE device_id = "
                                   "'fridge-1' AND reason = 'too_large'") == 2, timeout=30.0)
        wait_until(lambda: "reasons=too_large:2" in agent.log(), timeout=30.0)
        log = agent.log()
    assert "disconnected due to oversize packet" in broker.log_text()
    assert "Traceback" not in log
