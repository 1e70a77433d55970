"""The shipped unit passes `systemd-analyze verify` silently and scores <= 1.5 exposure.

`verify` loads the unit as PID 1 would: it wants the ExecStart= binary to exist and every
referenced target to be known. To check offline without touching the host, the test builds
a throw-away root (`--root=`) holding a copy of the host's unit directory, the unit under
/etc/systemd/system and an executable stub at /opt/replenish-agent/bin/replenish.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "replenish-agent.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = next(
    (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
    None,
)
MAX_EXPOSURE = 1.5

needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (install systemd)"
)


def exec_start_binary() -> str:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]["ExecStart"].split()[0]


def make_root(tmp_path: Path, unit_text: str) -> Path:
    root = tmp_path / "root"
    assert HOST_UNITS is not None
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    binary = root / exec_start_binary().lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / UNIT.name).write_text(unit_text)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this host")
def test_verify_prints_nothing(tmp_path: Path) -> None:
    result = verify(make_root(tmp_path, UNIT.read_text()))
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this host")
def test_verify_setup_catches_a_typo(tmp_path: Path) -> None:
    """The offline root must be able to fail: an unknown key shows up on stderr."""
    broken = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=")
    result = verify(make_root(tmp_path, broken))
    assert "Unknown key 'WatchdogSecs'" in result.stderr


@needs_analyze
def test_security_exposure_at_most_threshold(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_declares_the_contract() -> None:
    """Keys other modules rely on: notify + watchdog, state dir, credentials, no secrets in env."""
    text = UNIT.read_text()
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"]
    assert settings["Restart"] == "on-failure"
    assert settings["StateDirectory"] == "replenish-agent"
    assert settings["ConfigurationDirectory"] == "replenish-agent"
    assert settings["DynamicUser"] == "yes"
    assert "time-sync.target" in settings["After"] and "mosquitto.service" in settings["After"]
    credentials = re.findall(r"^LoadCredential=([^:\n]+):", text, re.M)
    assert sorted(credentials) == ["mqtt-password", "vendor-token"]
    assert settings["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert not re.search(r"^Environment=.*(PASSWORD|TOKEN)", text, re.M | re.I)
    assert "MALLOC_ARENA_MAX=2" in re.findall(r"^Environment=(\S+)$", text, re.M)
    assert settings["ExecStart"].endswith("--config /etc/replenish-agent/agent.toml run")
