"""Urgent alerts end to end: a wearable's fall reaches caregivers through the real agent.

Real Mosquitto from ``broker_config/``, the real ``replenish run``, and two local
channels: anna's webhook (Apprise ``json://``) and ben's mailbox (a local SMTP server
from aiosmtpd, Apprise ``mailto://``), so the whole path runs: device event -> ingest
commit -> alert queue -> ``apprise`` -> endpoint.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from firmware_sim.broker import LocalBroker, free_port
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.conftest import Session
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DEVICE = "watch-1"


class Endpoint:
    """A caregiver's webhook: records what arrives; ``up=False`` answers 503."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.up = True
        self.received: list[dict[str, object]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if endpoint.up:
                    endpoint.received.append(json.loads(body))
                self.send_response(200 if endpoint.up else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/{self.name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailEndpoint:
    """A caregiver's mailbox: a local SMTP server (aiosmtpd); Apprise ``mailto://``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.up = True
        self.received: list[dict[str, object]] = []
        endpoint = self

        class Handler:
            async def handle_DATA(self, server: object, session: object,  # noqa: N802
                                  envelope: Envelope) -> str:
                mail = message_from_bytes(bytes(envelope.content or b""), policy=default)
                body = mail.get_body()
                endpoint.received.append({"title": str(mail["Subject"]),
                                          "message": body.get_content() if body else "",
                                          "to": str(mail["To"])})
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=agent@home.test"
                f"&to={self.name}@care.test&mode=insecure")

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def endpoints() -> Iterator[dict[str, Endpoint | MailEndpoint]]:
    made: dict[str, Endpoint | MailEndpoint] = {"anna": Endpoint("anna"),
                                                "ben": MailEndpoint("ben")}
    yield made
    for endpoint in made.values():
        endpoint.close()


@pytest.fixture
def alert_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path / "broker", users={DEVICE: "watch-pw"}) as broker:
        yield broker


@pytest.fixture
def agent_config(tmp_path: Path, alert_broker: LocalBroker,
                 endpoints: dict[str, Endpoint | MailEndpoint]) -> Path:
    work = tmp_path / "agent"
    work.mkdir()
    contacts = ""
    for name, endpoint in endpoints.items():
        (work / f"alert-{name}").write_text(endpoint.url + "\n")
        contacts += (f'[[alerts.contacts]]\nname = "{name}"\n'
                     f'url_file = "{work / f"alert-{name}"}"\n')
    return write_agent_config(work, alert_broker, extra=f"""
[alerts]
household_label = "Flat 3"
interval_s = 0.5
{contacts}
[[alerts.rules]]
event = "fall_alert"
contacts = ["anna", "ben"]
renotify_after_min = 0.1
escalate_after_min = 0.15
""")


def _fall(device: Session, seq: int) -> None:
    event = {"device_id": DEVICE, "seq": seq, "ts": datetime.now(UTC).isoformat(),
             "type": "fall_alert"}
    assert device.publish(f"replenish/v1/devices/{DEVICE}/events",
                          json.dumps(event).encode()) in (0, 16)


def _alerts(config: Path) -> list[tuple[int, str | None]]:
    conn = sqlite3.connect(config.parent / "agent.db")
    try:
        return list(conn.execute("SELECT id, acked_by FROM alerts ORDER BY id"))
    finally:
        conn.close()


def test_a_fall_reaches_the_first_caregiver_escalates_and_stops_on_ack(
    agent_config: Path, alert_broker: LocalBroker, endpoints: dict[str, Endpoint | MailEndpoint],
    sessions: Callable[..., Session],
) -> None:
    anna, ben = endpoints["anna"], endpoints["ben"]
    device = sessions(alert_broker, DEVICE)
    household = sessions(alert_broker, "household")
    assert device.connect() == 0 and household.connect() == 0
    assert household.subscribe("replenish/v1/household/#") in (0, 1)
    with AgentProcess(agent_config):
        _fall(device, 1)
        wait_until(lambda: bool(anna.received), timeout=20, what=lambda: anna.received)
        message = anna.received[0]
        assert "Fall alert: Flat 3" in str(message["title"])
        assert DEVICE in str(message["message"])
        assert ben.received == []
        # Nobody acknowledges: anna is told again, then ben joins.
        wait_until(lambda: len(anna.received) >= 2 and bool(ben.received),
                   timeout=30, what=lambda: (len(anna.received), len(ben.received)))
        (alert_id, _), = _alerts(agent_config)
        assert household.publish("replenish/v1/household/commands/ack",
                                 json.dumps({"ref": f"a{alert_id}",
                                             "source": "phone"}).encode()) in (0, 16)
        wait_until(lambda: _alerts(agent_config)[0][1] == "mqtt:phone", timeout=15)
        counts = (len(anna.received), len(ben.received))
        # A later fall is a new alert; once it reached anna, the first alert had every
        # chance to be re-sent too: it was not.
        _fall(device, 2)
        wait_until(lambda: len(anna.received) > counts[0], timeout=20)
        assert len(ben.received) == counts[1]
    events = [json.loads(p) for t, p in household.messages
              if t == "replenish/v1/household/events"]
    assert any(e["kind"] == "alert" and e["ref"] == f"a{alert_id}" for e in events)
    assert any(t == "replenish/v1/household/alerts" for t, _ in household.messages)


def test_an_alert_survives_sigkill_and_an_outage_and_goes_out_after(
    agent_config: Path, alert_broker: LocalBroker, endpoints: dict[str, Endpoint | MailEndpoint],
    sessions: Callable[..., Session],
) -> None:
    anna = endpoints["anna"]
    anna.up = False  # the network to the caregiver is down
    device = sessions(alert_broker, DEVICE)
    assert device.connect() == 0
    agent = AgentProcess(agent_config).start()
    try:
        _fall(device, 1)
        # Positive marker: the alert is queued and a send was tried and failed.
        wait_until(lambda: "alert.send_failed" in agent.log(), timeout=30, what=agent.log)
        agent.kill()
        assert anna.received == []
        anna.up = True
        agent.start()
        wait_until(lambda: bool(anna.received), timeout=30, what=agent.log)
    finally:
        agent.stop()
    assert len(_alerts(agent_config)) == 1
    assert DEVICE in str(anna.received[0]["message"])


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "--config", str(config),
                           "alerts", *args], capture_output=True, text=True, timeout=90)


def test_the_test_command_checks_every_channel_through_the_running_agent(
    agent_config: Path, endpoints: dict[str, Endpoint | MailEndpoint],
) -> None:
    with AgentProcess(agent_config):
        done = _cli(agent_config, "test", "--wait", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "delivered to anna, ben" in done.stdout
    for endpoint in endpoints.values():
        assert [m["title"] for m in endpoint.received] == ["Test alert: Flat 3"]
    listed = json.loads(_cli(agent_config, "list", "--json").stdout)
    assert listed[0]["type"] == "test" and listed[0]["sent"] == 2
    assert listed[0]["acknowledged_by"] == "agent:test-complete"


def test_ack_from_the_cli_and_an_unknown_alert_is_a_clean_error(
    agent_config: Path, alert_broker: LocalBroker, endpoints: dict[str, Endpoint | MailEndpoint],
    sessions: Callable[..., Session],
) -> None:
    device = sessions(alert_broker, DEVICE)
    assert device.connect() == 0
    with AgentProcess(agent_config):
        _fall(device, 1)
        wait_until(lambda: bool(endpoints["anna"].received), timeout=20)
    (alert_id, _), = _alerts(agent_config)
    done = _cli(agent_config, "ack", str(alert_id), "--by", "anna")
    assert done.returncode == 0 and "acknowledged by anna" in done.stdout
    missing = _cli(agent_config, "ack", "999")
    assert missing.returncode != 0 and "no alert 999" in missing.stderr
    assert "Traceback" not in missing.stderr
