"""pytest fixtures for the real agent on simulated time (part of the ``pytest11`` plugin).

``replenish_sim_agent`` starts ``replenish run --clock ...``: with the bundled sandbox
the agent follows the sandbox's ``/_sandbox/clock`` (so order, delivery and decision
times agree); against the vendor's own API it follows a clock file. The test moves time
with :meth:`SimAgent.step`, which advances the clock and waits until the agent ran its
passes for the new instant (lockstep: the outcome does not depend on machine load).

See ``docs/vendor-testing.md`` ("Simulated time") and ``examples/vendor-tests/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.clock import NOW_ENV, SIM_MARKER, SIM_OPT_IN_ENV
from firmware_sim.broker import LocalBroker
from firmware_sim.household.live import LivePublisher
from firmware_sim.household.scenario import Household
from firmware_sim.pytest_plugin import RunningAgent, VendorEndpoint, wait_for, write_agent
from firmware_sim.vendor import VendorSandbox, deliver_to
from firmware_sim.vendor.faults import DEFAULT_START, SimClock

# Passes on simulated time at the in-process demo's cadence: decisions every 6 h,
# dispatch and household sync every simulated minute, the real 6 h pre-notice.
SIM_SETTINGS = """
[forecast]
interval_s = 21600
[vendor]
dispatch_interval_s = 60
pre_notice_h = 6
[household]
sync_interval_s = 60
state_interval_s = 60
"""


class SimTime:
    """The clock a sim-time agent follows: the sandbox's own, or a clock file."""

    def __init__(self, sandbox: VendorSandbox | None, path: Path,
                 start: datetime = DEFAULT_START) -> None:
        self.sandbox = sandbox
        self.path = path
        if sandbox is None:
            self._write(start)

    @property
    def spec(self) -> str:
        """What ``--clock`` gets."""
        if self.sandbox is not None:
            return f"{self.sandbox.url}/_sandbox/clock"
        return str(self.path)

    def now(self) -> datetime:
        if self.sandbox is not None:
            return self.sandbox.now()
        return datetime.fromisoformat(self.path.read_text().strip())

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward (the sandbox delivers what fell due meanwhile)."""
        if self.sandbox is not None:
            self.sandbox.advance(delta)
            return self.sandbox.now()
        when = self.now() + delta
        self._write(when)
        return when

    def announce(self, at: datetime, count: int) -> None:
        """Tell an agent on the sandbox's clock how many device messages the broker took
        by ``at``: it runs its passes once it has committed that many (a file clock
        cannot say; the agent then waits for a quiet moment)."""
        clock = self.sandbox.state.clock if self.sandbox is not None else None
        if isinstance(clock, SimClock):
            clock.announce(at, count)

    def _write(self, when: datetime) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(when.isoformat() + "\n")
        tmp.replace(self.path)  # atomic: the agent never reads half a timestamp


@dataclass
class SimAgent(RunningAgent):
    """A real ``replenish run`` on simulated time; household commands run at that time."""

    sim: SimTime | None = None

    def cli_env(self) -> dict[str, str]:
        return {NOW_ENV: self.sim.now().isoformat()} if self.sim is not None else {}

    def clock_state(self) -> dict[str, Any] | None:
        """The agent's ``simulated-clock`` marker (source, now, passes_at), if running."""
        try:
            data = json.loads((self.config.parent / SIM_MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def wait_passes(self, at: datetime | None = None, timeout: float = 30.0) -> None:
        """Wait until the agent ran its passes for simulated instant ``at`` (default now)."""
        assert self.sim is not None
        wanted = at or self.sim.now()

        def done() -> bool:
            state = self.clock_state()
            return bool(state and state.get("passes_at")
                        and datetime.fromisoformat(state["passes_at"]) >= wanted)

        wait_for(done, f"the agent's passes at {wanted.isoformat()}", timeout)

    def step(self, delta: timedelta, timeout: float = 30.0) -> datetime:
        """Advance simulated time by ``delta`` and wait for the agent's passes."""
        assert self.sim is not None
        now = self.sim.advance(delta)
        self.wait_passes(now, timeout)
        return now


@pytest.fixture
def replenish_sim_agent(tmp_path: Path, replenish_broker: LocalBroker,
                        replenish_vendor: VendorEndpoint) -> Iterator[Callable[..., SimAgent]]:
    """``make(extra_toml="", start=True)``: a real agent process on simulated time.

    Time starts frozen at the sandbox's clock (or 2026-01-05T08:00Z in a clock file when
    testing your own API) and moves only when the test calls ``agent.step(delta)``.
    """
    made: list[SimAgent] = []

    def make(extra_toml: str = "", start: bool = True) -> SimAgent:
        agent = write_agent(tmp_path / f"replenish-agent-sim-{len(made)}", replenish_broker,
                            replenish_vendor, SIM_SETTINGS, SimAgent)
        if extra_toml:  # the test's own keys win over the simulated cadence
            _merge(agent.config, extra_toml)
        agent.sim = SimTime(replenish_vendor.sandbox, agent.config.parent / "clock")
        agent.run_args = ("--clock", agent.sim.spec)
        agent.env = {SIM_OPT_IN_ENV: "1"}
        made.append(agent)
        if start:
            agent.start()
            agent.wait_passes()
        return agent

    yield make
    for agent in made:
        agent.stop()


def _merge(config: Path, extra_toml: str) -> None:
    import tomllib

    from firmware_sim.pytest_plugin import _toml

    settings: dict[str, Any] = tomllib.loads(config.read_text())
    for name, value in tomllib.loads(extra_toml).items():
        if isinstance(value, dict):
            settings.setdefault(name, {}).update(value)
        else:
            settings[name] = value
    config.write_text(_toml(settings))


@dataclass
class ClosedLoop:
    """A simulated household, the sandbox and the real agent on one simulated clock."""

    agent: SimAgent
    publisher: LivePublisher

    @property
    def household(self) -> Household:
        return self.publisher.household

    def step(self, delta: timedelta = timedelta(hours=1), timeout: float = 30.0) -> datetime:
        """Move time (the sandbox delivers, the household puts deliveries away), publish
        the devices' readings, and wait for the agent's passes at the new instant."""
        assert self.agent.sim is not None
        now = self.agent.sim.advance(delta)
        self.publisher.step(now)
        for conn in self.publisher.connections.values():
            conn.flush()
        self.agent.sim.announce(now, self.publisher.delivered)
        self.agent.wait_passes(now, timeout)
        return now

    def stockout_days(self) -> dict[str, float]:
        """Days without stock so far, per ``device/consumable``."""
        assert self.agent.sim is not None
        start, now = self.household.start, self.agent.sim.now()
        out: dict[str, float] = {}
        for dev in self.household.devices:
            for cid in dev.stocks:
                total = sum((min(end or now, now) - max(begin, start)
                             for begin, end in dev.stockouts(cid)), timedelta(0))
                out[f"{dev.device_id}/{cid}"] = total / timedelta(days=1)
        return out


@pytest.fixture
def replenish_closed_loop(request: pytest.FixtureRequest,
                          replenish_sim_agent: Callable[..., SimAgent],
                          replenish_household: Callable[..., LivePublisher],
                          replenish_vendor: VendorEndpoint) -> Callable[..., ClosedLoop]:
    """``make(extra_toml="")``: the test's ``@pytest.mark.replenish_scenario`` household
    live on the broker, delivered to by the sandbox, and a sim-time agent."""
    marker = request.node.get_closest_marker("replenish_scenario")
    sandbox = replenish_vendor.sandbox
    if marker is None or sandbox is None:
        raise pytest.UsageError("replenish_closed_loop needs the bundled sandbox and "
                                "@pytest.mark.replenish_scenario(NAME)")

    def make(extra_toml: str = "") -> ClosedLoop:
        publisher = replenish_household(*marker.args, **marker.kwargs)
        sandbox.on_delivered = deliver_to(publisher.household)
        return ClosedLoop(replenish_sim_agent(extra_toml), publisher)

    return make
