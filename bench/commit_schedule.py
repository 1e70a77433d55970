"""Household load through the store: bytes written per message by commits, checkpoints
and folds, for each commit window and checkpoint rule, in one run.

50 devices, one state message a minute each (the fleet of :mod:`bench.fold_hour`: 25
printers with four toners, 25 fridges), on simulated time: ``Store.write_batch`` takes a
window's messages at a time, the held "last" values are due every 300 s, the recent tier
folds every hour. A checkpoint either runs every 300 s (the rule before) or follows the
fold (at most every 300 s: the writer's rule now). Bytes are the process's
``write_bytes`` (exact, whatever the load: every commit and checkpoint is fsync'd, so
simulated time writes what real time does). Not here: the ``-shm`` wal-index, which
the kernel writes back on its own clock (``bench.footprint`` measures the agent on real
time, wal-index and broker included).

    python -m bench.commit_schedule            # 2 days of history, 2 hours measured
    python -m bench.commit_schedule --quick    # 6 hours of history, 2 hours
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.storage.store import Store
from bench.common import header, machine_info, md_table, utcnow, write_results
from bench.fold_hour import DEVICES, message, write_bytes

RATE = DEVICES / 60.0  # one message a minute per device
LASTS_S, FOLD_S, CHECKPOINT_S = 300.0, 3_600.0, 300.0
WINDOWS = (30.0, 60.0, 120.0, 240.0)
RULES = ("every 300 s", "after the fold")


def run(db: Path, first: int, messages: int, window: float, after_fold: bool) -> dict[str, Any]:
    """``messages`` from message number ``first`` on; bytes per message by part."""
    seqs = {d: first // DEVICES + (d < first % DEVICES) for d in range(DEVICES)}
    parts = {"commits": 0, "checkpoints": 0, "folds": 0}
    per_commit = max(1, round(window * RATE))
    commits, k = 0, first
    with Store(db) as store:
        store.lasts_every_s = LASTS_S
        checkpointed = folded = message(first, dict(seqs), RATE).ts.timestamp()

        def timed(part: str, work: Any) -> None:
            w0 = write_bytes()
            work()
            parts[part] += write_bytes() - w0

        while k < first + messages:
            batch = [message(i, seqs, RATE) for i in range(k, min(k + per_commit,
                                                                  first + messages))]
            now = batch[-1].ts.timestamp()
            timed("commits", lambda b=batch, t=now: store.write_batch(b, received_at=t))
            commits, k = commits + 1, k + len(batch)
            fold_due = now - folded >= FOLD_S
            if fold_due:
                timed("folds", store.fold_recent)
                folded = now
            if now - checkpointed >= CHECKPOINT_S and (fold_due or not after_fold):
                timed("checkpoints", store.checkpoint)
                checkpointed = now
    per_msg = {p: b / messages for p, b in parts.items()}
    return {"window_s": window, "rule": RULES[after_fold], "commits": commits,
            **{f"{p}_bytes_per_message": v for p, v in per_msg.items()},
            "bytes_per_message": sum(per_msg.values()),
            "mb_per_day": sum(per_msg.values()) * RATE * 86_400 / 1e6}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=2.0, help="history before (default 2)")
    ap.add_argument("--hours", type=int, default=2, help="hours measured (default 2)")
    ap.add_argument("--quick", action="store_true", help="6 hours of history, 2 hours (CI)")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results)")
    args = ap.parse_args(argv)
    days, hours = (0.25, 2) if args.quick else (args.days, args.hours)
    first, messages = int(days * 86_400 * RATE), int(hours * 3_600 * RATE)
    started = utcnow()
    res: dict[str, Any] = {"started": started.isoformat(), "machine": machine_info(),
                           "argv": sys.argv, "history_messages": first,
                           "messages": messages, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-commit-schedule-") as tmp:
        base = Path(tmp) / "base.db"
        run(base, 0, first, 30.0, after_fold=False)  # the history, as the writer left it
        for window in WINDOWS:
            for after_fold in (False, True):
                db = Path(tmp) / f"w{window:g}-{after_fold}.db"
                shutil.copy(base, db)
                res["runs"].append(run(db, first, messages, window, after_fold))
                db.unlink()
    keys = ("commits", "checkpoints", "folds")
    rows = [[f"{r['window_s']:g} s", r["rule"], r["commits"],
             *(round(r[f"{p}_bytes_per_message"]) for p in keys),
             round(r["bytes_per_message"]), round(r["mb_per_day"], 1)] for r in res["runs"]]
    md = "\n".join([
        header("Commit window and checkpoint rule at household load (store only)",
               res["machine"], started),
        f"Command: `python {' '.join(sys.argv)}`\n",
        f"{DEVICES} devices x 1 msg/min, {first:,} messages of history, then {messages:,} "
        "measured; bytes written per message (`/proc/self/io`), without the wal-index.\n",
        md_table(["commit window", "checkpoint", "commits", "commits B/msg",
                  "checkpoints B/msg", "folds B/msg", "B/msg", "MB/day"], rows), ""])
    paths = write_results("commit_schedule", res, md, args.out)
    print(md)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
