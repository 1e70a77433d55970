"""Forecast benchmark: closed-loop simulated years, policies side by side.

    python -m bench.forecast            # 11 families x 30 seeds x 365 days
    python -m bench.forecast --quick    # a small grid for CI (under a minute)

Writes ``bench/results/forecast.json``, ``bench/results/forecast.md`` and
``bench/results/forecast.png``. AutoETS (statsforecast) runs only if importable, on the
first ``--ets-seeds`` seeds of each family (it costs ~0.1 s per fit).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

from bench.forecast_policies import ets_available, policies
from bench.forecast_report import aggregate, check_targets, markdown, plot
from bench.forecast_scenarios import FAMILIES
from bench.forecast_sim import ItemResult, run

RESULTS = Path(__file__).parent / "results"
PLOT_RUNS = {("weekday", 0), ("printer_steps10", 0), ("cgm", 0), ("vacations", 0)}


def _task(args: tuple[str, int, int, bool]) -> list[tuple[str, ItemResult]]:
    family_name, seed, days, with_ets = args
    family = next(f for f in FAMILIES if f.name == family_name)
    out = []
    for pol in policies(with_ets):
        keep = pol.name in ("agent", "oracle") and (family_name, seed) in PLOT_RUNS
        for r in run(family, seed, days, pol, keep_trace=keep):
            out.append((pol.name, r))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.forecast", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small grid for CI")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--ets-seeds", type=int, default=None)
    ap.add_argument("--families", default="", help="comma-separated subset")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 30)
    days = args.days or (150 if args.quick else 365)
    ets_seeds = args.ets_seeds if args.ets_seeds is not None else (0 if args.quick else 3)
    have_ets = ets_available()
    chosen = [f for f in FAMILIES if not args.families or f.name in args.families.split(",")]
    tasks = [(f.name, s, days, have_ets and s < ets_seeds) for f in chosen
             for s in range(seeds)]
    # Longest first (ETS tasks), so the two workers finish together.
    tasks.sort(key=lambda t: not t[3])
    t0 = time.perf_counter()
    results: list[tuple[str, ItemResult]] = []
    if args.workers > 1:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            for part in pool.imap_unordered(_task, tasks):
                results.extend(part)
    else:
        for task in tasks:
            results.extend(_task(task))
    wall = time.perf_counter() - t0
    summary = aggregate(results, [f.name for f in chosen])
    notes = []
    if not have_ets:
        notes.append("AutoETS skipped: statsforecast is not installed "
                     "(pip install statsforecast to include it)")
    elif ets_seeds <= 0:
        notes.append("AutoETS not run (--ets-seeds 0)")
    elif ets_seeds < seeds:
        notes.append(f"AutoETS ran on the first {min(ets_seeds, seeds)} seeds of each family "
                     "only (about 0.1 s per fit); compare it with the other policies on "
                     "those seeds only")
    targets = check_targets(summary)
    meta: dict[str, Any] = {
        "command": "python -m bench.forecast " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]),
        "seeds": seeds, "days": days, "families": [f.name for f in chosen],
        "family_descriptions": {f.name: f.description for f in chosen},
        "wall_seconds": round(wall, 1), "notes": notes, "python": sys.version.split()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "forecast.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "targets": targets}, indent=1, sort_keys=True))
    (args.out / "forecast.md").write_text(markdown(meta, summary, targets))
    traces = [(name, r) for name, r in results if r.trace is not None]
    png = plot(traces, args.out / "forecast.png")
    print(markdown(meta, summary, targets))
    if png is None:
        print("plot skipped: matplotlib is not installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
