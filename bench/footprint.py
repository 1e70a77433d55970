"""Footprint benchmark: start-up, memory, idle CPU, the decision pass, database growth.

* start to ready: ``replenish run`` from process spawn until it sends ``READY=1`` on a
  benchmark-owned ``NOTIFY_SOCKET`` (and until it logs ``agent.ready``);
* a year of history for 50 devices (half printers with four toners, half fridges), one
  reading per minute, written through :meth:`agent.storage.store.Store.write_batch` at the
  resolution retention leaves (1 min for the last 2 days, 5 min to 100 days, hourly
  before), then compacted by the service's own :meth:`AgentService.compact`;
* RSS and idle CPU of the agent on that database while every device reports once a
  minute (60 s; ``--quick``: 10 s);
* the forecast and decision pass (store read, :func:`agent.forecast.forecast`,
  :func:`agent.policy.plan_reorder`) for 100 consumables with that year of history;
* database size per device-year;
* bytes written to storage per message and per day (``/proc/<pid>/io`` ``write_bytes``,
  the WAL and the database file, see :mod:`bench.footprint_writes`) at household load
  (every device one state message a minute) and at one message a second per device.

    python -m bench.footprint [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.app.service import AgentService
from agent.config import load_settings
from agent.domain import CoarseState, DeviceKind, Unit
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from bench.common import (
    AgentRunner,
    Check,
    ProcSampler,
    at_most,
    checks_table,
    header,
    machine_info,
    md_table,
    utcnow,
    write_agent_config,
    write_results,
)
from bench.footprint_pass import decision_passes
from bench.footprint_writes import ingest_toml
from bench.footprint_writes import measure as measure_writes
from bench.ingest_load import Fleet, publish_paced
from firmware_sim.broker import LocalBroker

DAY = 86_400
YEAR_DAYS = 365


# ---- a year of history ------------------------------------------------------------------

def _timeline(now: float, days: int, raw_days: int) -> list[float]:
    """Reading times that survive retention: what compact() leaves of 1/min data."""
    start = int(now - days * DAY)
    thin_from = max(start, int(now - raw_days * DAY))
    minute_from = max(start, int(now - 2 * DAY))
    hourly = list(range(start, thin_from, 3600))
    five = list(range(thin_from, minute_from, 300))
    minute = list(range(minute_from, int(now), 60))
    return [float(t) for t in hourly + five + minute]


def _levels(kind_printer: bool, i: int, t: float, start: float) -> tuple[float, int]:
    """A sawtooth of use and refills; printers also count pages."""
    days = (t - start) / DAY
    if kind_printer:
        period = 45.0 + 10 * (i % 5)  # days per cartridge
        return round(100.0 - 95.0 * ((days % period) / period), 1), int(days * 12)
    period = 6.0 + i % 4
    return round(2000.0 - 1800.0 * ((days % period) / period), 1), 0


def _message(name: str, printer: bool, d: int, seq: int, t: float,
             start: float) -> StateMessage:
    level, pages = _levels(printer, d, t, start)
    if printer:
        cons = [Consumable.model_construct(
            id=c, sku="TN-2420", level=level, unit=Unit.PERCENT, capacity=None,
            state=CoarseState.LOW if level < 10 else None,
            counters={"pages": pages}) for c in ("black", "cyan", "magenta", "yellow")]
    else:
        cons = [Consumable.model_construct(
            id="milk", sku=None, level=level, unit=Unit.GRAMS, capacity=2000.0,
            state=None, counters=None)]
    return StateMessage.model_construct(
        device_id=name, seq=seq, ts=datetime.fromtimestamp(t, UTC),
        kind=DeviceKind.PRINTER if printer else DeviceKind.FRIDGE, consumables=cons, fw=None)


def build_history(db: Path, fleet: Fleet, now: float, days: int,
                  raw_days: int) -> dict[str, Any]:
    """Write the fleet's history through Store.write_batch, then compact it."""
    times = _timeline(now, days, raw_days)
    start = now - days * DAY
    t0 = time.perf_counter()
    with Store(db) as store:
        for d, name in enumerate(fleet.names):
            printer = fleet.consumables(name) == 4
            batch: list[StateMessage] = []
            for seq, t in enumerate(times, start=1):
                batch.append(_message(name, printer, d, seq, t, start))
                if len(batch) == 5_000:
                    store.write_batch(batch, received_at=t)
                    batch = []
            if batch:
                store.write_batch(batch, received_at=times[-1])
            store.fold_recent()  # as the agent's writer does: into the keyed tier
            fleet.seq[name] = len(times)
    written_s = time.perf_counter() - t0
    return {"readings_per_consumable": len(times), "write_s": written_s,
            "start": start}


def new_readings(db: Path, fleet: Fleet, at: float, devices: int, start: float) -> int:
    """One fresh state message from each of the first ``devices`` devices (recent tier)."""
    with Store(db) as store:
        batch = []
        for d, name in enumerate(fleet.names[:devices]):
            fleet.seq[name] += 1
            batch.append(_message(name, fleet.consumables(name) == 4, d, fleet.seq[name],
                                  at, start))
        store.write_batch(batch, received_at=at)
    return sum(fleet.consumables(n) for n in fleet.names[:devices])


def compact(config: Path, now: float) -> float:
    """Run the service's own retention job with ``now`` as its clock; returns seconds."""
    settings = load_settings(config)
    service = AgentService(settings, clock=lambda: datetime.fromtimestamp(now, UTC))
    t0 = time.perf_counter()
    service.compact()
    return time.perf_counter() - t0


def db_size(db: Path, devices: int, consumables: int, now: float,
            raw_days: int) -> dict[str, Any]:
    """Live bytes per stored reading, times the readings a full year keeps."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        rows = conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    finally:
        conn.close()
    live = (pages - free) * page
    year = len(_timeline(now, YEAR_DAYS, raw_days))
    per_consumable_year = live / rows * year
    return {"file_bytes": db.stat().st_size, "live_bytes": live, "readings": rows,
            "bytes_per_reading": live / rows,
            "readings_per_consumable_year": year,
            "mb_per_device_year": per_consumable_year * consumables / devices / 2**20,
            "mb_per_consumable_year": per_consumable_year / 2**20}


# ---- the decision pass ------------------------------------------------------------------

# ---- the running agent ------------------------------------------------------------------

class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; records READY=1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.ready_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if b"READY=1" in data.split(b"\n") and self.ready_at is None:
                self.ready_at = time.time()

    def reset(self) -> None:
        self.ready_at = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def start_to_ready(config: Path, notify: NotifySocket, runs: int) -> dict[str, Any]:
    notify_s: list[float] = []
    log_s: list[float] = []
    for _ in range(runs):
        notify.reset()
        agent = AgentRunner(config, env={"NOTIFY_SOCKET": str(notify.path)}).start()
        deadline = time.time() + 5
        while notify.ready_at is None and time.time() < deadline:
            time.sleep(0.002)
        if notify.ready_at is not None:
            notify_s.append(notify.ready_at - agent.started_at)
        if agent.ready_at is not None:
            log_s.append(agent.ready_at - agent.started_at)
        agent.stop()
    return {"runs": runs, "ready_notify_s": notify_s, "ready_log_s": log_s,
            "median_s": statistics.median(notify_s or log_s) if notify_s or log_s else None,
            "max_s": max(notify_s or log_s) if notify_s or log_s else None,
            "source": "READY=1" if notify_s else "agent.ready log line"}


def steady_state(broker: LocalBroker, config: Path, fleet: Fleet, seconds: float,
                 notify: NotifySocket) -> dict[str, Any]:
    """Agent on the year database, every device reporting once a minute."""
    agent = AgentRunner(config, env={"NOTIFY_SOCKET": str(notify.path)}).start()
    sampler = ProcSampler(agent.pid, interval=0.5).start()
    try:
        time.sleep(2.0)  # start-up work is not idle time
        rate = len(fleet.names) / 60.0
        cpu0, t0 = sampler.cpu_seconds(), time.monotonic()
        publish_paced(broker, fleet, max(1, round(rate * seconds)), rate, {})
        remaining = seconds - (time.monotonic() - t0)
        if remaining > 0:
            time.sleep(remaining)
        cpu, wall = sampler.cpu_seconds() - cpu0, time.monotonic() - t0
        rss = sampler.sample()
    finally:
        sampler.stop()
        agent.stop()
    return {"seconds": wall, "messages": max(1, round(rate * seconds)),
            "cpu_s": cpu, "cpu_percent_of_core": 100.0 * cpu / wall,
            "rss_mb": rss / 2**20, "peak_rss_mb": sampler.peak_rss / 2**20}


# ---- report -----------------------------------------------------------------------------

def _write_note(w: dict[str, Any]) -> str:
    fold = ("folds inside the window" if w["fold_in_window"] else
            f"ingest {w['ingest_bytes_per_message']:,.0f} + fold "
            f"{w['fold_bytes_per_message']:,.0f} (every {w['fold_every_s']:,.0f} s)")
    files = ""
    if w.get("by_file"):
        files = (f"; window by file: WAL {w['wal_bytes_per_message']:,.0f}, db "
                 f"{w['db_bytes_per_message']:,.0f}, -shm and other "
                 f"{w['shm_and_other_bytes_per_message']:,.0f} B/msg")
    return (f"{w['bytes_per_message']:,.0f} B/msg ({fold}) over {w['messages']:,} msgs"
            f"{files}; payloads {w['payload_mb_per_day']:.1f} MB/day; the broker's "
            f"snapshots {w['broker_bytes_per_message']:,.0f} B/msg "
            f"({w['broker_mb_per_day']:,.0f} MB/day, not counted above)")


def _split(p: dict[str, Any]) -> str:
    return (f"read {p['read_s'] * 1000:.1f} ms, forecast {p['forecast_s'] * 1000:.1f} ms, "
            f"plan {p['plan_s'] * 1000:.1f} ms")


def _pass_check(dp: dict[str, Any]) -> Check:
    warm = dp["warm"]
    return at_most(f"decision pass, warm, {warm['consumables']} consumables (120 days of a year)",
                   warm["total_s"] * 1000, 50, "ms",
                   note=f"{_split(warm)}; {dp['warm_new_consumables']} with new readings, "
                        f"{warm['fits']} forecast fits; uncached "
                        f"{dp['uncached']['total_s'] * 1000:.0f} ms "
                        f"({dp['uncached_over_warm']:.1f}x warm; CPU "
                        f"{dp['uncached_over_warm_cpu']:.1f}x), cold "
                        f"{dp['cold']['total_s'] * 1000:.0f} ms")


def _pass_rows(dp: dict[str, Any]) -> list[list[Any]]:
    return [
        *[[f"decision pass, {name}", f"{dp[name]['total_s'] * 1000:.1f} ms "
           f"(thread CPU {dp[name]['cpu_s'] * 1000:.1f} ms): {_split(dp[name])}; "
           f"{dp[name]['whole_reads']} whole reads, {dp[name]['tail_reads']} tail reads, "
           f"{dp[name]['fits']} forecast fits; order now {dp[name]['order_now']}"]
          for name in ("uncached", "cold", "warm", "quiet") if name in dp],
        ["decision pass: history cache and fits (Python heap, 100 consumables, MB)",
         f"{dp['cache_mb']:.1f}"],
    ]


def evaluate(res: dict[str, Any]) -> list[Check]:
    if "writes_household" not in res:  # --pass-only
        return [_pass_check(res["pass"])]
    home, fast = res["writes_household"], res["writes_fast"]
    checks = [
        at_most(f"writes at household load ({home['devices']} devices x 1 msg/min)",
                home["mb_per_day"], 50, "MB/day", strict=False, note=_write_note(home)),
        at_most(f"writes at 1 msg/s per device ({fast['devices']} devices)",
                fast["bytes_per_message"], 1024, "B/msg", strict=False,
                note=f"{fast['mb_per_day']:,.0f} MB/day; " + _write_note(fast)),
    ]
    if "steady" not in res:  # --writes-only
        return checks
    ready, steady, dp, size = res["start_to_ready"], res["steady"], res["pass"], res["size"]
    return checks + [
        at_most("start to ready (median)", ready["median_s"], 1.5, "s",
                note=f"{ready['source']}, max {ready['max_s']:.2f} s of {ready['runs']}"),
        at_most("RSS, 50 devices + a year in the DB, steady", steady["rss_mb"], 60, "MB",
                strict=False, note=f"peak {steady['peak_rss_mb']:.1f} MB"),
        at_most("idle CPU, devices reporting once a minute", steady["cpu_percent_of_core"],
                0.5, "% core", note=f"{steady['cpu_s']:.3f} CPU s in {steady['seconds']:.0f} s"),
        _pass_check(dp),
        at_most("database per device-year", size["mb_per_device_year"], 5, "MB", strict=False,
                note=f"{size['mb_per_consumable_year']:.2f} MB per consumable-year"),
    ]


WRITE_FIGURES = (
    "seconds", "messages", "write_bytes", "ingest_bytes_per_message", "fold_every_s",
    "folds_in_window", "prefilled_messages", "fold_rows", "fold_write_bytes",
    "prefill_checkpoint_bytes",
    "agent_stop_write_bytes", "fold_bytes_per_message",
    "bytes_per_message", "fold_mb_per_day", "mb_per_day", "wal_bytes", "db_bytes",
    "commits", "messages_per_commit", "wal_bytes_per_message", "db_bytes_per_message",
    "shm_and_other_bytes_per_message", "wal_bytes_per_commit", "db_bytes_per_commit",
    "shm_and_other_bytes_per_commit", "broker_write_bytes", "broker_bytes_per_message",
    "broker_mb_per_day",
    "payload_bytes_per_message", "commit_window_s", "last_values_interval_s",
    "checkpoint_interval_s", "fold_interval_s", "fold_rows_setting",
)


def _details(res: dict[str, Any]) -> list[list[Any]]:
    if "steady" not in res:
        return []
    size, ready = res["size"], res["start_to_ready"]
    return [
        ["start to ready, each run (s)",
         ", ".join(f"{x:.2f}" for x in ready["ready_notify_s"] or ready["ready_log_s"])],
        ["start to `agent.ready` log line, median (s)",
         statistics.median(ready["ready_log_s"]) if ready["ready_log_s"] else None],
        ["readings in the database", size["readings"]],
        ["database file (bytes)", size["file_bytes"]],
        ["live pages (bytes)", size["live_bytes"]],
        ["steady state messages received", res["steady"]["messages"]],
        *_pass_rows(res["pass"]),
    ]


def _pass_markdown(res: dict[str, Any], checks: list[Check]) -> str:
    hist = res["history"]
    return "\n".join([
        header("Footprint benchmark: the decision pass only", res["machine"],
               datetime.fromisoformat(res["started"])),
        f"\n{res['devices']} devices ({res['consumables']} consumables), {res['days']} days "
        f"of history ({hist['readings_per_consumable']:,} readings per consumable, written "
        f"in {hist['write_s']:.0f} s), compacted in {res['compact_s']:.2f} s "
        "(`--pass-only`: no agent process, no writes measured).\n",
        "## Targets\n", checks_table(checks),
        "\n## Details\n\n" + md_table(["figure", "value"], _pass_rows(res["pass"])),
    ])


def markdown(res: dict[str, Any], checks: list[Check]) -> str:
    if "writes_household" not in res:
        return _pass_markdown(res, checks)
    hist = res["history"]
    home, fast = res["writes_household"], res["writes_fast"]
    size_note = ""
    if "size" in res:
        size_note = (
            "\nDatabase size: live pages after a WAL checkpoint per stored reading, times "
            f"the {res['size']['readings_per_consumable_year']:,} readings retention keeps "
            "per consumable and year, times the consumables per device (freed pages are "
            "reused by later inserts, so the file settles near this). The decision pass "
            "reads 120 days per consumable (hourly for 35 days, six-hourly before, edges on "
            "six-hour boundaries): *uncached* reads it all from SQLite each pass "
            "(`agent.app.history.read_history`, the reference), *cold* fills the service's "
            "`HistoryCache`, *warm* is the next pass five minutes later after a few devices "
            "reported, which re-reads only their newest hour and fits again only their "
            "consumables' forecasts (the rest keep their fit and redo only what moves with "
            "`now`), *quiet* five minutes after that with nothing new; consent and ledger "
            "look-ups are not in it.\n")
    return "\n".join([
        header("Footprint benchmark", res["machine"], datetime.fromisoformat(res["started"])),
        f"\n{res['devices']} devices ({res['consumables']} consumables: printers with four "
        f"toners, fridges with milk), {res['days']} days of history at the resolution "
        f"retention keeps ({hist['readings_per_consumable']:,} readings per consumable, "
        f"written in {hist['write_s']:.0f} s), compacted by `AgentService.compact` in "
        f"{res['compact_s']:.2f} s."
        + (" Writes only (`--writes-only`)." if "steady" not in res else "") + "\n",
        "## Targets\n", checks_table(checks),
        "\n## Details\n\n" + md_table(["figure", "value"], _details(res))
        if "steady" in res else "",
        "\n## Writes\n",
        md_table(["figure", "household load", "1 msg/s per device"],
                 [[k, home.get(k), fast.get(k)] for k in WRITE_FIGURES]),
        size_note,
        "\nWrites: `write_bytes` of the agent process over the publishing window "
        "(everything the agent wrote: WAL appends, checkpoints, every job), divided by the "
        "messages published in it (`ingest_bytes_per_message`). The fold of the recent "
        "tier runs every `fold_every_s` (`fold_interval_s`, or sooner once `fold_rows` "
        "readings wait); when that is longer than the window, the recent tier is first "
        "filled with the rest of one fold interval's readings (`prefilled_messages`, "
        "checkpointed before the window), and after the window the fold of that interval "
        "and its checkpoint run in a process of their own (`fold_write_bytes` for "
        "`fold_rows` rows); as a checkpoint follows each fold, the charge also holds "
        "the prefill's checkpoint and what the agent wrote while stopping (the "
        "checkpoint of the window's pages), over the messages of one fold interval "
        "(`fold_bytes_per_message`). The full run's household window is one fold "
        "interval and two commit windows, the fold and its checkpoint inside "
        "(`folds_in_window`). `bytes_per_message` is the sum; per day: times the "
        "messages of a day. When folds come due inside the window (the fast rate), "
        "`write_bytes` holds them. By file (`bench.footprint_files`, when `strace` is "
        "installed): the window's `write_bytes` split into the WAL and the database file "
        "(4 KB pages written between two syncs of the file, from an `strace` of the "
        "agent's `pwrite64`/`fdatasync`) and the rest (`shm_and_other`: the `mmap`'ed "
        "wal-index, whose pages the kernel writes back every 30 s and the next commit "
        "dirties again, and any other file); `commits` counts the WAL's syncs. "
        "The agent ran with its default `[ingest]` settings "
        f"(commit window {res['commit_window']}), as listed.",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.footprint",
                                 description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="6 devices, 14 days, 10 s idle (CI)")
    ap.add_argument("--devices", type=int, help="devices (default 50)")
    ap.add_argument("--days", type=int, help="days of history (default 365)")
    ap.add_argument("--idle-seconds", type=float, help="idle CPU window (default 60)")
    ap.add_argument("--write-seconds", type=float,
                    help="household write window (one fold interval; quick 20)")
    ap.add_argument("--fast-seconds", type=float,
                    help="1 msg/s window (360: holds folds and a checkpoint; quick 8)")
    ap.add_argument("--commit-window", type=float, help="ingest.commit_window_s for the writes")
    ap.add_argument("--agent-toml", default="", help="extra agent.toml text")
    ap.add_argument("--writes-only", action="store_true",
                    help="only the history and the bytes-written measurements")
    ap.add_argument("--pass-only", action="store_true",
                    help="only the history and the decision pass (no agent, no broker)")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results)")
    args = ap.parse_args(argv)
    devices = args.devices or (6 if args.quick else 50)
    days = args.days or (14 if args.quick else YEAR_DAYS)
    idle = args.idle_seconds or (10.0 if args.quick else 60.0)
    started = utcnow()
    fleet = Fleet.make(devices)
    consumables = sum(fleet.consumables(n) for n in fleet.names)
    res: dict[str, Any] = {"started": started.isoformat(), "machine": machine_info(),
                           "argv": sys.argv, "devices": devices, "days": days,
                           "consumables": consumables, "agent_toml": args.agent_toml,
                           "commit_window": (f"{args.commit_window} s" if args.commit_window
                                             is not None else "default")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    if args.pass_only:
        try:
            res.update(pass_only(tmp, fleet, devices, days))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return report(res, args.out)
    notify = NotifySocket(tmp / "notify.sock")
    try:
        with LocalBroker(tmp / "broker", users=dict(fleet.passwords)) as broker:
            work = tmp / "agent"
            db = work / "agent.db"
            config = write_agent_config(work, broker.host, broker.port,
                                        broker.passwords["agent"], db, extra=args.agent_toml)
            if not args.writes_only:
                res["start_to_ready"] = start_to_ready(config, notify,
                                                       3 if args.quick else 7)
            db.unlink(missing_ok=True)
            now = time.time()
            raw_days = load_settings(config).retention.raw_days
            res["history"] = build_history(db, fleet, now, days, raw_days)
            res["compact_s"] = compact(config, now)
            if not args.writes_only:
                res["size"] = db_size(db, devices, consumables, now, raw_days)
                start = res["history"]["start"]
                res["pass"] = decision_passes(
                    db, now, lambda at: new_readings(db, fleet, at, 3, start))
                res["steady"] = steady_state(broker, config, fleet, idle, notify)
            wconfig = write_agent_config(tmp / "agent-writes", broker.host, broker.port,
                                         broker.passwords["agent"], db,
                                         extra=args.agent_toml + ingest_toml(args.commit_window))
            # One whole fold cycle: the commits, the fold and the checkpoint after it (the
            # fold comes due at the first commit an interval after the agent started).
            ingest = load_settings(wconfig).ingest
            window = args.write_seconds or (
                20.0 if args.quick else ingest.fold_interval_s + 2 * ingest.commit_window_s)
            res["writes_household"] = measure_writes(broker, wconfig, db, fleet, 60.0, window)
            # Past one checkpoint interval: the folds that come due inside the window
            # are charged with the checkpoint that copies them, as in the agent.
            fast = args.fast_seconds or (8.0 if args.quick else 360.0)
            res["writes_fast"] = measure_writes(broker, wconfig, db, fleet, 1.0, fast)
    finally:
        notify.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return report(res, args.out)


def pass_only(tmp: Path, fleet: Fleet, devices: int, days: int) -> dict[str, Any]:
    """The history and the decision passes, without a broker or an agent process."""
    db = tmp / "agent" / "agent.db"
    config = write_agent_config(tmp / "agent", "127.0.0.1", 1, "unused", db)
    now = time.time()
    res: dict[str, Any] = {"history": build_history(db, fleet, now, days,
                                                    load_settings(config).retention.raw_days)}
    res["compact_s"] = compact(config, now)
    start = res["history"]["start"]
    res["pass"] = decision_passes(db, now, lambda at: new_readings(db, fleet, at, 3, start))
    return res


def report(res: dict[str, Any], out: Path | None) -> int:
    checks = evaluate(res)
    res["checks"] = checks
    name = "footprint_pass" if "writes_household" not in res else "footprint"
    paths = write_results(name, res, markdown(res, checks), out)
    sys.stdout.write(paths[1].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
