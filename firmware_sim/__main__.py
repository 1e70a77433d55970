"""The ``replenish-sim`` command line.

    replenish-sim household SCENARIO --broker HOST:PORT --passwords FILE [--speed 86400]
    replenish-sim generate SCENARIO --out readings.jsonl [--days 365] [--truth truth.json]
    replenish-sim scenarios
    replenish-sim timeit SCENARIO [--households 20] [--report-every-minutes 360]
    replenish-sim fixtures [--out tests/fixtures]
    replenish-sim fleet SCENARIO --households N --broker HOST:PORT --password-file F [--shard I/N]
    replenish-sim vendor --port PORT --token-file FILE ...   (firmware_sim.vendor)
    replenish-sim conformance --base-url URL --token-file FILE [--sku SKU]

SCENARIO is a TOML file or the name of a shipped scenario (``replenish-sim scenarios``).
Progress goes to stderr, results and summaries to stdout. Exit codes: 0 fine, 1 runtime
failure (broker unreachable or refusing), 2 usage or scenario error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from agent.errors import BrokerError
from agent.wire.device import Channel, StateMessage, device_topic
from firmware_sim.devices.faults import FAULTS, FaultPlan
from firmware_sim.devices.recorded import write_fixtures
from firmware_sim.fleet import Fleet, parse_shard, progress_bar
from firmware_sim.household.live import (
    DEFAULT_SPEED,
    DEFAULT_TICK_S,
    LivePublisher,
    LiveStats,
    attach_sandbox,
    load_passwords,
)
from firmware_sim.household.scenario import (
    Household,
    Trace,
    load_scenario,
    run_offline,
    shipped_scenarios,
)

DEFAULT_FIXTURES = Path("tests/fixtures")


class Progress:
    """A one-line progress indicator on stderr (redrawn on a terminal, sparse otherwise)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, every_s: float = 1.0) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else max(every_s, 5.0)
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        end = "\r" if self.tty else "\n"
        self.stream.write(f"{self.label}: {text}\x1b[K{end}" if self.tty
                          else f"{self.label}: {text}{end}")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _household(args: argparse.Namespace) -> Household:
    data = load_scenario(args.scenario)
    if getattr(args, "start", None):
        data["start"] = args.start
    return Household.from_scenario(data, seed=args.seed)


def _broker(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host, int(port)


# -- household (live) ----------------------------------------------------------------------


def cmd_household(args: argparse.Namespace) -> int:
    """Publish a scenario over MQTT until --days simulated days pass or Ctrl-C."""
    hh = _household(args)
    passwords = load_passwords(args.passwords)
    faults = None
    if args.faults:
        faults = FaultPlan(args.faults.split(","), args.fault_rate, seed=hh.seed)
    host, port = args.broker
    publisher = LivePublisher(hh, host, port, passwords, speed=args.speed, tick_s=args.tick,
                              faults=faults, cafile=args.cafile)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    bar = Progress(f"household {hh.name}")
    sandbox = None
    if args.sandbox_token_file is not None:
        token = args.sandbox_token_file.read_text().strip()
        sandbox = attach_sandbox(publisher, token, host=args.sandbox_host,
                                 port=args.sandbox_port)
        print(f"vendor sandbox: {sandbox.url}", flush=True)

    def progress(stats: LiveStats) -> None:
        if stats.sim_now is not None:
            bar.show(f"{stats.sim_now:%Y-%m-%d %H:%M} sim, "
                     f"{sum(stats.states.values())} readings, {sum(stats.events.values())} events")

    try:
        with publisher:
            stats = publisher.run(days=args.days, progress=progress, stop=stop)
    except BrokerError as err:
        bar.done()
        sys.stderr.write(f"replenish-sim: {err}\n")
        return 1
    finally:
        if sandbox is not None:
            sandbox.stop()
    bar.done()
    print(f"household {hh.name} against {host}:{port}, speed {args.speed:g}x")
    print(stats.summary())
    if sandbox is not None:
        delivered = [o for o in sandbox.orders() if o.delivered_at is not None]
        print(f"  sandbox: {len(sandbox.orders())} orders, {len(delivered)} delivered")
    return 0


# -- generate (offline) --------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def write_jsonl(trace: Trace, out: TextIO, bar: Progress | None = None) -> int:
    """Every reading and event as JSON lines in arrival order; returns the line count."""
    rows: list[tuple[datetime, str, dict[str, Any]]] = []
    for at, body in trace.raw:
        msg = StateMessage.model_validate(body)
        rows.append((at, device_topic(msg.device_id, Channel.STATE),
                     msg.model_dump(mode="json", exclude_none=True)))
        if bar is not None and len(rows) % 2000 == 0:
            bar.show(f"{len(rows)}/{len(trace.raw)} readings")
    for event in trace.events:
        rows.append((event.ts, device_topic(event.device_id, Channel.EVENTS),
                     event.model_dump(mode="json", exclude_none=True)))
    rows.sort(key=lambda r: r[0])
    for at, topic, payload in rows:
        out.write(json.dumps({"received_at": _iso(at), "topic": topic, "payload": payload},
                             separators=(",", ":")) + "\n")
    return len(rows)


def truth_document(trace: Trace) -> dict[str, Any]:
    """Ground truth of a trace as JSON-ready data."""
    consumables = {}
    for (device_id, cid), series in trace.truth.items():
        stock = trace.household.device(device_id).stocks[cid]
        consumables[f"{device_id}/{cid}"] = {
            "sku": stock.sku, "unit": stock.unit.value, "capacity": stock.capacity,
            "pack_size": stock.pack_size,
            "levels": [[_iso(t), round(level, 4)] for t, level in series],
            "run_outs": [_iso(t) for t in trace.run_outs[(device_id, cid)]],
            "stockout_days": round(trace.stockout_days((device_id, cid)), 4),
        }
    return {"household": trace.household.name, "seed": trace.household.seed,
            "start": _iso(trace.start), "end": _iso(trace.end), "consumables": consumables}


def cmd_generate(args: argparse.Namespace) -> int:
    """Simulate offline and write readings (JSON lines) and optionally the ground truth."""
    hh = _household(args)
    bar = Progress(f"generate {hh.name}")
    started = time.perf_counter()
    every = timedelta(minutes=args.report_every_minutes) if args.report_every_minutes else None
    trace = run_offline(hh, days=args.days, report_every=every)
    simulated = time.perf_counter() - started
    bar.show(f"simulated {args.days} days in {simulated:.2f} s, writing", force=True)
    if str(args.out) == "-":
        lines = write_jsonl(trace, sys.stdout, bar)
    else:
        with args.out.open("w") as fh:
            lines = write_jsonl(trace, fh, bar)
    if args.truth:
        args.truth.write_text(json.dumps(truth_document(trace), indent=1) + "\n")
    bar.done()
    out = sys.stderr if str(args.out) == "-" else sys.stdout
    out.write(f"{hh.name}: {args.days} days, {lines} lines -> {args.out} "
              f"(simulated in {simulated:.2f} s, total {time.perf_counter() - started:.2f} s)\n")
    for (device_id, cid), outs in trace.run_outs.items():
        out.write(f"  {device_id}/{cid}: {len(outs)} run-outs, "
                  f"{trace.stockout_days((device_id, cid)):.1f} days without stock\n")
    return 0


# -- small commands --------------------------------------------------------------------------


def cmd_scenarios(args: argparse.Namespace) -> int:
    """List the shipped scenarios and their devices."""
    for name in shipped_scenarios():
        hh = Household.from_scenario(name)
        devices = ", ".join(f"{d.device_id} ({d.kind.value})" for d in hh.devices)
        print(f"{name}: {devices}")
    return 0


def cmd_timeit(args: argparse.Namespace) -> int:
    """Time offline household-years (CPU and wall), one seed after another."""
    every = timedelta(minutes=args.report_every_minutes) if args.report_every_minutes else None
    data = load_scenario(args.scenario)
    readings = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for seed in range(args.households):
        readings += len(run_offline(data, days=args.days, report_every=every, seed=seed).raw)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = args.households
    print(f"{args.scenario}: {n} households x {args.days} days, {readings / n:.0f} readings "
          f"each; per household: {cpu / n:.3f} s CPU, {wall / n:.3f} s wall; "
          f"total {wall:.2f} s")
    return 0


def cmd_fixtures(args: argparse.Namespace) -> int:
    """Rewrite the recorded payload fixtures."""
    for path in write_fixtures(args.out):
        print(path)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """Many households from one process (one MQTT connection per device)."""
    host, port = args.broker
    password = args.password_file.read_text().strip()
    fleet = Fleet(args.scenario, args.households, host, port, password, shard=args.shard,
                  seed=args.seed, speed=args.speed)
    stats = fleet.run(args.days, tick_s=args.tick,
                      progress=None if args.quiet else progress_bar(args.days))
    if not args.quiet:
        sys.stderr.write("\n")
    print(stats.summary())
    return 0 if stats.acknowledged == stats.published and not stats.refused else 1


def cmd_vendor(args: argparse.Namespace) -> int:
    """Hand over to the vendor sandbox."""
    vendor = importlib.import_module("firmware_sim.vendor")
    code: int = vendor.main(args)
    return code


def cmd_conformance(args: argparse.Namespace) -> int:
    """Hand over to the conformance kit (firmware_sim.conformance)."""
    code: int = importlib.import_module("firmware_sim.conformance").main(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The full ``replenish-sim`` parser."""
    parser = argparse.ArgumentParser(prog="replenish-sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def scenario_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("scenario", help="TOML file or shipped scenario name")
        p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
        p.add_argument("--start", default=None,
                       help="override the scenario's start (ISO 8601 date or datetime)")

    live = sub.add_parser("household", help="publish a household over MQTT (live)")
    scenario_args(live)
    live.add_argument("--broker", type=_broker, required=True, metavar="HOST:PORT")
    live.add_argument("--passwords", type=Path, required=True,
                      help="file of device_id:password lines")
    live.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                      help="simulated seconds per real second (86400: a day a second)")
    live.add_argument("--days", type=float, default=None,
                      help="stop after this many simulated days (default: until Ctrl-C)")
    live.add_argument("--cafile", type=Path, default=None, help="CA certificate for TLS")
    live.add_argument("--faults", default="",
                      help=f"comma-separated fault modes: {','.join(sorted(FAULTS))}")
    live.add_argument("--fault-rate", type=float, default=0.01,
                      help="share of readings replaced by a fault (default 0.01)")
    live.add_argument("--tick", type=float, default=DEFAULT_TICK_S,
                      help="wall seconds between publishing steps")
    live.add_argument("--sandbox-token-file", type=Path, default=None,
                      help="also run the vendor sandbox on the household's clock (closed "
                           "loop: its deliveries refill the devices); file holds the token")
    live.add_argument("--sandbox-host", default="127.0.0.1")
    live.add_argument("--sandbox-port", type=int, default=8080, help="0 picks a free port")
    live.set_defaults(func=cmd_household)

    gen = sub.add_parser("generate", help="simulate offline and write JSON lines")
    scenario_args(gen)
    gen.add_argument("--out", type=Path, required=True, help="readings file ('-' for stdout)")
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--truth", type=Path, default=None, help="also write ground truth JSON")
    gen.add_argument("--report-every-minutes", type=float, default=None,
                     help="override every device's heartbeat interval")
    gen.set_defaults(func=cmd_generate)

    lst = sub.add_parser("scenarios", help="list the shipped scenarios")
    lst.set_defaults(func=cmd_scenarios)

    tim = sub.add_parser("timeit", help="measure offline simulation speed")
    tim.add_argument("scenario", help="TOML file or shipped scenario name")
    tim.add_argument("--households", type=int, default=20, help="seeds 0..N-1")
    tim.add_argument("--days", type=int, default=365)
    tim.add_argument("--report-every-minutes", type=float, default=None)
    tim.set_defaults(func=cmd_timeit)

    flt = sub.add_parser("fleet", help="many households from one process (load tests)")
    flt.add_argument("scenario", help="TOML file or shipped scenario name")
    flt.add_argument("--households", type=int, required=True)
    flt.add_argument("--broker", type=_broker, required=True, metavar="HOST:PORT")
    flt.add_argument("--password-file", type=Path, required=True,
                     help="the one password every fleet device uses on the test broker")
    flt.add_argument("--days", type=float, default=1.0, help="simulated days to run")
    flt.add_argument("--speed", type=float, default=DEFAULT_SPEED)
    flt.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                     help="run households with index %% N == I (disjoint device ids)")
    flt.add_argument("--seed", type=int, default=0, help="household k uses seed + k")
    flt.add_argument("--tick", type=float, default=0.1, help="wall seconds per step")
    flt.add_argument("--quiet", action="store_true", help="no progress bar")
    flt.set_defaults(func=cmd_fleet)

    fix = sub.add_parser("fixtures", help="rewrite tests/fixtures/payload_*.json")
    fix.add_argument("--out", type=Path, default=DEFAULT_FIXTURES)
    fix.set_defaults(func=cmd_fixtures)

    try:
        vendor = importlib.import_module("firmware_sim.vendor")
    except ImportError:
        vendor = None
    if vendor is not None:
        ven = sub.add_parser("vendor", help="run the vendor ordering sandbox (HTTP)")
        vendor.add_arguments(ven)
        ven.set_defaults(func=cmd_vendor)
    conf = sub.add_parser("conformance",
                          help="check a vendor API against what the agent relies on")
    importlib.import_module("firmware_sim.conformance").add_arguments(conf)
    conf.set_defaults(func=cmd_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``replenish-sim``."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        sys.stderr.write(f"replenish-sim: {err}\n")
        return 2
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
