"""The `make install` / `make uninstall` scripts, staged into a DESTDIR (no systemctl).

One test builds the real venv (pip from the configured index); the others swap in a stub
interpreter so the upgrade, rollback and failure paths run in milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

STUB_PYTHON = """#!/bin/sh
# Stands in for python3: `-c` (version check) passes, `-m venv DIR` makes a stub venv whose
# pip "installs" a replenish script, or fails when FAKE_PIP_FAIL is set.
case "$1" in
  -c) exit 0 ;;
  -m) mkdir -p "$3/bin"
      cat > "$3/bin/pip" <<'PIP'
#!/bin/sh
[ -n "$FAKE_PIP_FAIL" ] && exit 1
printf '#!/bin/sh\\necho replenish stub\\n' > "$(dirname "$0")/replenish"
chmod +x "$(dirname "$0")/replenish"
PIP
      chmod +x "$3/bin/pip" ;;
esac
"""


def sh(
    script: str, destdir: Path, *args: str, python: str = sys.executable, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "systemd" / script), *args],
        env={**os.environ, "DESTDIR": str(destdir), "PYTHON": python, **env},
        capture_output=True, text=True, timeout=540, check=False,
    )


@pytest.fixture
def stub_python(tmp_path: Path) -> str:
    path = tmp_path / "python3"
    path.write_text(STUB_PYTHON)
    path.chmod(0o755)
    return str(path)


def releases(dest: Path) -> list[str]:
    return sorted(p.name for p in (dest / "opt").glob("replenish-agent-*"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_install_runs_the_agent(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    done = sh("install.sh", dest)
    assert done.returncode == 0, done.stderr
    link = dest / "opt/replenish-agent"
    replenish = link / "bin/replenish"
    version = subprocess.run([str(replenish), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("replenish ")
    assert (link / "share/doc/operations.md").is_file()
    unit = dest / "etc/systemd/system/replenish-agent.service"
    assert unit.read_text() == (ROOT / "systemd/replenish-agent.service").read_text()
    # The web app's templates and stylesheet are package data of the wheel.
    assert list(link.glob("lib/python3*/site-packages/agent/web/templates/home.html"))
    assert list(link.glob("lib/python3*/site-packages/agent/web/static/style.css"))
    web_unit = dest / "etc/systemd/system/replenish-web.service"
    assert web_unit.read_text() == (ROOT / "systemd/replenish-web.service").read_text()
    config = dest / "etc/replenish-agent/agent.toml"
    check = subprocess.run(
        [str(replenish), "--config", str(config), "check-config"],
        capture_output=True, text=True,
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    # The example names secret files that do not exist yet: a clear error, exit 2.
    assert check.returncode == 2 and "mqtt.password_file" in check.stderr
    # `device init` / `device add`, the next documented steps, find their templates.
    env = {k: v for k, v in os.environ.items() if k != "REPLENISH_BROKER_CONFIG_DIR"}
    found = subprocess.run(
        [str(link / "bin/python"), "-c",
         "from agent.ops.provisioning import broker_config_dir; print(broker_config_dir())"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().endswith("share/replenish-agent/broker_config")


def test_upgrade_keeps_config_and_one_previous_release(tmp_path: Path, stub_python: str) -> None:
    dest = tmp_path / "root"
    link = dest / "opt/replenish-agent"
    assert sh("install.sh", dest, python=stub_python).returncode == 0
    first = os.readlink(link)
    config = dest / "etc/replenish-agent/agent.toml"
    assert config.read_text() == (ROOT / "systemd/agent.toml.example").read_text()
    assert os.readlink(dest / "usr/local/bin/replenish") == "/opt/replenish-agent/bin/replenish"
    assert (dest / "etc/credstore").stat().st_mode & 0o777 == 0o700
    config.write_text("# edited by the household\n")

    assert sh("install.sh", dest, python=stub_python).returncode == 0
    second = os.readlink(link)
    assert second != first and releases(dest) == sorted([first, second])
    assert config.read_text() == "# edited by the household\n"

    assert sh("install.sh", dest, python=stub_python).returncode == 0
    third = os.readlink(link)
    assert releases(dest) == sorted([second, third])  # the oldest is gone

    failed = sh("install.sh", dest, python=stub_python, FAKE_PIP_FAIL="1")
    assert failed.returncode == 1 and "unchanged" in failed.stderr
    assert os.readlink(link) == third and releases(dest) == sorted([second, third])


def test_install_ships_the_broker_templates_and_ca_scripts(
    tmp_path: Path, stub_python: str
) -> None:
    dest = tmp_path / "root"
    assert sh("install.sh", dest, python=stub_python).returncode == 0
    shipped = dest / "opt/replenish-agent/share/replenish-agent/broker_config"
    for name in ("mosquitto.conf.template", "acl.template", "tls-listener.conf.template"):
        assert (shipped / name).read_text() == (ROOT / "broker_config" / name).read_text()
    for script in ("make-ca.sh", "make-broker-cert.sh", "make-client-cert.sh",
                   "revoke-client-cert.sh"):
        assert (shipped / script).stat().st_mode & 0o111, script


def test_foreign_replenish_command_is_left_alone(tmp_path: Path, stub_python: str) -> None:
    dest = tmp_path / "root"
    other = dest / "usr/local/bin/replenish"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    assert sh("install.sh", dest, python=stub_python).returncode == 0
    assert not other.is_symlink() and other.read_text() == "#!/bin/sh\n"
    assert sh("uninstall.sh", dest).returncode == 0
    assert other.exists()


def test_refuses_to_replace_a_real_directory(tmp_path: Path, stub_python: str) -> None:
    dest = tmp_path / "root"
    (dest / "opt/replenish-agent").mkdir(parents=True)
    done = sh("install.sh", dest, python=stub_python)
    assert done.returncode == 1 and "not a symlink" in done.stderr


def test_uninstall_keeps_data_unless_purged(tmp_path: Path, stub_python: str) -> None:
    dest = tmp_path / "root"
    assert sh("install.sh", dest, python=stub_python).returncode == 0
    state = dest / "var/lib/private/replenish-agent"
    state.mkdir(parents=True)
    (state / "agent.db").write_bytes(b"orders history")
    (dest / "etc/credstore/replenish-agent-vendor-token").write_text("t")

    assert sh("uninstall.sh", dest).returncode == 0
    assert not (dest / "opt/replenish-agent").exists() and releases(dest) == []
    assert not (dest / "usr/local/bin/replenish").is_symlink()
    assert not (dest / "etc/systemd/system/replenish-agent.service").exists()
    assert not (dest / "etc/systemd/system/replenish-web.service").exists()
    assert (state / "agent.db").exists()
    assert (dest / "etc/replenish-agent/agent.toml").exists()

    assert sh("uninstall.sh", dest, "--purge").returncode == 0
    assert not state.exists() and not (dest / "etc/replenish-agent").exists()
    assert not (dest / "etc/credstore/replenish-agent-vendor-token").exists()
    assert sh("uninstall.sh", dest, "--bogus").returncode == 2
