"""Unit tests of the broker-side file handling and the ``replenish device`` command."""

from __future__ import annotations

import argparse
import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.cli.commands.device import paths_from
from agent.cli.main import main
from agent.errors import BrokerError, ConfigError
from agent.ops import provisioning as prov

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
# Written by `mosquitto_passwd -c -b pw printer-1 's3cret-Pass'` (Mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "printer-1:$7$101$azamBdC0fx6psgn5$AHflUMLGT7oE2J5yKkWS4u4c7+Tf4TmFArOrB/XX/JRfCE61rXHk"
    "uMhb8vsGL/M0lnIVUhwGXGt26EZag72pVw=="
)


@pytest.fixture
def paths(tmp_path: Path) -> prov.BrokerPaths:
    return prov.BrokerPaths(
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        registry_file=tmp_path / "devices.json",
        ca_dir=tmp_path / "ca",
        pid_file=tmp_path / "mosquitto.pid",
    )


# -- password hashes ---------------------------------------------------------------------


def test_verifies_a_hash_written_by_mosquitto_passwd() -> None:
    encoded = MOSQUITTO_PASSWD_LINE.split(":", 1)[1]
    assert prov.verify_password("s3cret-Pass", encoded)
    assert not prov.verify_password("s3cret-pass", encoded)


def test_hash_has_mosquitto_format_and_round_trips() -> None:
    encoded = prov.hash_password("pw")
    tag, iterations, salt, digest = encoded.split("$")[1:]
    assert (tag, iterations) == ("7", "101")
    assert len(salt) == 16 and len(digest) == 88  # base64 of 12 and 64 bytes
    assert prov.verify_password("pw", encoded)
    assert not prov.verify_password("pw2", encoded)
    assert prov.hash_password("pw") != encoded  # fresh salt each time


def test_same_salt_gives_same_hash_as_mosquitto() -> None:
    import base64

    encoded = MOSQUITTO_PASSWD_LINE.split(":", 1)[1]
    salt = base64.b64decode(encoded.split("$")[3])
    assert prov.hash_password("s3cret-Pass", salt) == encoded


@pytest.mark.parametrize("bad", ["", "plain", "$6$101$a$b", "$7$x$a$b", "$7$101$!!$b"])
def test_malformed_hash_never_verifies(bad: str) -> None:
    assert not prov.verify_password("pw", bad)


def test_password_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    prov.write_password_file(path, {"a": "$7$1$x$y", "b-2": "$7$1$z$w"})
    assert prov.read_password_file(path) == {"a": "$7$1$x$y", "b-2": "$7$1$z$w"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert prov.read_password_file(tmp_path / "missing") == {}


def test_password_file_skips_comments_and_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# comment\n\nuser:hash\n")
    assert prov.read_password_file(path) == {"user": "hash"}
    path.write_text("no separator\n")
    with pytest.raises(ConfigError, match="line without"):
        prov.read_password_file(path)


# -- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["printer-1", "a", "Fridge_2", "x" * 64])
def test_valid_device_ids(good: str) -> None:
    assert prov.validate_device_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "+", "#", "a/b", "..", "-lead", "x" * 65, "a b", "ä", "agent", "household"]
)
def test_invalid_or_reserved_device_ids(bad: str) -> None:
    with pytest.raises(ConfigError):
        prov.validate_device_id(bad)


# -- rendering ---------------------------------------------------------------------------


def test_acl_binds_devices_by_username() -> None:
    acl = prov.render_acl("agent-x", "home")
    assert "pattern write replenish/v1/devices/%u/state" in acl
    assert "pattern read replenish/v1/devices/%u/commands" in acl
    assert "%c" not in acl.replace("# ", "")  # client ids are spoofable
    assert "user agent-x\n" in acl and "user home\n" in acl
    assert "${" not in acl


def test_standalone_conf_has_process_settings(tmp_path: Path) -> None:
    conf = prov.render_mosquitto_conf(
        local_port=1999,
        password_file=tmp_path / "pw",
        acl_file=tmp_path / "acl",
        process=prov.ProcessSettings(
            persistence_dir=tmp_path / "data", pid_file=tmp_path / "pid", run_user="nobody"
        ),
    )
    lines = conf.splitlines()
    for expected in (
        "allow_anonymous false",
        f"password_file {tmp_path / 'pw'}",
        f"acl_file {tmp_path / 'acl'}",
        "persistence true",
        "max_queued_messages 100000",
        "max_queued_bytes 0",
        "listener 1999 127.0.0.1",
        "user nobody",
        "log_dest syslog",
    ):
        assert expected in lines
    assert "${" not in conf
    assert "cafile" not in conf


def test_conf_d_part_leaves_process_settings_to_debian(tmp_path: Path) -> None:
    tls = prov.TlsFiles(
        ca_file=tmp_path / "ca.crt",
        cert_file=tmp_path / "b.crt",
        key_file=tmp_path / "b.key",
        port=8883,
        cert_port=8884,
        crl_file=tmp_path / "crl.pem",
    )
    conf = prov.render_mosquitto_conf(
        local_port=1883, password_file=tmp_path / "pw", acl_file=tmp_path / "acl", tls=tls
    )
    lines = conf.splitlines()
    # Debian's mosquitto.conf sets these; repeating them is a startup error.
    for key in ("pid_file", "persistence_location", "log_dest", "user"):
        assert not any(line.startswith(key + " ") for line in lines
                       if line != "log_dest topic"), key
    # log_dest may repeat: Debian's log file stays, the topic is added for the agent.
    assert "log_dest topic" in lines
    assert "listener 8883 0.0.0.0" in lines
    assert "listener 8884 0.0.0.0" in lines
    assert "use_identity_as_username true" in lines
    assert f"crlfile {tmp_path / 'crl.pem'}" in lines
    assert lines.count(f"cafile {tmp_path / 'ca.crt'}") == 2


def test_ensure_acl_writes_once_and_repairs(paths: prov.BrokerPaths) -> None:
    assert prov.ensure_acl(paths)
    assert not prov.ensure_acl(paths)
    paths.acl_file.write_text("topic readwrite #\n")
    assert prov.ensure_acl(paths)
    assert paths.acl_file.read_text() == prov.render_acl()


# -- devices -----------------------------------------------------------------------------


def test_add_device_writes_hash_registry_and_acl(
    paths: prov.BrokerPaths, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = prov.add_device(paths, "printer-1", "printer", now=NOW)
    assert creds.password is not None and len(creds.password) >= 20
    entries = prov.read_password_file(paths.password_file)
    assert prov.verify_password(creds.password, entries["printer-1"])
    assert creds.password not in paths.password_file.read_text()
    assert prov.load_registry(paths.registry_file).devices == {
        "printer-1": prov.DeviceRecord("printer-1", "printer", "password", "2026-11-23T09:00:00Z")
    }
    assert paths.acl_file.read_text() == prov.render_acl()
    assert creds.password not in caplog.text


def test_add_refuses_existing_and_reserved(paths: prov.BrokerPaths) -> None:
    prov.add_device(paths, "printer-1", "printer", now=NOW)
    with pytest.raises(ConfigError, match="exists"):
        prov.add_device(paths, "printer-1", "printer", now=NOW)
    prov.set_password(paths, "manual-1", "pw")
    with pytest.raises(ConfigError, match="exists"):
        prov.add_device(paths, "manual-1", "fridge", now=NOW)
    custom = prov.BrokerPaths(
        password_file=paths.password_file,
        registry_file=paths.registry_file,
        acl_file=paths.acl_file,
        agent_user="gateway-agent",
    )
    with pytest.raises(ConfigError, match="reserved"):
        prov.add_device(custom, "gateway-agent", "other", now=NOW)


def test_add_with_cert_needs_a_ca(paths: prov.BrokerPaths) -> None:
    with pytest.raises(ConfigError, match="no household CA"):
        prov.add_device(paths, "scale-1", "fridge", now=NOW, use_cert=True)
    assert prov.list_devices(paths) == []


def test_remove_and_list(paths: prov.BrokerPaths) -> None:
    prov.add_device(paths, "printer-1", "printer", now=NOW)
    prov.add_device(paths, "fridge-1", "fridge", now=NOW)
    prov.set_password(paths, "agent", "a")
    prov.set_password(paths, "manual-1", "m")
    assert [(d.device_id, d.kind) for d in prov.list_devices(paths)] == [
        ("fridge-1", "fridge"),
        ("manual-1", "unknown"),
        ("printer-1", "printer"),
    ]
    removed = prov.remove_device(paths, "printer-1")
    assert removed.kind == "printer"
    assert "printer-1" not in prov.read_password_file(paths.password_file)
    assert prov.remove_device(paths, "manual-1").kind == "unknown"
    assert [d.device_id for d in prov.list_devices(paths)] == ["fridge-1"]
    with pytest.raises(ConfigError, match="no device"):
        prov.remove_device(paths, "printer-1")
    with pytest.raises(ConfigError, match="not a device"):
        prov.remove_device(paths, "agent")
    assert "agent" in prov.read_password_file(paths.password_file)


def test_removed_ids_are_denied_in_the_acl_until_added_again(paths: prov.BrokerPaths) -> None:
    prov.add_device(paths, "printer-1", "printer", now=NOW)
    prov.remove_device(paths, "printer-1")
    acl = paths.acl_file.read_text()
    assert "user printer-1\ntopic deny #\n" in acl
    assert prov.load_registry(paths.registry_file).revoked == {"printer-1"}
    prov.add_device(paths, "printer-1", "printer", now=NOW)
    assert "printer-1" not in paths.acl_file.read_text()
    assert paths.acl_file.read_text() == prov.render_acl()


def test_corrupt_registry_is_a_config_error(paths: prov.BrokerPaths) -> None:
    paths.registry_file.write_text("{not json")
    with pytest.raises(ConfigError, match="registry_file"):
        prov.list_devices(paths)
    paths.registry_file.write_text('{"devices": [{"id": 1}]}')
    with pytest.raises(ConfigError, match="unexpected structure"):
        prov.list_devices(paths)


def test_reload_errors_are_broker_errors(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="pid file"):
        prov.reload_broker(tmp_path / "missing.pid")
    (tmp_path / "bad.pid").write_text("not a pid\n")
    with pytest.raises(BrokerError):
        prov.reload_broker(tmp_path / "bad.pid")
    with pytest.raises(BrokerError, match="reload command failed"):
        prov.reload_broker(reload_command="/bin/false")


# -- the command ---------------------------------------------------------------------------


def _cli(paths: prov.BrokerPaths, *args: str) -> list[str]:
    return [
        "device",
        "--password-file", str(paths.password_file),
        "--acl-file", str(paths.acl_file),
        "--registry-file", str(paths.registry_file),
        "--ca-dir", str(paths.ca_dir),
        "--no-reload",
        *args,
    ]  # fmt: skip


def test_cli_add_list_remove(
    paths: prov.BrokerPaths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLENISH_CONFIG", raising=False)
    assert (
        main(
            ["--config", "/dev/null", *_cli(paths, "--json", "add", "wear-1", "--kind", "wearable")]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["username"] == "wear-1"
    assert info["subscribe"] == ["replenish/v1/devices/wear-1/commands"]
    assert info["port"] == prov.DEFAULT_TLS_PORT
    assert prov.verify_password(
        info["password"], prov.read_password_file(paths.password_file)["wear-1"]
    )

    assert main(["--config", "/dev/null", *_cli(paths, "list")]) == 0
    out = capsys.readouterr().out
    assert "wear-1" in out and "wearable" in out and info["password"] not in out

    assert main(["--config", "/dev/null", *_cli(paths, "remove", "wear-1")]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["--config", "/dev/null", *_cli(paths, "remove", "wear-1")]) == 2


def test_cli_human_output_shows_what_the_device_needs(
    paths: prov.BrokerPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", "/dev/null", *_cli(paths, "add", "fridge-9", "--kind", "fridge")]) == 0
    out = capsys.readouterr().out
    for needle in ("username:", "password:", "ca_file:", "replenish/v1/devices/fridge-9/state"):
        assert needle in out


def test_cli_rejects_unknown_kind(paths: prov.BrokerPaths) -> None:
    with pytest.raises(SystemExit) as exc:
        main(_cli(paths, "add", "x-1", "--kind", "toaster"))
    assert exc.value.code == 2


def test_paths_from_settings_section_and_flags(tmp_path: Path) -> None:
    settings = SimpleNamespace(
        mqtt=SimpleNamespace(username="gw-agent"),
        broker=SimpleNamespace(
            password_file=tmp_path / "from-settings.pw",
            acl_file=tmp_path / "from-settings.acl",
            registry_file=None,
            ca_dir=None,
            pid_file=None,
            reload_command="systemctl reload mosquitto",
            household_user="family",
        ),
    )
    args = argparse.Namespace(
        password_file=None,
        acl_file=tmp_path / "flag.acl",
        registry_file=None,
        ca_dir=None,
        pid_file=None,
        reload_command=None,
    )
    paths = paths_from(args, settings)  # type: ignore[arg-type]
    assert paths.password_file == tmp_path / "from-settings.pw"
    assert paths.acl_file == tmp_path / "flag.acl"
    assert paths.registry_file == prov.DEFAULT_REGISTRY_FILE
    assert paths.reload_command == "systemctl reload mosquitto"
    assert (paths.agent_user, paths.household_user) == ("gw-agent", "family")
