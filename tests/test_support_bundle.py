"""The support bundle: useful contents, and no canary secret in any encoding."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import stat
import tarfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from agent import logs
from agent.cli.main import main
from agent.config import load_settings
from agent.errors import ConfigError
from agent.ops import doctor
from agent.ops.support_bundle import Sources, database_stats, write_bundle
from agent.storage.store import Rejected, Store

PASSWORD = "Canary/Mqtt+Pw&4711"
TOKEN = "Canary-Vendor-T0ken_0815"
PAYLOAD = "PAYLOAD-CANARY-household-data"


def encodings(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    logs.clear_secrets()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup(tmp_path: Path) -> Path:
    (tmp_path / "mqtt-password").write_text(PASSWORD + "\n")
    (tmp_path / "vendor-token").write_text(TOKEN + "\n")
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.write_batch(
            [Rejected("printer-1", "bad_json", "replenish/v1/devices/printer-1/state",
                      PAYLOAD.encode())],
            received_at=1.0,
        )
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[mqtt]\nport = {closed_port()}\npassword_file = "{tmp_path / "mqtt-password"}"\n'
        f'[vendor]\nbase_url = "http://127.0.0.1:{closed_port()}"\n'
        f'token_file = "{tmp_path / "vendor-token"}"\n'
        f'[storage]\npath = "{db}"\n'
    )
    return cfg


def leaky_journal() -> str:
    """A journal that, against every rule, logged the secrets in several encodings."""
    lines = [f"<4>agent.x: auth with {form}" for s in (PASSWORD, TOKEN) for form in encodings(s)]
    return "\n".join(lines) + "\n"


def sources() -> Sources:
    return Sources(
        journal=leaky_journal,
        probes=doctor.Probes(synchronized=lambda: True, timeout_s=1.0),
        env={},
    )


def read_members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@pytest.mark.timeout(30)
def test_bundle_contents_and_no_canary(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    out = tmp_path / "bundle.tar.gz"
    names = write_bundle(out, lambda: load_settings(cfg), sources())
    assert len(names) == 7
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    plain = gzip.decompress(out.read_bytes()).decode("utf-8", errors="replace")
    for secret in (PASSWORD, TOKEN):
        for form in encodings(secret):
            assert form not in plain, form
    assert PAYLOAD not in plain

    members = read_members(out)
    config = json.loads(members["config.json"])
    assert config["mqtt"]["password_file"].endswith("mqtt-password")
    assert "[REDACTED]" in members["warnings.log"]
    assert json.loads(members["doctor.json"])["exit_code"] == 3  # broker and vendor down
    assert "FAIL  broker" in members["doctor.txt"]
    versions = json.loads(members["versions.json"])
    assert versions["packages"]["paho-mqtt"]
    db = json.loads(members["database.json"])
    assert db["tables"]["rejects"]["rows"] == 1
    assert db["tables"]["readings_main"]["rows"] == 0


def test_database_stats_counts_rows_and_sizes(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    stats = database_stats(load_settings(cfg).storage.path)
    assert set(stats["tables"]) >= {"devices", "readings_main", "readings_recent", "rejects",
                                    "consumables"}
    assert stats["tables"]["rejects"] == {
        "rows": 1,
        "bytes": stats["tables"]["rejects"]["bytes"],
    }
    assert stats["file_bytes"]["db"] > 0
    assert database_stats(tmp_path / "missing.db")["error"] == "database does not exist"


def test_bundle_written_even_with_broken_config(tmp_path: Path) -> None:
    def loader() -> object:
        raise ConfigError("agent.toml", "mqtt.port", "Input should be less than 65536")

    out = tmp_path / "b.tar.gz"
    write_bundle(out, loader, sources())  # type: ignore[arg-type]
    members = read_members(out)
    assert "mqtt.port" in json.loads(members["config.json"])["error"]
    assert "database.json" not in members


@pytest.mark.timeout(30)
def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = setup(tmp_path)
    out = tmp_path / "cli.tar.gz"
    assert main(["--config", str(cfg), "support-bundle", str(out), "--timeout", "1"]) == 0
    assert "doctor.txt" in capsys.readouterr().out
    plain = gzip.decompress(out.read_bytes()).decode("utf-8", errors="replace")
    assert PASSWORD not in plain and TOKEN not in plain
    assert main(["--config", str(cfg), "support-bundle", str(tmp_path / "no" / "x.tgz")]) == 1
