"""Bytes the agent writes to storage per message (SD-card wear), part of bench.footprint.

The real ``replenish run`` on the year database; devices publish state messages at a
steady, evenly spread rate. Measured over the publishing window (after start-up):

* ``write_bytes`` from ``/proc/<agent pid>/io``: what the process sent to the block
  layer (WAL appends and fsyncs, checkpoints into the database file, every job of the
  agent, not only ingest);
* the WAL's and the database file's sizes before and after.

Extrapolated per day at the same rate. The agent runs with a fold of the recent readings
tier every ``FOLD_S`` (default: an hour) and the default checkpoint interval, so a fold
is inside the window: its cost per message is overstated about 12 times, and the figures
are an upper bound for the default settings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import AgentRunner
from bench.ingest_load import Fleet, publish_paced
from firmware_sim.broker import LocalBroker

DAY = 86_400
FOLD_S = 300.0
CHECKPOINT_S = 300.0


def ingest_toml(commit_window_s: float | None) -> str:
    """The agent.toml [ingest] section of the write measurement."""
    window = "" if commit_window_s is None else f"commit_window_s = {commit_window_s}\n"
    return (f"\n[ingest]\nfold_interval_s = {FOLD_S}\ncheckpoint_interval_s = {CHECKPOINT_S}\n"
            + window)


def write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def measure(broker: LocalBroker, config: Path, db: Path, fleet: Fleet, per_device_s: float,
            seconds: float) -> dict[str, Any]:
    """Every device sends one message per ``per_device_s``, for ``seconds``."""
    agent = AgentRunner(config).start()
    try:
        time.sleep(3.0)  # start-up work (migrations, first jobs) is not per message
        rate = len(fleet.names) / per_device_s
        total = max(1, round(rate * seconds))
        payload_bytes = sum(len(fleet.payload(n, time.time())) for n in fleet.names)
        for n in fleet.names:  # payload() counted a message: take it back
            fleet.seq[n] -= 1
        wal = Path(f"{db}-wal")
        w0, wal0, db0 = write_bytes(agent.pid), _size(wal), _size(db)
        t0 = time.monotonic()
        publish_paced(broker, fleet, total, rate, {})
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        wall = time.monotonic() - t0
        w1, wal1, db1 = write_bytes(agent.pid), _size(wal), _size(db)
    finally:
        agent.stop()
    per_msg = (w1 - w0) / total
    per_day_msgs = rate * DAY
    return {
        "devices": len(fleet.names), "per_device_s": per_device_s, "rate": rate,
        "messages": total, "seconds": wall, "write_bytes": w1 - w0,
        "bytes_per_message": per_msg, "mb_per_day": per_msg * per_day_msgs / 1e6,
        "payload_bytes_per_message": payload_bytes / len(fleet.names),
        "payload_mb_per_day": payload_bytes / len(fleet.names) * per_day_msgs / 1e6,
        "wal_bytes": [wal0, wal1], "db_bytes": [db0, db1],
        "fold_interval_s": FOLD_S, "checkpoint_interval_s": CHECKPOINT_S,
    }
