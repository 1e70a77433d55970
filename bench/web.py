"""Web app footprint: start time, RSS and page latency of ``replenish web``.

* the database: a year of history for 50 devices (125 consumables), written and compacted
  exactly as :mod:`bench.footprint` does, then one decision pass's forecasts stored as the
  agent stores them (``AgentService.decide``: the planner's forecasts, ``forecasts`` table);
* start time: process spawn until ``GET /login`` answers 200 (median of several runs);
* latency: the first ``GET /`` after a start (right after the login), then repeated
  ``GET /``, ``/orders``, one consumable's page (SVG of 90 days), ``/audit`` and
  ``/devices``, logged in, over loopback;
* RSS: the web process's resident memory sampled across a login (the scrypt check runs in
  a child process, which is not the web process) and across every page.

    python -m bench.web [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from agent.web import auth
from bench.common import (
    ProcSampler,
    at_most,
    checks_table,
    header,
    machine_info,
    md_table,
    percentile,
    utcnow,
    write_results,
)
from bench.footprint import YEAR_DAYS, build_history, compact
from bench.ingest import Fleet

PASSWORD = "bench-password-123"
ROOT = Path(__file__).resolve().parent.parent


def _config(work: Path, db: Path, port: int) -> Path:
    config = work / "agent.toml"
    config.write_text(f'log_level = "WARNING"\n[storage]\npath = "{db}"\n'
                      f'[web]\nhost = "127.0.0.1"\nport = {port}\n')
    return config


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "agent.cli.main", "--config", str(config),
                             "web"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("web process exited during start")
        time.sleep(0.005)
    raise RuntimeError("web process did not start")


def start_time(config: Path, url: str, runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = _spawn(config)
        try:
            _wait_up(url, proc)
            times.append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(10)
    return {"runs": runs, "median_s": statistics.median(times), "max_s": max(times)}


def login(client: httpx.Client) -> None:
    page = client.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', page)
    assert token is not None
    resp = client.post("/login", data={"login_token": token[1], "password": PASSWORD})
    assert resp.status_code == 303, resp.status_code


def latencies(client: httpx.Client, paths: dict[str, str], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, path in paths.items():
        client.get(path)  # warm
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200, (path, resp.status_code)
        out[name] = {"path": path, "p50_ms": percentile(times, 0.5),
                     "p95_ms": percentile(times, 0.95), "bytes": len(resp.content)}
    return out


def children_peak(pid: int, stop: threading.Event, out: list[int]) -> None:
    """Peak RSS of ``pid``'s children (the scrypt child of a login) until ``stop``."""
    parent = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = sum(int(c.memory_info().rss) for c in parent.children(recursive=True))
        except psutil.Error:
            rss = 0
        out[0] = max(out[0], rss)
        stop.wait(0.002)


def store_forecasts(db: Path, now: float) -> float:
    """One decision pass's forecasts, stored as ``AgentService.decide`` stores them."""
    from agent.app.planner import Planner
    from agent.storage.forecasts import save_forecasts
    from agent.storage.ledger import Ledger
    from agent.storage.store import Store
    from agent.vendor.client import CatalogItem

    def no_catalog(sku: str) -> CatalogItem:
        raise AssertionError("the bench has no vendor")

    t0 = time.perf_counter()
    with Store(db) as store:
        ledger = Ledger(store.conn)
        at = datetime.fromtimestamp(now, UTC)
        save_forecasts(store.conn, Planner(store, ledger, no_catalog,
                                           vendor_name="-").outlook(at))
    return time.perf_counter() - t0


def markdown(res: dict[str, Any], checks: list[Any]) -> str:
    lat = res["latency"]
    return "\n".join([
        header("Web app footprint (bench/web.py)", res["machine"],
               datetime.fromisoformat(res["started"])),
        f"{res['devices']} devices, {res['consumables']} consumables, {res['days']} days of "
        f"history ({res['history']['readings_per_consumable']:,} readings per consumable "
        "after compaction), the web process on loopback.\n",
        checks_table(checks), "",
        md_table(["page", "path", "p50 ms", "p95 ms", "bytes"],
                 [[k, f"`{v['path']}`", f"{v['p50_ms']:.1f}", f"{v['p95_ms']:.1f}", v["bytes"]]
                  for k, v in lat.items()]),
        "",
        f"Start (spawn to first `GET /login` 200): median {res['start']['median_s']:.2f} s "
        f"over {res['start']['runs']} runs. RSS: peak {res['rss']['peak_mb']:.1f} MB serving "
        f"pages, {res['rss']['login_peak_mb']:.1f} MB during a login, "
        f"{res['rss']['final_mb']:.1f} MB after the run. A login took "
        f"{res['login_ms']:.0f} ms; its scrypt child peaked at "
        f"{res['login_child_peak_mb']:.1f} MB and exited.",
        "",
        "The pages read the forecasts the agent's decision pass stored (the `forecasts` "
        "table); the web process computes none, so the first page after a start costs what "
        "every later one does. The agent's pass that stored them (planner outlook of "
        f"{res['consumables']} consumables) took {res['pass_s']:.1f} s here. A login's scrypt "
        "check (16 MiB) runs in a short-lived child process (agent/web/auth.py "
        "`check_in_child`).",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.web")
    ap.add_argument("--quick", action="store_true", help="6 devices, 14 days")
    ap.add_argument("--devices", type=int)
    ap.add_argument("--days", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    devices = args.devices or (6 if args.quick else 50)
    days = args.days or (14 if args.quick else YEAR_DAYS)
    fleet = Fleet.make(devices)
    res: dict[str, Any] = {"started": utcnow().isoformat(), "machine": machine_info(),
                           "argv": sys.argv, "devices": devices, "days": days,
                           "consumables": sum(fleet.consumables(n) for n in fleet.names)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        db = tmp / "agent.db"
        port = _free_port()
        config = _config(tmp, db, port)
        now = time.time()
        res["history"] = build_history(db, fleet, now, days, 100)
        res["compact_s"] = compact(config, now)
        res["pass_s"] = store_forecasts(db, now)
        auth.set_password(tmp / "web-password", PASSWORD)
        url = f"http://127.0.0.1:{port}"
        res["start"] = start_time(config, url, 3 if args.quick else 5)
        proc = _spawn(config)
        sampler = ProcSampler(proc.pid)
        try:
            _wait_up(url, proc)
            sampler.start()
            with httpx.Client(base_url=url, timeout=30) as client:
                stop, child = threading.Event(), [0]
                watcher = threading.Thread(target=children_peak, args=(proc.pid, stop, child))
                watcher.start()
                t0 = time.perf_counter()
                login(client)
                res["login_ms"] = (time.perf_counter() - t0) * 1000
                stop.set()
                watcher.join()
                res["login_child_peak_mb"] = child[0] / 2**20
                login_peak = sampler.peak_rss
                sampler.peak_rss = 0
                t0 = time.perf_counter()
                assert client.get("/").status_code == 200
                res["home_cold_ms"] = (time.perf_counter() - t0) * 1000
                first = fleet.names[0]
                res["latency"] = latencies(client, {
                    "home": "/", "orders": "/orders", "consumable": f"/c/{first}/black",
                    "audit": "/audit", "devices": "/devices"}, 5 if args.quick else 10)
            sampler.stop()
            res["rss"] = {"peak_mb": sampler.peak_rss / 2**20, "login_peak_mb": login_peak / 2**20,
                          "final_mb": sampler.sample() / 2**20}
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    checks = [
        at_most("web RSS peak serving every page, 50 devices + a year",
                res["rss"]["peak_mb"], 60, "MB"),
        at_most("web RSS peak during a login", res["rss"]["login_peak_mb"], 60, "MB",
                note="scrypt (N=2^14, r=8, 16 MiB) runs in a child process"),
        at_most("home page p50 (repeated)", res["latency"]["home"]["p50_ms"], 200,
                "ms"),
        at_most("home page, first request after start", res["home_cold_ms"], 200, "ms",
                note="reads the forecasts the agent stored; computes none"),
        at_most("start to first page (median)", res["start"]["median_s"], 5, "s",
                strict=False),
    ]
    res["checks"] = checks
    paths = write_results("web-quick" if args.quick else "web", res, markdown(res, checks),
                          args.out)
    sys.stdout.write(paths[1].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
