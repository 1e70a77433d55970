"""doctor explains a down broker the service is waiting for (real closed port)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config import load_settings
from agent.ops import doctor
from agent.ops.doctor import Level
from tests.test_doctor import closed_port, probes, write_config

WAITING = "waiting for MQTT broker 127.0.0.1:1883 (attempt 4, next in 8s)"


def broker_result(tmp_path: Path, status: str | None) -> doctor.CheckResult:
    cfg = write_config(tmp_path, closed_port())
    checks = dataclasses.replace(probes(), service_status=lambda: status)
    results = doctor.run_checks(lambda: load_settings(cfg), checks)
    return next(r for r in results if r.name == "broker")


def test_down_broker_says_the_service_is_waiting_for_it(tmp_path: Path) -> None:
    result = broker_result(tmp_path, WAITING)
    assert result.level is Level.FAIL and "unreachable" in result.summary
    assert f"the agent service is alive and {WAITING}" in result.details
    assert any("no restart needed" in d for d in result.details)


def test_no_wait_explanation_without_a_waiting_service(tmp_path: Path) -> None:
    for status in (None, "running: MQTT broker 127.0.0.1:1883 connected"):
        result = broker_result(tmp_path, status)
        assert result.level is Level.FAIL
        assert not any("alive" in d for d in result.details)
