"""The warning stream support reads first: a real agent (``replenish run``) against a real
Mosquitto logs nothing at WARNING on a clean start and stop, names a wrong password as
such, and leaves its warnings where the support bundle finds them off journald."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.ops import support_bundle
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
QUIET = "[vendor]\nrequire_synced_clock = false\ntoken_file = \"{token}\"\n"
LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\S+): (.*)$")


def records(text: str) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(LINE.match, text.splitlines()) if m]  # type: ignore[misc]


def test_clean_start_and_stop_log_no_warnings(broker: LocalBroker, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("hygiene-token-1")
    extra = QUIET.format(token=tmp_path / "token")
    agent = AgentProcess(write_agent_config(tmp_path / "agent", broker, extra)).start()
    assert agent.stop() == 0
    rows = records(agent.log())
    assert any(msg.startswith("mqtt.disconnect reason=normal_disconnection")
               for level, _, msg in rows if level == "INFO"), agent.log()
    assert [r for r in rows if r[0] != "INFO" and r[0] != "DEBUG"] == [], agent.log()
    assert not [r for r in rows if r[1].startswith("apscheduler")], agent.log()
    # Every line the agent's own loggers wrote is an `event key=value` line.
    for _, name, msg in rows:
        if name.startswith("agent"):
            assert re.match(r"^[a-z_]+(\.[a-z_]+)+( |$)", msg), msg


def test_wrong_password_is_named_and_reaches_the_bundle(
    broker: LocalBroker, tmp_path: Path
) -> None:
    workdir = tmp_path / "agent"
    (tmp_path / "token").write_text("hygiene-token-1")
    config = write_agent_config(workdir, broker, QUIET.format(token=tmp_path / "token"))
    (workdir / "mqtt-password").write_text("not-the-password")
    agent = AgentProcess(config)
    with pytest.raises(AssertionError):
        agent.start(timeout=4.0)  # never ready; with a waiting service it keeps retrying
    wait_until(lambda: "mqtt.auth_failed" in agent.log(), timeout=10.0,
               what=lambda: agent.log()[-2000:])
    try:
        agent.stop(timeout=10)
    except Exception:  # noqa: BLE001 - the test is about the log, not the exit
        agent.kill()
    text = agent.log()
    assert "mqtt.auth_failed user=agent reason_code=13" in text, text
    assert "Protocol error" not in text and "protocol_error" not in text
    bundle = support_bundle.collect(lambda: load_settings(config),
                                    support_bundle.Sources(journal=lambda: "-- No entries --\n"))
    assert "mqtt.auth_failed" in bundle["agent-warnings.log"]
    assert "not-the-password" not in "".join(bundle.values())
