"""Doctor checks against real SQLite files, a real closed port and httpx.MockTransport."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from agent.cli.main import main
from agent.config import AlertSettings, Settings, VendorSettings, load_settings
from agent.errors import ConfigError
from agent.ops import doctor, systemd
from agent.ops.doctor import CheckResult, DiskUsage, Level, Probes
from agent.storage.store import Store

NOW = doctor.RELEASE_NOT_BEFORE + 30 * 86_400
MB = 1024 * 1024


def probes(now: float = NOW, synced: bool | None = True, free: int = 10_000 * MB) -> Probes:
    return Probes(
        clock=lambda: now,
        synchronized=lambda: synced,
        disk_usage=lambda _p: DiskUsage(100_000 * MB, 100_000 * MB - free, free),
        timeout_s=2.0,
    )


def make_db(path: Path, devices: dict[str, float] | None = None) -> Path:
    with Store(path) as store:
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
            "VALUES (?, 'fridge', ?, ?, 1)",
            [(d, seen, seen) for d, seen in (devices or {}).items()],
        )
        store.conn.execute("COMMIT")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- database ----------------------------------------------------------------------


def test_database_healthy(tmp_path: Path) -> None:
    result = doctor.check_database(make_db(tmp_path / "agent.db"))
    assert result.level is Level.OK
    assert "integrity ok" in result.summary


def test_database_missing_is_a_warning_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    assert doctor.check_database(path).level is Level.WARN
    assert not path.exists()


def test_database_corrupted(tmp_path: Path) -> None:
    path = make_db(tmp_path / "agent.db", {f"dev-{i}": NOW for i in range(500)})
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096 + 100 : 3 * 4096] = b"\xff" * (2 * 4096 - 100)
    path.write_bytes(bytes(data))
    result = doctor.check_database(path)
    assert result.level is Level.FAIL
    assert "restore the last backup" in result.fix


def test_database_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(b"this is not a database" * 100)
    result = doctor.check_database(path)
    assert result.level is Level.FAIL and "unreadable" in result.summary


def test_database_newer_schema_fails(tmp_path: Path) -> None:
    path = make_db(tmp_path / "agent.db")
    with Store(path) as store:
        store.conn.execute("PRAGMA user_version = 999")
    assert doctor.check_database(path).level is Level.FAIL


# ---- clock -------------------------------------------------------------------------


def test_clock_ok_when_synchronised(tmp_path: Path) -> None:
    assert doctor.check_clock(make_db(tmp_path / "a.db"), probes()).level is Level.OK


def test_clock_before_release_fails() -> None:
    result = doctor.check_clock(None, probes(now=86_400.0))  # 1970: booted without RTC
    assert result.level is Level.FAIL
    assert "must not order" in result.fix


def test_clock_before_newest_reading_fails(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db", {"fridge-1": NOW + 3600})
    result = doctor.check_clock(db, probes(now=NOW))
    assert result.level is Level.FAIL and "went backwards" in result.fix
    # Within the tolerance it is fine.
    assert doctor.check_clock(db, probes(now=NOW + 3500)).level is Level.OK


def test_clock_unsynchronised_or_unknown_warns() -> None:
    assert doctor.check_clock(None, probes(synced=False)).level is Level.WARN
    assert doctor.check_clock(None, probes(synced=None)).level is Level.WARN


# ---- disk and devices --------------------------------------------------------------


@pytest.mark.parametrize(
    ("free", "level"), [(10_000 * MB, Level.OK), (150 * MB, Level.WARN), (10 * MB, Level.FAIL)]
)
def test_disk_thresholds(tmp_path: Path, free: int, level: Level) -> None:
    seen: list[Path] = []
    p = probes(free=free)
    usage = p.disk_usage
    p.disk_usage = lambda path: seen.append(path) or usage(path)
    assert doctor.check_disk(tmp_path / "missing" / "agent.db", p).level is level
    assert seen == [tmp_path]  # the nearest existing directory


def test_devices_fresh_and_silent(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db", {"fridge-1": NOW - 600, "printer-1": NOW - 5 * 86_400})
    result = doctor.check_devices(db, probes())
    assert result.level is Level.WARN
    assert "printer-1" in result.summary and "fridge-1" not in result.summary
    assert result.details == (
        "fridge-1: last reading 10 min ago (" + doctor._iso(NOW - 600) + ")",
        "printer-1: last reading 5 d ago (" + doctor._iso(NOW - 5 * 86_400) + ")",
    )
    fresh = make_db(tmp_path / "b.db", {"fridge-1": NOW - 60})
    assert doctor.check_devices(fresh, probes()).level is Level.OK


def test_devices_none_yet(tmp_path: Path) -> None:
    assert doctor.check_devices(make_db(tmp_path / "a.db"), probes()).level is Level.WARN


# ---- vendor ------------------------------------------------------------------------


def vendor_with(handler: Callable[[httpx.Request], httpx.Response]) -> CheckResult:
    settings = VendorSettings(base_url="http://vendor.test")
    return doctor.check_vendor(settings, "tok-123456", 2.0, httpx.MockTransport(handler))


def test_vendor_ok_sends_token_in_header_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"orders": []})

    result = vendor_with(handler)
    assert result.level is Level.OK, result
    assert seen[0].headers["Authorization"] == "Bearer tok-123456"
    assert "tok-123456" not in str(seen[0].url)


@pytest.mark.parametrize(
    ("status", "level", "words"),
    [
        (401, Level.FAIL, "token refused"),
        (403, Level.FAIL, "token refused"),
        (404, Level.FAIL, "unexpected answer"),
        (503, Level.FAIL, "vendor error"),
        (429, Level.WARN, "rate limited"),
    ],
)
def test_vendor_http_errors(status: int, level: Level, words: str) -> None:
    result = vendor_with(lambda r: httpx.Response(status, json={"error": "x"}))
    assert result.level is level and words in result.summary


def test_vendor_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = vendor_with(handler)
    assert result.level is Level.FAIL and "unreachable" in result.summary


def test_vendor_without_token_warns() -> None:
    assert doctor.check_vendor(VendorSettings(), None, 1.0).level is Level.WARN


# ---- config, broker, whole run -----------------------------------------------------


def write_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    (tmp_path / "mqtt-password").write_text("pw-123456\n")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[mqtt]\nport = {port}\npassword_file = "{tmp_path / "mqtt-password"}"\n'
        f'[storage]\npath = "{tmp_path / "agent.db"}"\n{extra}'
    )
    return cfg


def test_broker_unreachable_on_closed_port() -> None:
    settings = Settings().mqtt.model_copy(update={"port": closed_port()})
    result = doctor.check_broker(settings, "pw", 2.0)
    assert result.level is Level.FAIL and "unreachable" in result.summary


def test_invalid_config_fails_and_skips_the_rest(tmp_path: Path) -> None:
    def loader() -> Settings:
        raise ConfigError("agent.toml", "mqtt.port", "Input should be less than 65536")

    results = doctor.run_checks(loader, probes())
    assert [r.name for r in results] == ["config", "clock"]
    assert results[0].level is Level.FAIL and "mqtt.port" in results[0].summary
    assert doctor.exit_code(results) == 3


def test_missing_secret_file_fails(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 1883, '[vendor]\ntoken_file = "vendor-token"\n')
    result, loaded = doctor.check_config(lambda: load_settings(cfg), env={})
    assert result.level is Level.FAIL
    assert any("vendor.token_file" in d for d in result.details)
    assert loaded.mqtt_password == "pw-123456" and loaded.vendor_token is None


def test_secret_found_in_credstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "credstore"
    store.mkdir()
    (store / "replenish-agent-vendor-token").write_text("tok-from-store\n")
    monkeypatch.setattr(systemd, "CREDSTORE_DIRS", (store,))
    monkeypatch.setattr(systemd, "SERVICE_CREDENTIALS", tmp_path / "no-such-dir")
    cfg = write_config(tmp_path, 1883, '[vendor]\ntoken_file = "vendor-token"\n')
    result, loaded = doctor.check_config(lambda: load_settings(cfg), env={})
    assert result.level is Level.OK, result
    assert loaded.vendor_token == "tok-from-store"


def test_exit_codes_and_rendering() -> None:
    ok = CheckResult("a", Level.OK, "fine")
    warn = CheckResult("b", Level.WARN, "hmm", "do this")
    fail = CheckResult("c", Level.FAIL, "bad", "do that", ("detail",))
    assert doctor.exit_code([ok]) == 0
    assert doctor.exit_code([ok, warn]) == 1
    assert doctor.exit_code([warn, fail, ok]) == 3
    text = doctor.render_text([ok, warn, fail])
    assert text.splitlines() == [
        "OK    a         fine",
        "WARN  b         hmm",
        "                fix: do this",
        "FAIL  c         bad",
        "                detail",
        "                fix: do that",
        "failures (exit 3)",
    ]
    assert doctor.as_json([ok, warn])["result"] == "warn"


@pytest.mark.timeout(30)
def test_cli_json_reports_broken_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, closed_port())
    make_db(tmp_path / "agent.db")
    code = main(["--config", str(cfg), "doctor", "--json", "--timeout", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3 == report["exit_code"]
    levels = {c["name"]: c["level"] for c in report["checks"]}
    assert levels["config"] == "OK"
    assert levels["broker"] == "FAIL"
    assert levels["database"] == "OK"
    assert "pw-123456" not in json.dumps(report)



def test_database_permission_denied_is_not_called_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root can read everything, so the unprivileged view is simulated at the one seam.
    path = tmp_path / "agent.db"
    path.write_bytes(b"")
    monkeypatch.setattr(doctor, "open_readonly", _refuse_open)
    monkeypatch.setattr(doctor.os, "access", lambda *_a: False)
    result = doctor.check_database(path)
    assert result.level is Level.WARN and "sudo" in result.fix


def _refuse_open(path: Path) -> None:
    raise sqlite3.OperationalError("unable to open database file")


def _alert_db(path: Path, rows: str) -> Path:
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(rows)
    conn.close()
    return path


def test_alerts_warn_when_devices_send_falls_nobody_is_told_about(tmp_path: Path) -> None:
    db = _alert_db(tmp_path / "agent.db",
                   "INSERT INTO events VALUES ('watch-1', 1, 0, 'fall_alert', NULL, 0);")
    result = doctor.check_alerts(AlertSettings(), db, Probes(clock=lambda: 10.0))
    assert result.level is Level.WARN
    assert "fall_alert" in result.summary and "docs/alerts.md" in result.fix


def test_alerts_warn_on_failing_channels_and_fail_on_missing_channel_files(
    tmp_path: Path,
) -> None:
    db = _alert_db(tmp_path / "agent.db",
                   "INSERT INTO alerts VALUES (1, 'watch-1', 'fall_alert', 0, 0, 1, NULL, NULL);"
                   "INSERT INTO alert_sends VALUES (1, 1, 'anna', 100, 0, 'timeout');")
    url = tmp_path / "anna-url"
    url.write_text("json://127.0.0.1:9/x\n")
    good = AlertSettings.model_validate({"contacts": [{"name": "anna", "url_file": url}],
                                         "rules": [{"event": "fall_alert",
                                                    "contacts": ["anna"]}]})
    warn = doctor.check_alerts(good, db, Probes(clock=lambda: 200.0))
    assert warn.level is Level.WARN and "anna: 1 failed" in warn.details[0]
    gone = AlertSettings.model_validate({"contacts": [{"name": "anna",
                                                       "url_file": tmp_path / "nope"}]})
    assert doctor.check_alerts(gone, db, Probes(clock=lambda: 200.0)).level is Level.FAIL
