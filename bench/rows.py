"""Typed consumable rows (issue 14): what ``Store.consumables()`` costs now that it builds
frozen ``ConsumableRow``s with the device kind from a JOIN, against the read it replaced
(``SELECT c.*`` into dicts, then the planner's merge of each device's kind), timed in the
same run on the same database, alternating, as a ratio.

    python -m bench.rows            # 50 devices x 4 consumables, 150 rounds (~15 s)
    python -m bench.rows --quick    # 10 devices, 30 rounds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.domain import DeviceKind, Unit
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
# Typed rows may cost more than the dicts they replaced, but not enough to matter to a
# decision pass (~1 s for 100 consumables, bench/footprint.py): at most twice the read.
MAX_RATIO = 2.0


def seeded(db: Path, devices: int) -> None:
    with Store(db) as store:
        store.write_batch([StateMessage(
            device_id=f"dev-{d:03d}", seq=1, ts=T0 + timedelta(minutes=d),
            kind=(DeviceKind.PRINTER, DeviceKind.FRIDGE, DeviceKind.WEARABLE)[d % 3],
            consumables=[Consumable(id=f"c{i}", level=50.0 + i, unit=Unit.PERCENT,
                                    capacity=100, sku=f"SKU-{i}") for i in range(4)])
            for d in range(devices)], received_at=(T0 + timedelta(days=1)).timestamp())


def dict_rows(store: Store) -> list[dict[str, Any]]:
    """The replaced read, as the base commit did it (reads.py ``_dicts``, planner._rows)."""
    cur = store.conn.execute(
        "SELECT c.* FROM consumables c ORDER BY c.device_id, c.consumable_id")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, row, strict=True)) for row in cur]
    kinds = {d.device_id: d.kind.value for d in store.devices()}
    return [{**row, "kind": kinds.get(row["device_id"], "other")} for row in rows]


def timed(read: Any, store: Store, repeat: int) -> float:
    """Seconds per read, the best of five bursts (the machine is shared)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            read(store)
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    devices, rounds = (10, 30) if args.quick else (50, 150)
    started, machine = utcnow(), machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "agent.db"
        seeded(db, devices)
        with Store(db) as store:
            typed = store.consumables(counts=False)
            old = dict_rows(store)
            # Same rows, same order, same values: the comparison is like for like.
            assert [(r.device_id, r.consumable_id, r.device_kind.value, r.last_level)
                    for r in typed] == [(r["device_id"], r["consumable_id"], r["kind"],
                                         r["last_level"]) for r in old]
            ratios, new_s, ref_s = [], [], []
            for _ in range(rounds):  # alternate, so load drifts hit both alike
                ref = timed(dict_rows, store, 10)
                new = timed(lambda s: s.consumables(counts=False), store, 10)
                ref_s.append(ref)
                new_s.append(new)
                ratios.append(new / ref)
    ratio = statistics.median(ratios)
    data = {
        "machine": machine, "started": started.isoformat(), "devices": devices,
        "consumables": devices * 4, "rounds": rounds,
        "typed_read_ms": statistics.median(new_s) * 1e3,
        "dict_read_ms": statistics.median(ref_s) * 1e3,
        "ratio_typed_to_dict": ratio,
        "ratio_p10_p90": [statistics.quantiles(ratios, n=10)[0],
                          statistics.quantiles(ratios, n=10)[-1]],
    }
    checks = [at_most("typed read / dict read (median)", ratio, MAX_RATIO, "x")]
    data["checks"] = checks
    md = (header("Typed consumable rows", machine, started) + "\n"
          + md_table(["read", "ms per read (median)", "consumables"],
                     [["typed ConsumableRow, JOIN for the kind", data["typed_read_ms"],
                       devices * 4],
                      ["dicts + planner's kind merge (replaced)", data["dict_read_ms"],
                       devices * 4]])
          + f"\n\nRatio typed/dict: median {ratio:.2f}, p10-p90 "
            f"{data['ratio_p10_p90'][0]:.2f}-{data['ratio_p10_p90'][1]:.2f} over {rounds} "
            "alternating rounds.\n\n" + checks_table(checks))
    write_results("rows", data, md, args.out)
    print(md)
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
