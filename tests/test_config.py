"""Settings: TOML + environment precedence, clear errors, secrets from files only."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings, read_secret
from agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    settings = load_settings(None, env={})
    assert settings.mqtt.port == 1883
    assert settings.storage.path.name == "agent.db"


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "gw.local"\nport = 8883\n')
    monkeypatch.setenv("REPLENISH_MQTT__PORT", "1999")
    settings = load_settings(path)
    assert (settings.mqtt.host, settings.mqtt.port) == ("gw.local", 1999)


@pytest.mark.parametrize(
    "text,key,reason",
    [
        ("[mqtt]\nport = 0\n", "mqtt.port", "must be at least 1"),
        ("[mqtt]\nport = 'x'\n", "mqtt.port", "must be a whole number"),
        ("[mqtt]\nbogus = 1\n", "mqtt.bogus", "not a known setting"),
        ("[mqtt]\npassword = 'hunter2'\n", "mqtt.password", "password_file"),
        ("[vendor]\ntoken = 'abc'\n", "vendor.token", "token_file"),
        ("[[printers]]\nuri = 'http://x'\n", "printers.0.uri", "must start with ipp://"),
        ("[mqtt\n", "-", "not valid TOML"),
        ("log_level = 'LOUD'\n", "log_level", "must be one of 'DEBUG'"),
        ("time_zone = 'Mars/Olympus'\n", "time_zone", "unknown time zone 'Mars/Olympus'"),
        ("[[printers]]\nuri = 'ipp://p'\nname = 'a b'\n", "printers.0.name", "letters, digits"),
    ],
)
def test_bad_config_names_file_key_reason(tmp_path: Path, text: str, key: str,
                                          reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.source == str(path)
    assert err.value.key == key
    assert reason in err.value.reason
    assert "hunter2" not in str(err.value)
    assert err.value.exit_code == 2


def test_bad_environment_value_is_attributed(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLENISH_MQTT__PORT", "abc")
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""))
    assert err.value.source == "environment REPLENISH_MQTT__PORT"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_secret_from_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n")
    assert read_secret(Path("mqtt-password"), "mqtt.password_file",
                       env={"CREDENTIALS_DIRECTORY": str(creds)}) == "s3cret"


def test_secret_errors_name_the_key_not_the_value(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(ConfigError) as err:
        read_secret(empty, "vendor.token_file", env={})
    assert err.value.key == "vendor.token_file" and "empty" in err.value.reason
    with pytest.raises(ConfigError, match="not found"):
        read_secret(tmp_path / "missing", "mqtt.password_file", env={})


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    secret = tmp_path / "pw"
    secret.write_text("canary-pw-991")
    path = write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n')
    assert main(["--config", str(path), "check-config", "--show"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "canary-pw-991" not in out
    assert main(["--config", str(write(tmp_path, "[mqtt]\nport = -5\n")), "check-config"]) == 2
    assert "mqtt.port" in capsys.readouterr().err


def test_load_settings_reads_the_environment_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLENISH_MQTT__PORT", "1888")
    assert load_settings(None).mqtt.port == 1888  # the process's own environment
    assert load_settings(None, env={}).mqtt.port == 1883  # not os.environ
    assert load_settings(None, env={"REPLENISH_MQTT__PORT": "1999"}).mqtt.port == 1999
