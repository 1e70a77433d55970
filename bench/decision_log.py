"""Every decision of both benchmark families, written down to compare two versions.

    python -m bench.decision_log record /tmp/before.log.gz --family decisions --seeds 3
    python -m bench.decision_log record /tmp/before_fc.log.gz --family forecast --seeds 3
    python -m bench.decision_log compare /tmp/before.log.gz /tmp/after.log.gz

A change meant for speed only must leave every line the same: each policy decision of
every review (``repr`` of the :class:`~bench.forecast_policies.Decision`), each forecast
the agent and the oracle made on the way (its ``repr`` and a digest of its demand
curve's), each reorder plan, and each run's metrics (CPU times left out). The decisions
family runs the agent, the oracle and two reorder points (the level rule at 20 % and the
inventory-position rule at 1.3, which counts spare packs); the forecast family runs
``bench.forecast_policies.policies(False)``, the agent's year-end timing included.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bench.forecast_policies as fp

_buffer: list[str] = []
_CPU_FIELDS = {"decide_ms", "decide_seconds", "decide_calls", "year_end_ms"}


def _hook(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        curve = getattr(out, "curve", None)
        digest = "" if curve is None else hashlib.sha1(repr(curve).encode()).hexdigest()[:16]
        _buffer.append(f"{name}={out!r} curve={digest}")
        return out

    return wrapped


class _Logged:
    """A policy whose every decision (and what it computed on the way) goes to ``out``."""

    def __init__(self, inner: Any, out: Any, tag: str) -> None:
        self.inner, self.out, self.tag, self.name = inner, out, tag, inner.name

    def decide(self, view: Any) -> Any:
        _buffer.clear()
        dec = self.inner.decide(view)
        self.out.write(f"{self.tag} {self.name} {view.now.isoformat()} {dec!r} "
                       f"{' '.join(_buffer)}\n")
        return dec


def _metrics(res: Any) -> str:
    if dataclasses.is_dataclass(res) and not isinstance(res, type):
        res = dataclasses.asdict(res)
    return repr({k: v for k, v in res.items() if k not in _CPU_FIELDS})


def _record_decisions(out: Any, seeds: int, days: int) -> None:
    from bench.decisions import ReorderPoint, run
    from bench.decisions_world import SCENARIOS

    for scn in SCENARIOS:
        for seed in range(seeds):
            for make in (fp.AgentPolicy, fp.OraclePolicy, lambda: ReorderPoint(0.2),
                         lambda: ReorderPoint(1.3)):
                pol = make()
                tag = f"{scn.name}/{seed}"
                res = run(scn, seed, days, _Logged(pol, out, tag))
                out.write(f"{tag} {pol.name} metrics {_metrics(res)}\n")
        print(scn.name, flush=True)


def _record_forecast(out: Any, seeds: int, days: int) -> None:
    from bench.forecast_scenarios import FAMILIES
    from bench.forecast_sim import run

    for family in FAMILIES:
        for seed in range(seeds):
            for pol in fp.policies(False):
                tag = f"{family.name}/{seed}"
                for r in run(family, seed, days, _Logged(pol, out, tag)):
                    out.write(f"{tag} {pol.name} metrics {_metrics(r)}\n")
        print(family.name, flush=True)


def _lines(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt") as f:
        yield from f


def compare(a: Path, b: Path, show: int = 3) -> int:
    """Print the lines that differ between two logs; 0 when none does."""
    diffs = n_a = n_b = 0
    for x, y in zip(_lines(a), _lines(b), strict=False):
        n_a += 1
        n_b += 1
        if x != y:
            diffs += 1
            if diffs <= show:
                print(f"line {n_a}:\n- {x[:3000]}+ {y[:3000]}")
    n_a += sum(1 for _ in _lines(a)) - n_a
    n_b += sum(1 for _ in _lines(b)) - n_b
    print(f"{n_a} lines in {a}, {n_b} in {b}; {diffs} of the first {min(n_a, n_b)} differ")
    return 0 if diffs == 0 and n_a == n_b else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.decision_log", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--family", choices=("decisions", "forecast"), default="decisions")
    rec.add_argument("--seeds", type=int, default=3)
    rec.add_argument("--days", type=int, default=365)
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        return compare(args.a, args.b)
    fp.forecast = _hook("forecast", fp.forecast)  # type: ignore[assignment]
    fp.plan_reorder = _hook("plan", fp.plan_reorder)  # type: ignore[assignment]
    with gzip.open(args.out, "wt") as out:
        (_record_decisions if args.family == "decisions" else _record_forecast)(
            out, args.seeds, args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
