"""Does the real process decide like the in-process demo? A verdict with stated tolerances.

Two closed-loop runs (:mod:`firmware_sim.closed_loop`) of the same world are compared on
what a household notices: how many orders went out per SKU and how many days each
consumable was empty. Exact times may drift (learned lead times feed back into later
forecasts), so each figure gets a tolerance relative to the larger of the two values:

- orders per SKU: ``|a - b| <= max(1, 2 % of the larger count)``;
- stockout days per consumable: ``|a - b| <= 0.5 day + 10 % of the larger value``.

The verdict passes when every row is within its tolerance; ``closed_loop`` exits 1
otherwise and writes the table as JSON and Markdown (``--out DIR``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopResult:
    """What a closed loop did: orders at the vendor, days without stock, wall time."""

    mode: str
    days: int
    orders: Counter[str] = field(default_factory=Counter)  # SKU -> orders
    stockout_days: dict[str, float] = field(default_factory=dict)  # device/consumable
    reminders: int = 0
    wall_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode, "days": self.days, "orders": dict(self.orders),
                "orders_total": sum(self.orders.values()),
                "stockout_days": {k: round(v, 2) for k, v in self.stockout_days.items()},
                "stockout_days_total": round(sum(self.stockout_days.values()), 2),
                "reminders": self.reminders, "wall_s": round(self.wall_s, 1)}


def results_from(path: Path) -> list[LoopResult]:
    """The runs a ``closed_loop`` output holds (its JSON lines with a ``mode``): two halves
    run as separate commands (``--mode``) are judged together with ``--judge``."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "mode" in data:
            found.append(LoopResult(
                str(data["mode"]), int(data["days"]), Counter(data["orders"]),
                {k: float(v) for k, v in data["stockout_days"].items()},
                int(data["reminders"]), float(data["wall_s"])))
    return found


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far apart the two runs may be and still count as the same decisions."""

    orders_min: int = 1
    orders_share: float = 0.02
    stockout_days_min: float = 0.5
    stockout_share: float = 0.10

    def orders(self, a: float, b: float) -> float:
        return max(float(self.orders_min), self.orders_share * max(a, b))

    def stockout_days(self, a: float, b: float) -> float:
        return self.stockout_days_min + self.stockout_share * max(a, b)

    def describe(self) -> dict[str, str]:
        return {"orders": f"|diff| <= max({self.orders_min}, "
                          f"{self.orders_share:.0%} of the larger count)",
                "stockout days": f"|diff| <= {self.stockout_days_min:g} day + "
                                 f"{self.stockout_share:.0%} of the larger value"}


@dataclass(frozen=True, slots=True)
class Row:
    """One compared figure: an SKU's order count or a consumable's stockout days."""

    kind: str  # "orders" or "stockout days"
    key: str
    in_process: float
    process: float
    allowed: float

    @property
    def diff(self) -> float:
        return self.process - self.in_process

    @property
    def passed(self) -> bool:
        return abs(self.diff) <= self.allowed + 1e-9


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every compared row and whether the two runs decided alike."""

    days: int
    rows: tuple[Row, ...]
    tolerance: Tolerance
    reminders: tuple[int, int]
    wall_s: tuple[float, float]

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failures(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.passed)

    def table(self) -> str:
        """A Markdown table, one line per row (also readable on a terminal)."""
        lines = ["| figure | key | in-process | process | diff | allowed | verdict |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.kind} | {r.key} | {r.in_process:g} | {r.process:g} | "
                         f"{r.diff:+.2f} | {r.allowed:.2f} | "
                         f"{'PASS' if r.passed else 'FAIL'} |")
        return "\n".join(lines)

    def markdown(self, command: str) -> str:
        head = [f"# Closed loop, {self.days} simulated days: in-process vs real process",
                "", f"Command: `{command}`", "",
                f"**Verdict: {'PASS' if self.passed else 'FAIL'}** "
                f"({len(self.rows) - len(self.failures)} of {len(self.rows)} rows within "
                "tolerance)", "",
                *(f"- tolerance on {k}: {v}" for k, v in self.tolerance.describe().items()),
                f"- reminders: {self.reminders[0]} in-process, {self.reminders[1]} process",
                f"- wall time: {self.wall_s[0]:.1f} s in-process, {self.wall_s[1]:.1f} s "
                "process", ""]
        return "\n".join(head) + self.table() + "\n"

    def to_json(self) -> dict[str, object]:
        return {"days": self.days, "passed": self.passed,
                "tolerance": self.tolerance.describe(),
                "rows": [{"kind": r.kind, "key": r.key, "in_process": r.in_process,
                          "process": r.process, "diff": round(r.diff, 2),
                          "allowed": round(r.allowed, 2), "passed": r.passed}
                         for r in self.rows],
                "reminders": list(self.reminders), "wall_s": list(self.wall_s)}


def judge(in_process: LoopResult, process: LoopResult,
          tolerance: Tolerance | None = None) -> Verdict:
    """Compare the two runs row by row (a key one side lacks counts as 0 there)."""
    if in_process.days != process.days:
        raise ValueError(f"the runs cover different spans: {in_process.days} vs "
                         f"{process.days} days")
    tol = tolerance or Tolerance()
    rows: list[Row] = []
    for sku in sorted(set(in_process.orders) | set(process.orders)):
        a, b = in_process.orders.get(sku, 0), process.orders.get(sku, 0)
        rows.append(Row("orders", sku, a, b, tol.orders(a, b)))
    for key in sorted(set(in_process.stockout_days) | set(process.stockout_days)):
        x = round(in_process.stockout_days.get(key, 0.0), 2)
        y = round(process.stockout_days.get(key, 0.0), 2)
        rows.append(Row("stockout days", key, x, y, tol.stockout_days(x, y)))
    return Verdict(in_process.days, tuple(rows), tol,
                   (in_process.reminders, process.reminders),
                   (round(in_process.wall_s, 1), round(process.wall_s, 1)))


def write(verdict: Verdict, results: list[LoopResult], out_dir: Path, name: str,
          command: str, load_avg: tuple[float, float, float] | None
          ) -> tuple[Path, Path]:
    """``<name>.json`` (verdict, both runs, load averages) and ``<name>.md``. Without
    ``load_avg`` (runs judged from saved output) no load is reported: it was not recorded."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {"command": command, "verdict": verdict.to_json(),
                               "runs": [r.to_json() for r in results], "cores": os.cpu_count()}
    load = f"\nLoad average: not recorded (judged from saved runs); {os.cpu_count()} cores.\n"
    if load_avg is not None:
        end_load = os.getloadavg()
        data["load_avg_at_start"] = [round(x, 2) for x in load_avg]
        data["load_avg_at_end"] = [round(x, 2) for x in end_load]
        load = (f"\nLoad average (1, 5, 15 min) at start {_load(load_avg)}, at end "
                f"{_load(end_load)}; {os.cpu_count()} cores.\n")
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md = verdict.markdown(command) + load
    md_path.write_text(md)
    return json_path, md_path


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)
