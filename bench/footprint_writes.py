"""Bytes the agent writes to storage per message (SD-card wear), part of bench.footprint.

The real ``replenish run`` on the year database, with the default ``[ingest]`` settings
(commit window, fold and checkpoint schedule, held "last" values) unless the run's
agent.toml says otherwise; devices publish state messages at a steady, evenly spread
rate. Measured over the publishing window (after start-up and one round from every
device: a first message since the start commits alone, and a running agent has long
seen them all):

* ``write_bytes`` from ``/proc/<agent pid>/io``: what the process sent to the block
  layer (WAL appends and fsyncs, checkpoints into the database file, every job of the
  agent, not only ingest);
* the WAL's and the database file's sizes before and after;
* ``write_bytes`` by file (the WAL, the database file, the ``-shm`` and the rest), from
  an ``strace`` of the agent over the same window (:mod:`bench.footprint_files`).

The fold of the recent readings tier into the keyed one runs every ``fold_every_s``:
``fold_interval_s``, or sooner once the tier holds ``fold_rows`` readings, and the WAL
checkpoint follows it. The household window of the full run is one fold interval and two
commit windows, so its ``write_bytes`` hold a whole cycle: the commits, one fold and its
checkpoint (``folds_in_window`` counts them from the database). A
shorter window (``--quick``, ``--write-seconds``) charges the fold at its real interval:
before the window the recent tier is filled with the readings of the rest of one fold
interval, and after the window the fold and its checkpoint run in a process of their
own; the charge is that process's ``write_bytes``, the prefill's checkpoint and what the
agent wrote while stopping (the checkpoint of the window's pages), divided by the
messages of one fold interval. When folds come due inside the window (fast rates),
``write_bytes`` already holds them.

Per day: ingest bytes per message times the messages of a day, plus the fold's bytes
times the folds of a day.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.config import IngestSettings, load_settings
from agent.storage.store import Store
from agent.wire.device import StateMessage
from bench.common import AgentRunner
from bench.footprint_files import Tracer
from bench.ingest_load import Fleet, publish_paced
from firmware_sim.broker import LocalBroker

DAY = 86_400


def ingest_toml(commit_window_s: float | None) -> str:
    """The agent.toml [ingest] section of the write measurement (defaults otherwise)."""
    if commit_window_s is None:
        return ""
    return f"\n[ingest]\ncommit_window_s = {commit_window_s}\n"


def proc_io(pid: int | str, field: str) -> int:
    """One counter of ``/proc/<pid>/io`` (``write_bytes``, ``cancelled_write_bytes``)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/io")


def write_bytes(pid: int | str) -> int:
    return proc_io(pid, "write_bytes")


def _pid(broker: LocalBroker) -> int:
    if broker.pid is None:
        raise RuntimeError("the broker is not running")
    return broker.pid


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def fold_every_s(ingest: IngestSettings, rows_per_s: float) -> float:
    """How often the writer folds at this arrival rate of reading rows."""
    return min(ingest.fold_interval_s, ingest.fold_rows / rows_per_s)


def prefill(db: Path, fleet: Fleet, messages: int, now: float, per_device_s: float) -> int:
    """Readings of the part of a fold interval before the window, in the recent tier
    (as the agent left them), checkpointed so the window does not pay for them; returns
    that checkpoint's bytes (the agent copies them with the fold: they are charged)."""
    msgs: list[StateMessage] = []
    for k in range(messages):
        name = fleet.names[k % len(fleet.names)]
        at = now - (messages - k) * per_device_s / len(fleet.names)
        msgs.append(StateMessage.model_validate_json(fleet.payload(name, at)))
    with Store(db) as store:
        for i in range(0, len(msgs), 1_000):
            store.write_batch(msgs[i:i + 1_000], received_at=now)
        w0 = write_bytes("self")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return write_bytes("self") - w0


def folds(db: Path) -> int:
    """The folds the database has seen (the recent tier counts them, cid 0)."""
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT gen FROM history_marks WHERE cid = 0").fetchone()
    return 0 if row is None else int(row[0])


def stop_counting(agent: AgentRunner) -> int:
    """Stop the agent; its write_bytes over its whole life, from the kernel's rusage at
    exit (what it wrote while stopping, a checkpoint among it, is gone from /proc)."""
    assert agent.proc is not None
    agent.proc.terminate()
    _, status, usage = os.wait4(agent.proc.pid, 0)
    agent.proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_oublock * 512  # Linux: (write_bytes - cancelled_write_bytes) / 512


def measure_fold(db: Path) -> dict[str, int]:
    """Fold the recent tier and checkpoint, in a process of its own: its write_bytes."""
    out = subprocess.run([sys.executable, "-m", "bench.footprint_writes", "fold", str(db)],
                         check=True, capture_output=True, text=True, timeout=600)
    result: dict[str, int] = json.loads(out.stdout)
    return result


def _per_message(files: dict[str, int] | None, total: int) -> dict[str, Any]:
    if files is None:
        return {"by_file": None}
    commits = max(1, files["wal_syncs"])
    return {"by_file": files, "commits": files["wal_syncs"],
            "messages_per_commit": total / commits,
            **{f"{k}_bytes_per_message": files[k] / total
               for k in ("wal", "db", "shm_and_other")},
            **{f"{k}_bytes_per_commit": files[k] / commits
               for k in ("wal", "db", "shm_and_other")}}


def _fold_here(db: Path) -> None:
    with Store(db) as store:
        w0 = write_bytes("self")
        rows = store.fold_recent()
        store.checkpoint()
        w1 = write_bytes("self")
    sys.stdout.write(json.dumps({"fold_rows": rows, "fold_write_bytes": w1 - w0}))


def measure(broker: LocalBroker, config: Path, db: Path, fleet: Fleet, per_device_s: float,
            seconds: float) -> dict[str, Any]:
    """Every device sends one message per ``per_device_s``, for ``seconds``."""
    ingest = load_settings(config).ingest
    rate = len(fleet.names) / per_device_s
    total = max(1, round(rate * seconds))
    rows_per_msg = sum(fleet.consumables(n) for n in fleet.names) / len(fleet.names)
    every = fold_every_s(ingest, rate * rows_per_msg)
    # A fold interval longer than the window: fold its rows after the window.
    fold_after = every > seconds
    # One device round short of fold_rows, so the agent's own fold does not come due.
    before = max(0, round(every * rate) - total - len(fleet.names)) if fold_after else 0
    with Store(db) as store:  # the window starts from an empty recent tier
        store.fold_recent()
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    prefill_ckpt = prefill(db, fleet, before, time.time(), per_device_s)
    agent = AgentRunner(config).start()
    stop_bytes = 0
    try:
        time.sleep(3.0)  # start-up work (migrations, first jobs) is not per message
        # One round before the window: a device's first message since the start is news
        # and commits alone (agent.mqtt.news); a running agent has seen them all.
        publish_paced(broker, fleet, len(fleet.names), rate, {})
        time.sleep(3.0)
        payload_bytes = sum(len(fleet.payload(n, time.time())) for n in fleet.names)
        for n in fleet.names:  # payload() counted a message: take it back
            fleet.seq[n] -= 1
        wal = Path(f"{db}-wal")
        with Tracer(agent.pid, config.parent / f"writes-{per_device_s:g}.strace") as tracer:
            # Read before the window: the bench's own read of the database dirties a
            # wal-index page the agent would otherwise be charged for.
            folds0 = folds(db)
            w0, wal0, db0 = write_bytes(agent.pid), _size(wal), _size(db)
            b0 = write_bytes(_pid(broker))
            t0 = time.monotonic()
            publish_paced(broker, fleet, total, rate, {})
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
            wall = time.monotonic() - t0
            w1, wal1, db1 = write_bytes(agent.pid), _size(wal), _size(db)
            folded = folds(db) - folds0
            kept = w1 - proc_io(agent.pid, "cancelled_write_bytes")
            b1 = write_bytes(_pid(broker))
        stop_bytes = max(0, stop_counting(agent) - kept)
    finally:
        agent.stop()
    files = tracer.breakdown(db, w1 - w0)
    fold = measure_fold(db) if fold_after else {"fold_rows": 0, "fold_write_bytes": 0}
    per_msg = (w1 - w0) / total
    fold_msgs = every * rate
    # A checkpoint follows a fold: when the fold falls after the window, so does the
    # checkpoint of the window's pages (the agent's stop copies them) and of the
    # prefill's. Both are charged with the fold (the stop's last commit with them).
    fold_charge = fold["fold_write_bytes"] + prefill_ckpt + stop_bytes
    fold_per_msg = fold_charge / fold_msgs if fold_after else 0.0
    per_day_msgs = rate * DAY
    return {
        "devices": len(fleet.names), "per_device_s": per_device_s, "rate": rate,
        "messages": total, "seconds": wall, "write_bytes": w1 - w0,
        "ingest_bytes_per_message": per_msg,
        "fold_every_s": every, "fold_in_window": not fold_after, "folds_in_window": folded,
        "fold_messages": fold_msgs if fold_after else None,
        "prefilled_messages": before, **fold,
        "prefill_checkpoint_bytes": prefill_ckpt, "agent_stop_write_bytes": stop_bytes,
        "fold_bytes_per_message": fold_per_msg,
        "bytes_per_message": per_msg + fold_per_msg,
        "mb_per_day": (per_msg + fold_per_msg) * per_day_msgs / 1e6,
        "fold_mb_per_day": fold_per_msg * per_day_msgs / 1e6,
        "payload_bytes_per_message": payload_bytes / len(fleet.names),
        "payload_mb_per_day": payload_bytes / len(fleet.names) * per_day_msgs / 1e6,
        "wal_bytes": [wal0, wal1], "db_bytes": [db0, db1],
        # The broker shares the SD card: its persistence snapshots, same window.
        "broker_write_bytes": b1 - b0,
        "broker_bytes_per_message": (b1 - b0) / total,
        "broker_mb_per_day": (b1 - b0) / total * per_day_msgs / 1e6,
        # write_bytes by file (bench.footprint_files), per message; None without strace.
        **_per_message(files, total),
        "fold_interval_s": ingest.fold_interval_s, "fold_rows_setting": ingest.fold_rows,
        "checkpoint_interval_s": ingest.checkpoint_interval_s,
        "commit_window_s": ingest.commit_window_s,
        "last_values_interval_s": ingest.last_values_interval_s,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["fold"]:
        _fold_here(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.footprint_writes fold DB")

