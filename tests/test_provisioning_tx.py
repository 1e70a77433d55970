"""Provisioning on a fresh gateway: templates found or a clear error, all-or-nothing
commands, and ``device add`` telling devices the address ``device init`` set up."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.errors import BrokerError, ConfigError
from agent.ops import broker_files
from agent.ops import provisioning as prov
from agent.ops.filetx import FileTransaction

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def paths(tmp_path: Path) -> prov.BrokerPaths:
    return prov.BrokerPaths(
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        registry_file=tmp_path / "devices.json",
        ca_dir=tmp_path / "ca",
        pid_file=tmp_path / "mosquitto.pid",
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def cli(paths: prov.BrokerPaths, tmp_path: Path, *args: str) -> list[str]:
    return [
        "--config", "/dev/null", "device",
        "--password-file", str(paths.password_file),
        "--acl-file", str(paths.acl_file),
        "--registry-file", str(paths.registry_file),
        "--ca-dir", str(paths.ca_dir),
        *args,
    ]  # fmt: skip


def test_missing_templates_name_the_places_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REPLENISH_BROKER_CONFIG_DIR", raising=False)
    monkeypatch.setattr(broker_files, "broker_config_candidates", lambda: [tmp_path / "x"])
    with pytest.raises(ConfigError) as err:
        prov.broker_config_dir()
    text = str(err.value)
    assert "REPLENISH_BROKER_CONFIG_DIR" not in text
    assert str(tmp_path / "x") in text and "make install" in text


def test_a_wrong_override_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REPLENISH_BROKER_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="REPLENISH_BROKER_CONFIG_DIR.*no mosquitto.conf"):
        prov.broker_config_dir()


def test_installed_venv_location_is_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLENISH_BROKER_CONFIG_DIR", raising=False)
    monkeypatch.setattr("sys.prefix", "/opt/replenish-agent")
    assert Path("/opt/replenish-agent/share/replenish-agent/broker_config") in (
        prov.broker_config_candidates()
    )


def test_failed_add_leaves_no_trace_and_retry_works(
    paths: prov.BrokerPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prov.add_device(paths, "fridge-1", "fridge", now=NOW)
    before = snapshot(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("REPLENISH_BROKER_CONFIG_DIR", str(empty))
    with pytest.raises(ConfigError, match="mosquitto.conf.template"):
        prov.add_device(paths, "x1", "printer", now=NOW)
    assert snapshot(tmp_path) == before
    monkeypatch.delenv("REPLENISH_BROKER_CONFIG_DIR")
    creds = prov.add_device(paths, "x1", "printer", now=NOW)
    assert creds.password is not None
    assert "x1" in prov.read_password_file(paths.password_file)


def test_failed_reload_rolls_the_add_back(
    paths: prov.BrokerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(cli(paths, tmp_path, "--reload-command", "/bin/false",
                  "add", "x1", "--kind", "printer"))
    assert rc == 1
    err = capsys.readouterr().err
    assert "reload command failed" in err and "Traceback" not in err
    assert "put back as it was" in err
    assert prov.list_devices(paths) == []
    assert "x1" not in prov.read_password_file(paths.password_file)
    rc = main(cli(paths, tmp_path, "--no-reload", "add", "x1", "--kind", "printer"))
    assert rc == 0 and "password:" in capsys.readouterr().out


def test_failed_reload_rolls_the_remove_back(paths: prov.BrokerPaths) -> None:
    prov.add_device(paths, "x1", "printer", now=NOW)
    before = paths.password_file.read_bytes(), paths.registry_file.read_bytes()

    def fail() -> None:
        raise BrokerError("broker reload command failed: test")

    with pytest.raises(BrokerError):
        prov.remove_device(paths, "x1", apply=fail)
    assert (paths.password_file.read_bytes(), paths.registry_file.read_bytes()) == before


def test_transaction_restores_content_mode_and_removes_new_things(tmp_path: Path) -> None:
    kept, new, tree = tmp_path / "kept", tmp_path / "new", tmp_path / "tree"
    kept.write_text("old")
    kept.chmod(0o640)
    with pytest.raises(RuntimeError), FileTransaction() as tx:
        tx.track(kept, new)
        tx.track_tree(tree)
        kept.write_text("changed")
        kept.chmod(0o600)
        new.write_text("x")
        (tree / "sub").mkdir(parents=True)
        raise RuntimeError("boom")
    assert kept.read_text() == "old" and kept.stat().st_mode & 0o777 == 0o640
    assert not new.exists() and not tree.exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is a system package")
def test_add_tells_devices_the_address_init_set_up(
    paths: prov.BrokerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = cli(paths, tmp_path, "--no-reload", "init", "--hostname", "gw", "--tls-port",
               "18883", "--conf-file", str(tmp_path / "replenish.conf"),
               "--agent-password-file", str(tmp_path / "agent-pw"),
               "--household-password-file", str(tmp_path / "household-pw"))
    assert main(init) == 0
    out = capsys.readouterr().out
    assert "gw:18883" in out
    assert "listener 18883" in (tmp_path / "replenish.conf").read_text()
    assert main(cli(paths, tmp_path, "--no-reload", "add", "x1", "--kind", "printer",
                    "--json")) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["host"], info["port"]) == ("gw", 18883)


def test_failed_init_leaves_no_ca_config_or_accounts(
    paths: prov.BrokerPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broker_config"
    shutil.copytree(ROOT / "broker_config", broken)
    (broken / "make-broker-cert.sh").write_text("echo 'openssl: cannot sign' >&2\nexit 1\n")
    monkeypatch.setenv("REPLENISH_BROKER_CONFIG_DIR", str(broken))
    state = tmp_path / "state"
    state.mkdir()
    paths = prov.BrokerPaths(password_file=state / "passwd", acl_file=state / "acl",
                             registry_file=state / "devices.json", ca_dir=state / "ca")
    init = cli(paths, tmp_path, "--no-reload", "init", "--hostname", "gw",
               "--conf-file", str(state / "replenish.conf"),
               "--agent-password-file", str(state / "agent-pw"),
               "--household-password-file", str(state / "household-pw"))
    assert main(init) == 2
    assert "cannot sign" in capsys.readouterr().err
    assert list(state.iterdir()) == []


def test_device_list_json_after_the_subcommand(
    paths: prov.BrokerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prov.add_device(paths, "x1", "printer", now=NOW)
    assert main(cli(paths, tmp_path, "list", "--json")) == 0
    assert [d["device_id"] for d in json.loads(capsys.readouterr().out)["devices"]] == ["x1"]
    assert main(cli(paths, tmp_path, "--json", "list")) == 0
    assert json.loads(capsys.readouterr().out)["devices"]


def test_example_config_documents_the_broker_section_and_one_ca_path() -> None:
    from agent.config import load_settings

    example = (ROOT / "systemd/agent.toml.example").read_text()
    load_settings(ROOT / "systemd/agent.toml.example", env={})  # still a valid file
    assert "[broker]" in example
    for key in ("advertise_host", "tls_port", "cert_port", "ca_dir"):
        assert f"# {key} = " in example
    ca = str(prov.DEFAULT_CA_DIR / "ca.crt")
    readme = (ROOT / "README.md").read_text()
    assert f'tls_ca_file = "{ca}"' in readme and f'tls_ca_file = "{ca}"' in example
    assert "advertise_host" in (ROOT / "docs/operations.md").read_text()
