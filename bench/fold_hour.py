"""An hour at 50 devices x 1 msg/s through the store: bytes written per message by ten
minutes, with the hour's readings in parts (schema 12) and, as the reference in the same
run, in one row per hour (what schema 11 did: parts too large to ever fill).

Each fold rewrote every consumable's whole current hour with one row per hour, so the
bytes per message grew through the hour; the footprint benchmark's 1 msg/s window (the
first minutes of an hour) did not see it. ``Store.write_batch`` and ``fold_recent`` run
as the ingest writer runs them at that rate (750 messages a commit, a fold at
``fold_rows`` = 10,000 recent rows, a checkpoint every 30,000 messages); bytes are the
process's ``write_bytes`` (exact, whatever the load).

    python -m bench.fold_hour            # one hour, both layouts (~2 min)
    python -m bench.fold_hour --quick    # the first 20 minutes (CI)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.domain import DeviceKind, Unit
from agent.storage import packed
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from bench.common import (
    at_most,
    checks_table,
    header,
    machine_info,
    md_table,
    utcnow,
    write_results,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DEVICES, RATE = 50, 50.0  # messages a second, one per device
PER_COMMIT, FOLD_ROWS, SLICE_MSGS = 750, 10_000, 30_000
# The goal at 1 msg/s per device: at most 1 KB written per message.
GOAL_BYTES = 1024


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes:"))


def message(k: int, seqs: dict[int, int], rate: float = RATE) -> StateMessage:
    """The ``k``-th message of the fleet, devices in turn at ``rate`` messages a second."""
    d = k % DEVICES
    seq = seqs[d] = seqs.get(d, 0) + 1
    ts = T0 + timedelta(seconds=k / rate)
    if d < DEVICES // 2:  # printers, four toners
        cons = [Consumable(id=c, level=max(0.0, 100 - (seq % 1000) / 10), unit=Unit.PERCENT,
                           counters={"pages": seq})
                for c in ("black", "cyan", "magenta", "yellow")]
        return StateMessage(device_id=f"dev{d}", seq=seq, ts=ts, kind=DeviceKind.PRINTER,
                            consumables=cons)
    cons = [Consumable(id="milk", level=float(2000 - seq % 2000), unit=Unit.GRAMS,
                       capacity=2000.0)]
    return StateMessage(device_id=f"dev{d}", seq=seq, ts=ts, kind=DeviceKind.FRIDGE,
                        consumables=cons)


def run(db: Path, messages: int) -> dict[str, Any]:
    seqs: dict[int, int] = {}
    slices, folds, k = [], 0, 0
    with Store(db) as store:
        w0 = write_bytes()
        while k < messages:
            batch = [message(i, seqs) for i in range(k, min(k + PER_COMMIT, messages))]
            store.write_batch(batch, received_at=batch[-1].ts.timestamp())
            k += len(batch)
            if len(store.recent) >= FOLD_ROWS:
                store.fold_recent()
                folds += 1
            if k % SLICE_MSGS == 0 or k == messages:
                store.checkpoint()
                w1 = write_bytes()
                slices.append((w1 - w0) / (k - SLICE_MSGS * (len(slices))))
                w0 = w1
        parts = int(store.conn.execute("SELECT COUNT(*) FROM readings_main").fetchone()[0])
    return {"bytes_per_message_by_slice": slices, "folds": folds, "rows": parts,
            "bytes_per_message": sum(slices) / len(slices)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=60, help="minutes of the hour (default 60)")
    ap.add_argument("--quick", action="store_true", help="the first 20 minutes (CI)")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results)")
    args = ap.parse_args(argv)
    messages = int((20 if args.quick else args.minutes) * 60 * RATE)
    started = utcnow()
    res: dict[str, Any] = {"started": started.isoformat(), "machine": machine_info(),
                           "argv": sys.argv, "messages": messages,
                           "part_elements": packed.PART_ELEMENTS}
    with tempfile.TemporaryDirectory(prefix="bench-fold-hour-") as tmp:
        res["parts"] = run(Path(tmp) / "parts.db", messages)
        parts = packed.PART_ELEMENTS
        packed.PART_ELEMENTS = 1 << 30  # one row per hour: the reference
        try:
            res["one_row_per_hour"] = run(Path(tmp) / "hour.db", messages)
        finally:
            packed.PART_ELEMENTS = parts
    checks = [at_most("bytes written per message over the hour, 1 msg/s per device",
                      res["parts"]["bytes_per_message"], GOAL_BYTES, "B", strict=False,
                      note="store only: no wal-index, no broker")]
    res["checks"] = checks
    minutes = [f"{i * SLICE_MSGS / RATE / 60:.0f}-{(i + 1) * SLICE_MSGS / RATE / 60:.0f} min"
               for i in range(len(res["parts"]["bytes_per_message_by_slice"]))]
    rows = [[name, *r["bytes_per_message_by_slice"], r["bytes_per_message"], r["folds"],
             r["rows"]] for name, r in (("parts (schema 12)", res["parts"]),
                                        ("one row per hour (schema 11)",
                                         res["one_row_per_hour"]))]
    md = "\n".join([
        header("Fold over an hour at 1 msg/s per device", res["machine"], started),
        f"Command: `python {' '.join(sys.argv)}`\n",
        f"{DEVICES} devices x 1 msg/s ({messages:,} messages; {PER_COMMIT} a commit, a fold "
        f"at {FOLD_ROWS:,} recent rows, a checkpoint every {SLICE_MSGS:,} messages). "
        "Bytes written per message (`/proc/self/io`).\n",
        "## Targets\n", checks_table(checks), "\n## By ten minutes\n",
        md_table(["folded tier", *minutes, "mean", "folds", "rows"], rows), ""])
    paths = write_results("fold_hour", res, md, args.out)
    print(md)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
