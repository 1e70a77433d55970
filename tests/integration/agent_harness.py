"""Run the real agent (``replenish run``) as a subprocess against a LocalBroker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from firmware_sim.broker import LocalBroker
from tests.waiting import wait_until

READY_LINE = "agent.ready"


def write_agent_config(workdir: Path, broker: LocalBroker, extra: str = "") -> Path:
    """An agent.toml for ``broker``'s loopback listener, secrets in files beside it."""
    workdir.mkdir(parents=True, exist_ok=True)
    password = workdir / "mqtt-password"
    password.write_text(broker.passwords["agent"])
    config = workdir / "agent.toml"
    config.write_text(
        f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "agent"
password_file = "{password}"
client_id = "replenish-agent-test"

[storage]
path = "{workdir / 'agent.db'}"
{extra}
"""
    )
    return config


class AgentProcess:
    """``replenish --config CONFIG run`` with its log captured to a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env or {}  # added to the agent's environment (NOTIFY_SOCKET, LD_PRELOAD)
        self.log_path = config.parent / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self, timeout: float = 15.0) -> AgentProcess:
        # A second start would orphan the first agent (same client id, same database).
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "--config", str(self.config), "run"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        log.close()
        proc = self.proc
        wait_until(lambda: READY_LINE in self.new_log() or proc.poll() is not None,
                   timeout=timeout, what=lambda: f"the agent ready:\n{self.log()}")
        if READY_LINE not in self.new_log():  # it exited instead
            raise AssertionError(f"agent did not become ready:\n{self.log()}")
        return self

    def new_log(self) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush, like a power cut for the process."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.kill()
