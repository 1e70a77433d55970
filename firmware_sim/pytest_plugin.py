"""pytest fixtures for vendors testing against the real agent (``pytest11`` entry point).

Installed with the package, so a vendor's own suite gets, without copying anything out
of this repository's ``tests/``:

- ``replenish_broker``: a private Mosquitto rendered from ``broker_config/`` (the same
  ACL and limits a household gateway runs), on free loopback ports;
- ``replenish_vendor``: the vendor sandbox over HTTP, or the vendor's own API when
  ``--replenish-vendor-url URL --replenish-vendor-token-file FILE`` are given;
- ``replenish_device``: a factory of connected simulated devices (their own broker
  accounts, ``%u`` ACL) that publish state readings and events;
- ``replenish_household``: a factory of live simulated households from a scenario;
- ``replenish_agent``: a factory of real ``replenish run`` processes wired to the
  broker and the vendor, with ``cli(...)`` to run household commands against it;
- :func:`wait_for` and the ``wait_for_*`` helpers below.

See ``docs/vendor-testing.md`` and ``examples/vendor-tests/``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from agent.wire.device import Channel, device_topic
from firmware_sim.broker import LocalBroker
from firmware_sim.household.live import DeviceConnection, LivePublisher
from firmware_sim.household.scenario import Household
from firmware_sim.vendor import VendorSandbox, catalog_for
from firmware_sim.vendor.faults import SimClock

T = TypeVar("T")
READY_LINE = "agent.ready"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replenish", "replenish-agent vendor testing")
    group.addoption("--replenish-vendor-url", default=None,
                    help="test against this vendor API instead of the bundled sandbox")
    group.addoption("--replenish-vendor-token-file", default=None,
                    help="bearer token file for --replenish-vendor-url")


_REAL_PARTS = {"replenish_broker", "replenish_vendor", "replenish_device",
               "replenish_household", "replenish_agent", "replenish_sim_agent",
               "replenish_closed_loop"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to a real broker, vendor or agent")
    config.addinivalue_line("markers", "replenish_scenario(name, seed=None): the sandbox "
                            "sells that scenario's SKUs on a clock at its start")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the real broker, vendor or agent are integration tests, so a quick
    ``-m "not integration"`` run leaves them out."""
    for item in items:
        if _REAL_PARTS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def wait_for(predicate: Callable[[], T | None], what: str, timeout: float = 30.0,
             interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ---- the vendor ----------------------------------------------------------------------


@dataclass
class VendorEndpoint:
    """The vendor under test: its URL and token; ``sandbox`` when it is the sandbox."""

    url: str
    token: str
    sandbox: VendorSandbox | None = None

    def orders(self) -> list[dict[str, Any]]:
        """Orders the vendor holds (the sandbox's book, or ``GET /v1/orders``)."""
        if self.sandbox is not None:
            return [asdict(o) for o in self.sandbox.orders()]
        answer = httpx.get(f"{self.url}/v1/orders",
                           headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        return list(body.get("orders", body) if isinstance(body, dict) else body)


@pytest.fixture
def replenish_vendor(request: pytest.FixtureRequest) -> Iterator[VendorEndpoint]:
    url = request.config.getoption("--replenish-vendor-url")
    if url:
        token_file = request.config.getoption("--replenish-vendor-token-file")
        if not token_file:
            raise pytest.UsageError("--replenish-vendor-url needs "
                                    "--replenish-vendor-token-file")
        yield VendorEndpoint(url.rstrip("/"), Path(token_file).read_text().strip())
        return
    token = secrets.token_urlsafe(16)
    # @pytest.mark.replenish_scenario(NAME): the sandbox sells that household's SKUs
    # with its lead times, on a clock starting at its start (a closed loop).
    marker = request.node.get_closest_marker("replenish_scenario")
    world: dict[str, Any] = {}
    if marker is not None:
        household = Household.from_scenario(*marker.args, **marker.kwargs)
        world = {"catalog": catalog_for(household), "clock": SimClock(household.start)}
    with VendorSandbox(token=token, **world) as sandbox:
        yield VendorEndpoint(sandbox.url, token, sandbox)


def wait_for_order(vendor: VendorEndpoint, count: int = 1, timeout: float = 60.0,
                   ) -> list[dict[str, Any]]:
    """Wait until the vendor holds at least ``count`` orders; returns them."""
    def enough() -> list[dict[str, Any]] | None:
        orders = vendor.orders()
        return orders if len(orders) >= count else None

    return wait_for(enough, f"{count} order(s) at the vendor", timeout)


# ---- the broker and devices ---------------------------------------------------------


@pytest.fixture
def replenish_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path / "replenish-broker") as broker:
        yield broker


def _account(broker: LocalBroker, device_id: str) -> str:
    password = broker.passwords.get(device_id)
    if password is None:
        password = secrets.token_urlsafe(12)
        broker.add_user(device_id, password)
    return password


class SimDevice:
    """A connected device that publishes what a test tells it to."""

    def __init__(self, broker: LocalBroker, device_id: str, kind: str) -> None:
        self.device_id, self.kind, self.seq = device_id, kind, 0
        self.conn = DeviceConnection(device_id, _account(broker, device_id), broker.host,
                                     broker.port)
        self.conn.connect()

    def state(self, *consumables: dict[str, Any], ts: datetime | None = None) -> None:
        """Publish one state reading (QoS 1) and wait for the broker's PUBACK."""
        self.seq += 1
        body = {"device_id": self.device_id, "seq": self.seq, "kind": self.kind,
                "ts": (ts or datetime.now(UTC)).isoformat(), "consumables": list(consumables)}
        self.conn.publish(device_topic(self.device_id, Channel.STATE), json.dumps(body).encode())
        self.conn.flush()

    def event(self, kind: str, consumable_id: str | None = None) -> None:
        self.seq += 1
        body: dict[str, Any] = {"device_id": self.device_id, "seq": self.seq, "type": kind,
                                "ts": datetime.now(UTC).isoformat()}
        if consumable_id:
            body["consumable_id"] = consumable_id
        self.conn.publish(device_topic(self.device_id, Channel.EVENTS),
                          json.dumps(body).encode())
        self.conn.flush()

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def replenish_device(replenish_broker: LocalBroker) -> Iterator[Callable[..., SimDevice]]:
    made: list[SimDevice] = []

    def make(device_id: str, kind: str = "printer") -> SimDevice:
        made.append(SimDevice(replenish_broker, device_id, kind))
        return made[-1]

    yield make
    for device in made:
        device.close()


@pytest.fixture
def replenish_household(replenish_broker: LocalBroker,
                        ) -> Iterator[Callable[..., LivePublisher]]:
    """``make(scenario, seed=None, speed=86400)``: a connected live household."""
    made: list[LivePublisher] = []

    def make(scenario: str | Path, seed: int | None = None,
             speed: float = 86_400.0) -> LivePublisher:
        household = Household.from_scenario(scenario, seed)
        passwords = {d.device_id: _account(replenish_broker, d.device_id)
                     for d in household.devices}
        publisher = LivePublisher(household, replenish_broker.host, replenish_broker.port,
                                  passwords, speed=speed)
        publisher.connect()
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


# ---- the agent ------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _toml(settings: dict[str, Any]) -> str:
    """Settings as TOML: sections of scalars and lists, and arrays of tables."""
    out = []
    for name, value in settings.items():
        tables = value if isinstance(value, list) else [value]
        for table in tables:
            out.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            for key, item in table.items():
                if isinstance(item, dict):  # one nested level, e.g. [alerts] contacts
                    raise ValueError(f"nested table {name}.{key}: pass it as [{name}.{key}]")
                out.append(f"{key} = {_toml_value(item)}")
            out.append("")
    return "\n".join(out)


@dataclass
class RunningAgent:
    """A real ``replenish run`` process and the household's CLI against it."""

    config: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    # Extra ``run`` arguments and environment (the sim-time fixture adds ``--clock``).
    run_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_path = self.config.parent / "agent.log"

    @property
    def db(self) -> Path:
        return self.config.parent / "agent.db"

    def start(self, timeout: float = 30.0) -> RunningAgent:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("agent already running")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "--config", str(self.config), "run",
                 *self.run_args],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        wait_for(lambda: READY_LINE in self.log()[offset:] or self.proc.poll() is not None,
                 "the agent to be ready", timeout)
        if self.proc.poll() is not None:
            pytest.fail(f"the agent exited:\n{self.log()[-3000:]}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``replenish --config CONFIG ARGS...`` (exit code checked unless ``check=False``)."""
        done = subprocess.run([sys.executable, "-m", "agent.cli.main", "--config",
                               str(self.config), *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **self.cli_env()})
        if check and done.returncode != 0:
            pytest.fail(f"replenish {' '.join(args)} exited {done.returncode}:\n"
                        f"{done.stdout}{done.stderr}")
        return done

    def cli_env(self) -> dict[str, str]:
        """Environment of household commands (the sim-time agent sets REPLENISH_NOW)."""
        return {}

    def status(self) -> dict[str, Any]:
        """``replenish status --json``, parsed."""
        data: dict[str, Any] = json.loads(self.cli("status", "--json").stdout)
        return data

    def knows(self, consumable: str) -> bool:
        """Whether the agent has stored a reading of ``device/consumable``."""
        return any(f"{c['device_id']}/{c['consumable_id']}" == consumable
                   for c in self.status().get("consumables", []))

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def replenish_agent(tmp_path: Path, replenish_broker: LocalBroker,
                    replenish_vendor: VendorEndpoint) -> Iterator[Callable[..., RunningAgent]]:
    """``make(extra_toml="", start=True)``: an agent wired to the broker and vendor.

    Passes run fast for tests (decisions every 10 s, dispatch and household sync every
    half second, no pre-notice, readings committed within a second); ``extra_toml``
    (TOML text) adds or overrides settings key by key, and adds arrays of tables such as
    ``[[printers]]``.
    """
    made: list[RunningAgent] = []

    def make(extra_toml: str = "", start: bool = True) -> RunningAgent:
        agent = write_agent(tmp_path / f"replenish-agent-{len(made)}", replenish_broker,
                            replenish_vendor, extra_toml, RunningAgent)
        made.append(agent)
        return agent.start() if start else agent

    yield make
    for agent in made:
        agent.stop()


A = TypeVar("A", bound=RunningAgent)


def write_agent(work: Path, replenish_broker: LocalBroker, replenish_vendor: VendorEndpoint,
                extra_toml: str, kind: type[A]) -> A:
    """An agent's settings and secrets in ``work`` (not started)."""
    work.mkdir()
    (work / "mqtt-password").write_text(replenish_broker.passwords["agent"])
    (work / "vendor-token").write_text(replenish_vendor.token)
    settings: dict[str, dict[str, Any]] = {
        "mqtt": {"host": replenish_broker.host, "port": replenish_broker.port,
                 "username": "agent", "password_file": str(work / "mqtt-password"),
                 "client_id": work.name},
        "storage": {"path": str(work / "agent.db")},
        "vendor": {"base_url": replenish_vendor.url,
                   "token_file": str(work / "vendor-token"), "dispatch_interval_s": 0.5,
                   "pre_notice_h": 0, "require_synced_clock": False},
        "forecast": {"interval_s": 10},
        "household": {"sync_interval_s": 0.5, "state_interval_s": 0.5},
        # A vendor's test sees each reading within a second; a household's agent
        # gathers level ticks for 30 s (SD-card wear) and commits news at once.
        "ingest": {"commit_window_s": 1},
    }
    for name, value in tomllib.loads(extra_toml).items():
        if isinstance(value, dict):
            settings.setdefault(name, {}).update(value)
        else:
            settings[name] = value  # e.g. [[printers]]
    (work / "agent.toml").write_text(_toml(settings))
    return kind(work / "agent.toml")


# The sim-time agent fixture lives in its own module; importing it here registers it with
# the plugin (its module imports this one, so it must come last).
from firmware_sim.pytest_simtime import (  # noqa: E402,F401
    replenish_closed_loop,
    replenish_sim_agent,
)
