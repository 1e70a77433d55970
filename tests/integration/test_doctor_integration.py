"""`replenish doctor` against a real Mosquitto, the real vendor sandbox and real SQLite files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from agent.cli.main import main
from agent.config import Settings, load_settings
from agent.ops import doctor
from agent.ops.doctor import Level, Probes
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from firmware_sim.vendor import VendorSandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

VENDOR_TOKEN = "doctor-vendor-token-123"


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=VENDOR_TOKEN) as running:
        yield running


def setup(
    tmp_path: Path,
    broker: LocalBroker,
    vendor_url: str,
    *,
    password: str | None = None,
    token: str = VENDOR_TOKEN,
    port: int | None = None,
    tls_ca: Path | None = None,
) -> Path:
    """A config, secret files and a database with one freshly seen device."""
    (tmp_path / "mqtt-password").write_text((password or broker.passwords["agent"]) + "\n")
    (tmp_path / "vendor-token").write_text(token + "\n")
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.conn.execute(
            "INSERT OR REPLACE INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
            "VALUES ('fridge-1', 'fridge', ?, ?, 1)",
            (time.time() - 3600, time.time() - 60),
        )
    tls = f'tls_ca_file = "{tls_ca}"\n' if tls_ca else ""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[mqtt]\nhost = "{broker.host}"\nport = {port or broker.port}\nusername = "agent"\n'
        f'password_file = "mqtt-password"\n{tls}'
        f'[vendor]\nbase_url = "{vendor_url}"\ntoken_file = "vendor-token"\ntest_mode = true\n'
        f'[storage]\npath = "{db}"\n'
    )
    return cfg


def run(cfg: Path, tmp_path: Path, **probe_args: object) -> dict[str, doctor.CheckResult]:
    # Bare secret names resolve through the credentials directory, as under systemd.
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    probes = Probes(synchronized=lambda: True, timeout_s=3.0, **probe_args)  # type: ignore[arg-type]

    def loader() -> Settings:
        return load_settings(cfg, env={})

    results = doctor.run_checks(loader, probes, env=env)
    return {r.name: r for r in results}


def test_healthy_setup_is_all_ok(
    tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox
) -> None:
    results = run(setup(tmp_path, broker, sandbox.url), tmp_path)
    assert {name: r.level for name, r in results.items()} == {
        name: Level.OK
        for name in ("config", "broker", "vendor", "database", "clock", "disk", "storage",
                     "progress", "devices", "alerts", "orders", "sources")
    }, doctor.render_text(list(results.values()))
    assert doctor.exit_code(list(results.values())) == 0
    assert "test mode" in results["vendor"].summary
    # Doctor places no order and leaves no session behind.
    assert sandbox.orders() == []


def test_broker_down(tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox) -> None:
    cfg = setup(tmp_path, broker, sandbox.url)
    broker.stop()
    result = run(cfg, tmp_path)["broker"]
    assert result.level is Level.FAIL
    assert "unreachable" in result.summary and "mosquitto" in result.fix


def test_wrong_password_is_told_apart_from_unreachable(
    tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox
) -> None:
    result = run(setup(tmp_path, broker, sandbox.url, password="wrong-password"), tmp_path)
    broker_result = result["broker"]
    assert broker_result.level is Level.FAIL
    assert "authentication refused" in broker_result.summary
    assert "wrong-password" not in broker_result.summary + broker_result.fix


def test_vendor_down(tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox) -> None:
    cfg = setup(tmp_path, broker, sandbox.url)
    sandbox.stop()
    result = run(cfg, tmp_path)["vendor"]
    assert result.level is Level.FAIL and "unreachable" in result.summary


def test_vendor_token_refused(
    tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox
) -> None:
    result = run(setup(tmp_path, broker, sandbox.url, token="revoked-token"), tmp_path)["vendor"]
    assert result.level is Level.FAIL and "token refused (HTTP 401)" in result.summary


def test_corrupted_database(tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox) -> None:
    cfg = setup(tmp_path, broker, sandbox.url)
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
            "VALUES (?, 'fridge', 1, 1, 1)",
            [(f"dev-{i}",) for i in range(400)],
        )
        store.conn.execute("COMMIT")
    data = bytearray(db.read_bytes())
    data[4096:3 * 4096] = bytes(range(256)) * 32
    db.write_bytes(bytes(data))
    results = run(cfg, tmp_path)
    assert results["database"].level is Level.FAIL
    assert doctor.exit_code(list(results.values())) == 3


def test_clock_in_the_past(tmp_path: Path, broker: LocalBroker, sandbox: VendorSandbox) -> None:
    cfg = setup(tmp_path, broker, sandbox.url)
    results = run(cfg, tmp_path, clock=lambda: 1_000_000.0)  # 1970-01-12: no RTC, no NTP
    assert results["clock"].level is Level.FAIL
    assert "must not order" in results["clock"].fix
    assert doctor.exit_code(list(results.values())) == 3


def test_tls_broker_ok_and_wrong_ca(tmp_path: Path) -> None:
    with (
        LocalBroker(tmp_path / "tls-broker", tls=True) as broker,
        VendorSandbox(token=VENDOR_TOKEN) as sandbox,
    ):
        assert broker.tls_port and broker.ca_file
        good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
        good_dir.mkdir()
        bad_dir.mkdir()
        good = setup(good_dir, broker, sandbox.url, port=broker.tls_port, tls_ca=broker.ca_file)
        assert run(good, good_dir)["broker"].level is Level.OK
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        bad = setup(bad_dir, broker, sandbox.url, port=broker.tls_port, tls_ca=other_ca)
        result = run(bad, bad_dir)["broker"]
        assert result.level is Level.FAIL and "TLS handshake failed" in result.summary


def test_cli_exit_code_and_json(
    tmp_path: Path,
    broker: LocalBroker,
    sandbox: VendorSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = setup(tmp_path, broker, sandbox.url)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    # The test machine's clock discipline is not under test here.
    monkeypatch.setattr(doctor, "clock_synchronized", lambda: True)
    code = main(["--config", str(cfg), "doctor", "--json", "--timeout", "3"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["result"] == "ok"
    text = json.dumps(report)
    assert broker.passwords["agent"] not in text and VENDOR_TOKEN not in text
    monkeypatch.setattr(doctor, "clock_synchronized", lambda: False)
    assert main(["--config", str(cfg), "doctor", "--timeout", "3"]) == 1
    assert "WARN  clock" in capsys.readouterr().out
    broker.stop()
    assert main(["--config", str(cfg), "doctor", "--timeout", "3"]) == 3
    assert "FAIL  broker" in capsys.readouterr().out
