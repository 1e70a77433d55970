"""The first day on a gateway: no settings file, no database yet, and the CLI's edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main as cli_main
from agent.cli.main import main
from tests.test_household_cli import seed_consumables


def run(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings file anywhere; the database path points into tmp_path (not /var/lib)."""
    monkeypatch.delenv("REPLENISH_CONFIG", raising=False)
    monkeypatch.setattr(cli_main, "DEFAULT_CONFIG_PATH", tmp_path / "etc/agent.toml")
    db = tmp_path / "state/agent.db"
    monkeypatch.setenv("REPLENISH_STORAGE__PATH", str(db))
    return db


@pytest.mark.parametrize("argv", [
    ["status"], ["status", "--json"], ["orders"], ["orders", "list", "--all"],
    ["orders", "reminders"], ["audit", "show"], ["audit", "verify"], ["consent", "show"],
    ["away", "list"],
])
def test_read_only_commands_never_create_the_database(
    no_config: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run(*argv) == 1
    err = capsys.readouterr().err
    assert f"no database at {no_config} yet" in err and "Traceback" not in err
    assert not no_config.exists() and not no_config.parent.exists()


def test_without_a_settings_file_every_command_says_so_once(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("status")
    err = capsys.readouterr().err
    assert err.count("no settings file") == 1
    assert "using the defaults" in err and str(no_config) in err and "127.0.0.1:1883" in err


def test_check_config_without_a_file_is_not_a_silent_ok(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("check-config") == 0
    io = capsys.readouterr()
    assert "<defaults>: OK" not in io.out
    assert "no settings file" in io.out and "no settings file" in io.err


def test_a_config_file_means_no_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "a.db"}"\n')
    assert run("--config", str(config), "check-config") == 0
    io = capsys.readouterr()
    assert io.out.strip() == f"{config}: OK" and io.err == ""


def test_orders_json_where_the_readme_puts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "a.db"}"\n')
    seed_consumables(tmp_path / "a.db")
    for argv in (["orders", "--json"], ["orders", "list", "--json"], ["orders", "--json", "list"],
                 ["orders", "reminders", "--json"]):
        assert run("--config", str(config), *argv) == 0, argv
        assert json.loads(capsys.readouterr().out) == [], argv


def test_a_wrong_flag_shows_the_subcommands_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--config", "/dev/null", "consent", "set", "a/b", "confirm", "--bogus") == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: replenish consent set") and "--bogus" in err
    assert run("--config", "/dev/null", "orders", "list", "--nope") == 2
    assert capsys.readouterr().err.startswith("usage: replenish orders list")


def test_printers_add_explains_a_bad_uri_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--config", "/dev/null", "printers", "add", "http://foo") == 2
    err = capsys.readouterr().err
    assert "must start with ipp:// or ipps://" in err
    assert "pattern" not in err and "^ipps" not in err


def test_doctor_prints_no_raw_vendor_call_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("doctor-token-1")
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "a.db"}"\n[vendor]\n'
                      f'base_url = "http://127.0.0.1:9"\ntoken_file = "{tmp_path / "token"}"\n'
                      "timeout_s = 0.5\ndeadline_s = 1.0\n[mqtt]\nport = 9\n")
    run("--config", str(config), "doctor")
    io = capsys.readouterr()
    assert "vendor" in io.out  # doctor reports the vendor check itself ...
    assert "vendor.call" not in io.err and "vendor.call" not in io.out  # ... once


def test_cli_warnings_are_event_lines_and_logging_is_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from agent.cli.main import cli_logging

    before = logging.getLogger().level, len(logging.getLogger().handlers)
    restore = cli_logging()
    logging.getLogger("agent.test").warning("thing.failed reason=%s", "x")
    logging.getLogger("agent.test").info("thing.fine")
    logging.getLogger("agent.vendor.client").warning("vendor.call outcome=retryable")
    restore()
    assert capsys.readouterr().err == "replenish: WARNING thing.failed reason=x\n"
    assert (logging.getLogger().level, len(logging.getLogger().handlers)) == before


def test_readme_lists_every_household_command() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for needle in ("`replenish orders reminders", "`replenish device init\\|add\\|remove\\|list "
                   "[--json]`", "--stop-service"):
        assert needle in readme, needle
