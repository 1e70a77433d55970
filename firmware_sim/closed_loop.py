"""The demo household in a closed loop, with the agent in-process or as a real process.

``python -m firmware_sim.closed_loop --days 365 --seconds-per-day 1`` runs the
``make demo`` world twice (the same scenario, seed, broker setup, sandbox and consent):

- ``in-process``: the demo world with the agent in the loop's process; the loop ticks the
  agent's own simulated-time runner (:func:`agent.app.simtime.runner_for`) after each
  step, so its passes run at the same simulated instants and in the same order as the
  process's (it ran its own 01:00-anchored schedule before, which shifted learned lead
  times and stockout days);
- ``process``: the real ``replenish run --clock <sandbox>/_sandbox/clock``, which runs
  its passes itself when the sandbox's clock moves (decide every 6 simulated hours,
  dispatch and household sync every simulated hour); the loop advances the clock one
  hour, publishes the devices' readings, waits for the agent's passes at that instant
  (its ``simulated-clock`` marker), approves proposals and buys after reminders.

It prints both runs' orders per SKU and stockout days per consumable, judges them
against stated tolerances (:mod:`firmware_sim.loop_verdict`; exit code 1 on a fail) and,
with ``--out DIR``, writes the verdict as JSON and Markdown. ``make sim-year`` runs a
year into ``bench/results/sim_year.{json,md}``; the example vendor suite runs a week.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from agent.app.simtime import runner_for
from agent.clock import SIM_MARKER, SIM_OPT_IN_ENV, SimulatedClock
from firmware_sim import demo
from firmware_sim.household.live import LivePublisher
from firmware_sim.household.scenario import Household
from firmware_sim.loop_verdict import LoopResult, judge, results_from, write
from firmware_sim.vendor.orders import RecordedOrder

STEP = demo.STEP
# The process's passes on simulated time, at the demo's cadence (see the module text).
PROCESS_SETTINGS = {"[vendor]": "dispatch_interval_s = 3600",
                    "[household]": "sync_interval_s = 3600\nstate_interval_s = 3600"}


def _result(mode: str, days: int, household: Household, orders: Sequence[RecordedOrder],
            reminders: int, wall_s: float) -> LoopResult:
    start, end = household.start, household.start + timedelta(days=days)
    result = LoopResult(mode, days, reminders=reminders, wall_s=wall_s)
    for order in orders:
        result.orders[str(order.sku)] += 1
    for dev in household.devices:
        for cid in dev.stocks:
            total = timedelta(0)
            for begin, stop in dev.stockouts(cid):
                total += max(timedelta(0), min(stop or end, end) - max(begin, start))
            result.stockout_days[f"{dev.device_id}/{cid}"] = total / timedelta(days=1)
    return result


def _quiet() -> contextlib.AbstractContextManager[object]:
    """The demo's screen output (phone notifications, CLI echoes) goes nowhere."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed by the ExitStack below
    stack = contextlib.ExitStack()
    stack.callback(devnull.close)
    stack.enter_context(contextlib.redirect_stdout(devnull))
    old = demo._SCREEN
    demo._SCREEN = devnull
    stack.callback(setattr, demo, "_SCREEN", old)
    return stack


def _pace(tick: float, seconds_per_day: float) -> None:
    pause = seconds_per_day * STEP / timedelta(days=1)
    time.sleep(max(0.0, pause - (time.monotonic() - tick)))


def _after_passes(config: Path, household: Household, watcher: demo.HouseholdWatcher,
                  now: datetime, consented: bool) -> int:
    """The household's part after the agent's passes at ``now`` (the same on both sides):
    consent once, approve what a decision pass proposed, buy after reminders."""
    if not consented:
        for args in demo.CONSENT:
            demo.cli(config, "consent", "set", *args, now=now)
    if (now - household.start) % demo.DECIDE_EVERY == timedelta(0):
        demo.approve_proposals(config, now)  # the agent decided at now
    reminded = len(watcher.reminded)
    demo.buy_after_reminders(watcher, household, now)
    return reminded


def in_process(days: int, seconds_per_day: float, state: Path) -> LoopResult:
    """The demo world, the agent in-process on the runner the process uses, no screen."""
    from agent.app.service import AgentService
    from agent.config import load_settings
    from agent.logs import setup_logging

    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    wall0 = time.monotonic()
    with _quiet(), demo.demo_world(state) as (household, clock, broker, vendor, config):
        _process_config(config)
        setup_logging("INFO", (state / "agent.log").open("a"), journal=False)
        # Wired as ``replenish run --clock`` is (receipt stamps, commit at once, every
        # pass's "now" on the simulated clock), minus the runner's thread: the loop ticks
        # the agent's own runner, so both sides run the same passes at the same instants.
        simulated = SimulatedClock("in-process", clock.now)
        service = AgentService(load_settings(config), simulated=simulated)
        service.start(background_jobs=False)
        runner = runner_for(service, simulated)
        watcher = demo.HouseholdWatcher(broker)
        reminders = 0
        passwords = {d.device_id: broker.passwords[d.device_id] for d in household.devices}
        end = household.start + timedelta(days=days)
        try:
            runner.tick(household.start)  # as the process does when it starts
            with LivePublisher(household, broker.host, broker.port, passwords) as publisher:
                # The settle waits for ingest to commit what the devices delivered (the
                # count the process reads from the sandbox's clock), not a quiet moment.
                runner.settle = dataclasses.replace(
                    runner.settle, announced=lambda at: publisher.delivered,
                    announces=lambda: True)
                now, consented = household.start, False
                while now < end:
                    tick = time.monotonic()
                    now = demo.advance_world(clock, vendor, publisher, STEP)
                    runner.tick(now)
                    reminders += _after_passes(config, household, watcher, now, consented)
                    consented = True
                    _pace(tick, seconds_per_day)
        finally:
            watcher.close()
            runner.close()
            service.shutdown()
        return _result("in-process", days, household, vendor.orders(), reminders,
                       time.monotonic() - wall0)


def _process_config(config: Path) -> None:
    text = config.read_text() + "\n[forecast]\ninterval_s = 21600\n"
    for section, keys in PROCESS_SETTINGS.items():
        text = text.replace(f"{section}\n", f"{section}\n{keys}\n", 1)
    config.write_text(text)


def _wait_passes(marker: Path, at: datetime, proc: subprocess.Popen[bytes],
                 timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            passes = json.loads(marker.read_text()).get("passes_at")
        except (OSError, ValueError):
            passes = None
        if passes and datetime.fromisoformat(passes) >= at:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {proc.returncode}")
        time.sleep(0.002)
    raise TimeoutError(f"the agent did not run its passes for {at.isoformat()}")


def process(days: int, seconds_per_day: float, state: Path) -> LoopResult:
    """The same world with the real ``replenish run --clock`` following the sandbox."""
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    wall0 = time.monotonic()
    with _quiet(), demo.demo_world(state) as (household, clock, broker, vendor, config):
        _process_config(config)
        marker = state / SIM_MARKER
        with (state / "agent.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "--config", str(config), "run",
                 "--clock", f"{vendor.url}/_sandbox/clock"], stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, SIM_OPT_IN_ENV: "1", "PYTHONUNBUFFERED": "1"})
        watcher: demo.HouseholdWatcher | None = None
        try:
            _wait_passes(marker, household.start, proc)
            watcher = demo.HouseholdWatcher(broker)
            reminders = 0
            passwords = {d.device_id: broker.passwords[d.device_id] for d in household.devices}
            end = household.start + timedelta(days=days)
            with LivePublisher(household, broker.host, broker.port, passwords) as publisher:
                now, consented = household.start, False
                while now < end:
                    tick = time.monotonic()
                    now = demo.advance_world(clock, vendor, publisher, STEP)
                    clock.announce(now, publisher.delivered)  # the agent's settle marker
                    _wait_passes(marker, now, proc)
                    reminders += _after_passes(config, household, watcher, now, consented)
                    consented = True
                    _pace(tick, seconds_per_day)
        finally:
            if watcher is not None:
                watcher.close()
            proc.terminate()
            proc.wait(30)
        return _result("process", days, household, vendor.orders(), reminders,
                       time.monotonic() - wall0)


MODES: dict[str, Callable[[int, float, Path], LoopResult]] = {
    "in-process": in_process, "process": process}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.closed_loop",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seconds-per-day", type=float, default=1.0)
    parser.add_argument("--state-dir", type=Path, default=Path("closed-loop-state"))
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the verdict as OUT/NAME.json and OUT/NAME.md")
    parser.add_argument("--name", default="sim_year", help="result file name (no suffix)")
    parser.add_argument("--judge", type=Path, nargs="+", metavar="OUTPUT", default=None,
                        help="judge runs saved from earlier --mode runs (their output) "
                             "instead of running")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the agent process and the broker are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # Judged runs ran earlier: the load now says nothing about them.
    load_avg = None if args.judge is not None else os.getloadavg()
    modes = list(MODES) if args.mode == "both" else [args.mode]
    if args.judge is not None:
        saved = {r.mode: r for path in args.judge for r in results_from(path)}
        if set(saved) != set(MODES):
            parser.error(f"--judge needs one in-process and one process run, found "
                         f"{sorted(saved) or 'none'}")
        results = [saved[m] for m in MODES]
    else:
        results = [MODES[m](args.days, args.seconds_per_day, args.state_dir / m)
                   for m in modes]
    for result in results:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    if len(results) < 2:
        return 0
    verdict = judge(*results)
    sys.stdout.write(verdict.table() + "\n")
    sys.stdout.write(f"verdict: {'PASS' if verdict.passed else 'FAIL'}\n")
    if args.out is not None:
        command = " ".join(["python -m firmware_sim.closed_loop",
                            *(argv if argv is not None else sys.argv[1:])])
        for path in write(verdict, results, args.out, args.name, command, load_avg):
            sys.stdout.write(f"wrote {path}\n")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
