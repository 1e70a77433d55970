"""The web app's unit passes `systemd-analyze verify` silently and scores <= 2.0 exposure,
and shares the agent's dynamic user and state directory (the database and the password)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests import test_systemd_unit as agent_unit

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "replenish-web.service"
MAX_EXPOSURE = 2.0


def settings(path: Path) -> dict[str, str]:
    return {line.split("=", 1)[0]: line.split("=", 1)[1]
            for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")}


@agent_unit.needs_analyze
@pytest.mark.skipif(agent_unit.HOST_UNITS is None, reason="no systemd unit directory")
def test_verify_prints_nothing(tmp_path: Path) -> None:
    root = agent_unit.make_root(tmp_path, agent_unit.UNIT.read_text())
    (root / "etc/systemd/system" / UNIT.name).write_text(UNIT.read_text())
    assert agent_unit.SYSTEMD_ANALYZE is not None
    result = subprocess.run([agent_unit.SYSTEMD_ANALYZE, "verify", f"--root={root}", UNIT.name],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr == "" and result.returncode == 0, result.stderr


@agent_unit.needs_analyze
def test_security_exposure_at_most_threshold(tmp_path: Path) -> None:
    assert agent_unit.SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [agent_unit.SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_shares_the_agents_user_and_state() -> None:
    web, agent = settings(UNIT), settings(agent_unit.UNIT)
    assert web["DynamicUser"] == agent["DynamicUser"] == "yes"
    assert web["User"] == "replenish-agent"  # the agent's dynamic user is named after its unit
    assert web["StateDirectory"] == agent["StateDirectory"]
    assert web["ExecStart"].endswith("--config /etc/replenish-agent/agent.toml web")
    assert web["RestartPreventExitStatus"] == "2"
    assert not re.search(r"^Environment=.*(PASSWORD|TOKEN)", UNIT.read_text(), re.M | re.I)
