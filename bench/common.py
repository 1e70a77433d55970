"""Shared helpers for the benchmarks: machine facts, process sampling, result files.

Every benchmark writes ``bench/results/<name>.json`` (all figures, machine info, the
command line) and ``bench/results/<name>.md`` (a table of targets with PASS/MISS).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory and the versions that shape the figures."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        out = subprocess.run([mosquitto, "-h"], capture_output=True, text=True, timeout=5)
        version = (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        version = "unknown"
    import sqlite3

    import paho.mqtt

    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": version,
        "paho_mqtt": paho.mqtt.__version__,
        "sqlite": sqlite3.sqlite_version,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


class ProcSampler:
    """Samples one process's RSS (with its children) in a thread; tracks the peak.

    CPU seconds are read as a difference of ``cpu_times`` between :meth:`mark` calls,
    so the sampler itself (in the bench process) is not counted.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.last_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> int:
        """Take one RSS sample now (bytes); 0 once the process is gone."""
        try:
            rss = int(self.proc.memory_info().rss)
        except psutil.Error:
            return 0
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the process has used so far."""
        try:
            t = self.proc.cpu_times()
        except psutil.Error:
            return 0.0
        return float(t.user + t.system)


@dataclass(frozen=True)
class Check:
    """One target: what was measured against what was promised."""

    name: str
    value: float | None
    target: str
    passed: bool | None  # None: not measured (pending)
    unit: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "PENDING"
        return "PASS" if self.passed else "MISS"


def at_most(name: str, value: float | None, limit: float, unit: str = "",
            note: str = "", strict: bool = True) -> Check:
    """A target ``value < limit`` (``strict``) or ``value <= limit``."""
    sign = "<" if strict else "<="
    ok = None if value is None else (value < limit if strict else value <= limit)
    return Check(name, value, f"{sign} {limit:g} {unit}".strip(), ok, unit, note)


def at_least(name: str, value: float | None, floor: float, unit: str = "",
             note: str = "") -> Check:
    return Check(name, value, f">= {floor:g} {unit}".strip(),
                 None if value is None else value >= floor, unit, note)


def fmt(value: Any) -> str:
    """A compact human form for tables: 3 significant digits, thousands separated."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def checks_table(checks: Sequence[Check]) -> str:
    return md_table(
        ["target", "measured", "goal", "verdict", "note"],
        [[c.name, f"{fmt(c.value)} {c.unit}".strip(), c.target, c.verdict, c.note]
         for c in checks],
    )


def write_results(name: str, data: dict[str, Any], markdown: str,
                  out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md``; returns both paths."""
    out = out_dir or RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Check):
        return {**asdict(obj), "verdict": obj.verdict}
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def header(title: str, machine: dict[str, Any], started: datetime) -> str:
    """The first lines of a results Markdown file."""
    return (
        f"# {title}\n\n"
        f"Run {started.strftime('%Y-%m-%d %H:%M UTC')} on {machine['cores']} cores "
        f"({machine['cpu_model']}), {machine['memory_mb']} MB RAM, load "
        f"{machine['load_avg_at_start']} at start; Python {machine['python']}, "
        f"{machine['mosquitto']}, paho-mqtt {machine['paho_mqtt']}, "
        f"SQLite {machine['sqlite']}.\n\n"
        f"Command: `{' '.join(['python'] + sys.argv)}`\n"
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def monotonic_wait(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def write_agent_config(workdir: Path, host: str, port: int, password: str,
                       db: Path, client_id: str = "replenish-agent-bench",
                       extra: str = "") -> Path:
    """An agent.toml for a LocalBroker's loopback listener, the password in a file."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret = workdir / "mqtt-password"
    secret.write_text(password)
    config = workdir / "agent.toml"
    config.write_text(
        f'[mqtt]\nhost = "{host}"\nport = {port}\nusername = "agent"\n'
        f'password_file = "{secret}"\nclient_id = "{client_id}"\n\n'
        f'[storage]\npath = "{db}"\n{extra}\n'
    )
    return config


READY_LINE = b"agent.ready"
SERVICE_UNIT = Path(__file__).resolve().parent.parent / "systemd" / "replenish-agent.service"


def service_environment(unit: Path = SERVICE_UNIT) -> dict[str, str]:
    """The ``Environment=`` of the shipped systemd unit (``MALLOC_ARENA_MAX``...): a
    benchmark that runs the agent as the service does measures what the service gets."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for pair in shlex.split(line.removeprefix("Environment=")):
                key, _, value = pair.partition("=")
                env[key] = value
    return env



class AgentRunner:
    """``replenish --config CONFIG run`` as a subprocess, its log in a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / "agent.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        # Epoch times (the benchmarks compare them with publish times in payloads).
        self.started_at = 0.0  # just before the process was spawned
        self.ready_at: float | None = None  # when the ready line was seen
        self._offset = 0

    def start(self, timeout: float = 20.0, wait_ready: bool = True) -> AgentRunner:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "--config", str(self.config),
                 "run"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        self.ready_at = None
        if wait_ready and not self.wait_ready(timeout):
            raise RuntimeError(f"agent did not become ready:\n{self.new_log()[-3000:]}")
        return self

    def wait_ready(self, timeout: float, interval: float = 0.002) -> bool:
        """Poll the log for the ready line; records :attr:`ready_at`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self._new_bytes():
                self.ready_at = time.time()
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(interval)
        return False

    def _new_bytes(self) -> bytes:
        with self.log_path.open("rb") as fh:
            fh.seek(self._offset)
            return fh.read()

    def new_log(self) -> str:
        return self._new_bytes().decode(errors="replace")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (the agent commits and acknowledges what it holds)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def cycle_served(stockouts: list[tuple[float, float]], empty_since: float | None,
                 start: float, arrival: float) -> bool:
    """Whether the replenishment cycle from the previous delivery (``start``) to this
    one (``arrival``) had no stockout. Each stockout falls in the one cycle it occurs
    in: judging every order whose order-to-arrival window overlapped it counted one
    stockout against each of several overlapping orders (the oracle read 0.52)."""
    if empty_since is not None and empty_since < arrival:
        return False
    return not any(a < arrival and b > start for a, b in stockouts)
