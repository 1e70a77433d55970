"""The WAL's bytes per commit by database page size (issue 21), exact and load-free.

Each commit of the ingest writer appends frames to the WAL and ``fsync``s it; the 4 KB
OS pages the append touches are dirtied again whatever was written to them before (the
partly filled last one every commit). This writes a fleet's state messages through
:meth:`agent.storage.store.Store.write_batch` on a fresh database per page size, with
the writer's held "last" values, commits of ``n`` messages, and counts from the WAL's
size before and after each commit the 4 KB pages it touched: the model
:mod:`bench.footprint_files` applies to the agent's ``pwrite64`` calls. The reference is
the agent's page size (1 KB) in the same run.

    python -m bench.wal_pages            # page sizes 512, 1024, 4096; 4 and 25 a commit
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import agent.storage.store as store_module
from agent.storage.store import Store
from agent.wire.device import StateMessage
from bench.common import write_results
from bench.ingest_load import Fleet

OS_PAGE = 4096
REFERENCE = 1024


def _pages(start: int, end: int) -> int:
    return 0 if end <= start else (end - 1) // OS_PAGE - start // OS_PAGE + 1


def measure(work: Path, page_size: int, per_commit: int, commits: int,
            devices: int) -> dict[str, Any]:
    """WAL frames and 4 KB pages per commit at ``page_size``, ``per_commit`` messages."""
    db = work / f"p{page_size}-{per_commit}.db"
    fleet = Fleet.make(devices)
    store_module.NEW_PAGE_SIZE = page_size
    now, step = 1_800_000_000.0, 60.0 / devices  # household pacing: a minute per device
    k = 0

    def batch(n: int) -> list[StateMessage]:
        nonlocal k
        out = [StateMessage.model_validate_json(
            fleet.payload(fleet.names[(k + i) % devices], now + (k + i) * step))
            for i in range(n)]
        k += n
        return out

    with Store(db) as store:
        store.lasts_every_s = 300.0  # the writer's default last_values_interval_s
        assert store.conn.execute("PRAGMA page_size").fetchone()[0] == page_size
        for _ in range(3):  # every device seen (its row written), then a clean WAL
            store.write_batch(batch(devices), received_at=now + k * step)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = db.with_name(db.name + "-wal")
        pages = frames = 0
        for _ in range(commits):
            before = wal.stat().st_size if wal.exists() else 0
            store.write_batch(batch(per_commit), received_at=now + k * step)
            after = wal.stat().st_size
            pages += _pages(before, after)
            frames += (after - before) // (page_size + 24)
    return {"page_size": page_size, "messages_per_commit": per_commit, "commits": commits,
            "frames_per_commit": frames / commits,
            "wal_bytes_per_commit": pages * OS_PAGE / commits,
            "wal_bytes_per_message": pages * OS_PAGE / commits / per_commit}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# WAL bytes per commit by page size", "",
             "4 KB OS pages each commit's WAL append touched (each dirtied again after the "
             "previous commit's fsync), from the WAL's size around each "
             "`Store.write_batch`; ratio against 1 KB pages (the agent's) at the same "
             "commit size.", "",
             "| page size | messages a commit | frames a commit | WAL B/commit | WAL B/msg | "
             "ratio |", "|---|---|---|---|---|---|"]
    ref = {r["messages_per_commit"]: r["wal_bytes_per_commit"] for r in rows
           if r["page_size"] == REFERENCE}
    for r in rows:
        lines.append(f"| {r['page_size']} | {r['messages_per_commit']} | "
                     f"{r['frames_per_commit']:.1f} | {r['wal_bytes_per_commit']:,.0f} | "
                     f"{r['wal_bytes_per_message']:,.0f} | "
                     f"{r['wal_bytes_per_commit'] / ref[r['messages_per_commit']]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wal_pages")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wal-pages-") as tmp:
        for per_commit in (4, 25):
            for page_size in (512, REFERENCE, 4096):
                rows.append(measure(Path(tmp), page_size, per_commit, args.commits,
                                    args.devices))
    md = markdown(rows)
    write_results("wal_pages", {"rows": rows, "argv": argv}, md, args.out)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
