"""The gateway-to-vendor bridge carries orders and health, never telemetry or secrets.

Two real Mosquitto instances: the household broker from ``broker_config/`` with the
bridge section rendered from ``bridge.conf.template``, and a "vendor cloud" broker
(TLS, the gateway authenticated by a client certificate whose CN is its id, an ACL
that lets it write only ``gateways/<id>/#``). A vendor operator subscribed to ``#``
and ``$SYS/#`` sees everything that crosses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.ops.bridge import BridgeSettings, render_bridge_conf
from firmware_sim.broker import LocalBroker
from firmware_sim.vendor import VendorSandbox
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.conftest import Session
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

GATEWAY = "gw-7"
REMOTE = f"gateways/{GATEWAY}/"


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[LocalBroker]:
    acl = (f"user {GATEWAY}\ntopic write {REMOTE}#\n"
           "user vendor-ops\ntopic read #\ntopic read $SYS/#\n")
    with LocalBroker(tmp_path / "vendor", users={"vendor-ops": "ops-pw"}, tls=True,
                     extra_acl=acl) as broker:
        yield broker


@pytest.fixture
def house(tmp_path: Path, vendor: LocalBroker) -> Iterator[LocalBroker]:
    cert, key = vendor.make_client_cert(GATEWAY)
    assert vendor.ca_file is not None and vendor.cert_port is not None
    conf = render_bridge_conf(BridgeSettings(
        gateway_id=GATEWAY, vendor_host="127.0.0.1", vendor_port=vendor.cert_port,
        vendor_ca_file=vendor.ca_file, cert_file=cert, key_file=key,
        restart_min_s=1, restart_max_s=2,
    ))
    users = {"printer-1": f"pw-{uuid.uuid4().hex}"}
    with LocalBroker(tmp_path / "house", users=users, extra_conf=conf) as broker:
        yield broker


def _ops(vendor: LocalBroker, make: Callable[..., Session]) -> Session:
    """The vendor operator: a persistent session that sees every topic."""
    ops = make(vendor, "vendor-ops", client_id="vendor-ops", clean_start=False,
               session_expiry=3600)
    assert ops.connect() == 0
    assert ops.subscribe("#") in (0, 1)
    assert ops.subscribe("$SYS/#") in (0, 1)
    return ops


def _bridge_up(ops: Session) -> bool:
    return (f"{REMOTE}bridge/state", b"1") in ops.messages


def _crossed(ops: Session) -> list[tuple[str, bytes]]:
    return [(t, p) for t, p in ops.messages if not t.startswith("$SYS/")]


def test_only_orders_and_health_cross(
    house: LocalBroker, vendor: LocalBroker, sessions: Callable[..., Session]
) -> None:
    ops = _ops(vendor, sessions)
    wait_until(lambda: _bridge_up(ops), timeout=20, what=lambda: ops.messages[-5:])
    agent = sessions(house, "agent")
    device = sessions(house, "printer-1")
    household = sessions(house, "household")
    for session in (agent, device, household):
        assert session.connect() == 0

    canary = f"CANARY-{uuid.uuid4().hex}"
    secrets = [pw for pw in house.passwords.values()]
    # Everything a gateway has that must stay home, each carrying the canary.
    reading = {"device_id": "printer-1", "seq": 1, "ts": "2026-12-01T08:00:00Z",
               "kind": "printer", "consumables": [
                   {"id": "black", "level": 42, "unit": "percent", "sku": canary}]}
    assert device.publish("replenish/v1/devices/printer-1/state",
                          json.dumps(reading).encode()) in (0, 16)
    assert device.publish("replenish/v1/devices/printer-1/status",
                          canary.encode()) in (0, 16)
    assert household.publish("replenish/v1/household/commands/approve",
                             json.dumps({"ref": canary}).encode()) in (0, 16)
    for topic in ("replenish/v1/household/consumables/printer-1/black",
                  "replenish/v1/household/events",
                  "homeassistant/sensor/x/config",
                  # fleet topics outside the allow list stay home too
                  "replenish/v1/fleet/readings",
                  "replenish/v1/fleet/health/detail"):
        assert agent.publish(topic, canary.encode()) in (0, 16)
    # What may leave: an order and the agent's health.
    order = {"intent": 12, "state": "placed", "sku": "TONER-1", "quantity": 1}
    assert agent.publish("replenish/v1/fleet/orders/12", json.dumps(order).encode()) in (0, 16)
    assert agent.publish("replenish/v1/fleet/health", b'{"ready": true}') in (0, 16)
    # A last order after all the rest: once it crossed, everything before it had its turn.
    assert agent.publish("replenish/v1/fleet/orders/13", b'{"intent": 13}') in (0, 16)

    wait_until(lambda: (f"{REMOTE}orders/13", b'{"intent": 13}') in ops.messages, timeout=20)
    topics = {t for t, _ in _crossed(ops)}
    assert topics == {f"{REMOTE}bridge/state", f"{REMOTE}orders/12", f"{REMOTE}orders/13",
                      f"{REMOTE}health"}
    assert json.loads(dict(_crossed(ops))[f"{REMOTE}orders/12"]) == order
    everything = b"".join(t.encode() + p for t, p in ops.messages)
    assert canary.encode() not in everything
    for secret in secrets:
        assert secret.encode() not in everything
    telemetry = [t for t, _ in ops.messages if "devices" in t or "household" in t]
    assert telemetry == []


def test_orders_queue_while_the_link_is_down_and_resume(
    house: LocalBroker, vendor: LocalBroker, sessions: Callable[..., Session]
) -> None:
    ops = _ops(vendor, sessions)
    wait_until(lambda: _bridge_up(ops), timeout=20, what=lambda: ops.messages[-5:])
    ops.close()
    vendor.stop()
    agent = sessions(house, "agent")
    assert agent.connect() == 0
    sent = [f"{REMOTE}orders/{i}" for i in range(20, 25)]
    for i in range(20, 25):
        assert agent.publish(f"replenish/v1/fleet/orders/{i}", b"{}") in (0, 16)

    vendor.start()  # same ports, persisted sessions
    back = _ops(vendor, sessions)
    wait_until(lambda: all(any(t == s for t, _ in back.messages) for s in sent),
               timeout=30, what=lambda: [t for t, _ in back.messages if "orders" in t])
    orders = [t for t, _ in back.messages if "/orders/" in t]
    assert sorted(set(orders)) == sorted(sent)


def _replenish(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "agent.cli.main", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _knows(config: Path, consumable: str) -> bool:
    status = json.loads(_replenish(config, "status", "--json").stdout)
    return any(f"{c['device_id']}/{c['consumable_id']}" == consumable
               for c in status.get("consumables", []))


def test_the_agents_own_orders_and_health_cross_and_its_telemetry_does_not(
    house: LocalBroker, vendor: LocalBroker, sessions: Callable[..., Session], tmp_path: Path
) -> None:
    """The real ``replenish run`` on the household broker: its fleet publications cross
    the bridge, the readings, dashboards and discovery it also handles do not."""
    ops = _ops(vendor, sessions)
    wait_until(lambda: _bridge_up(ops), 20, lambda: ops.messages[-5:])
    canary = f"CANARY-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    with VendorSandbox(token=token) as sandbox:
        (tmp_path / "agent").mkdir()
        (tmp_path / "agent" / "vendor-token").write_text(token)
        config = write_agent_config(tmp_path / "agent", house, extra=f"""
[vendor]
base_url = "{sandbox.url}"
token_file = "{tmp_path / 'agent' / 'vendor-token'}"
dispatch_interval_s = 0.5
pre_notice_h = 0
require_synced_clock = false
[forecast]
interval_s = 10
[household]
homeassistant = true
sync_interval_s = 0.5
state_interval_s = 0.5
""")
        with AgentProcess(config):
            device = sessions(house, "printer-1")
            assert device.connect() == 0
            # The second consumable carries the canary and is never ordered (monitor).
            reading = {"device_id": "printer-1", "seq": 1,
                       "ts": datetime.now(UTC).isoformat(), "kind": "printer",
                       "consumables": [
                           {"id": "black", "level": 4, "unit": "percent", "sku": "TN-2420"},
                           {"id": "cyan", "level": 61, "unit": "percent", "sku": canary}]}
            assert device.publish("replenish/v1/devices/printer-1/state",
                                  json.dumps(reading).encode()) in (0, 16)
            wait_until(lambda: _knows(config, "printer-1/black"), 30)
            _replenish(config, "consent", "set", "printer-1/black", "auto", "--sku",
                       "TN-2420", "--max-price", "80", "--max-qty", "1", "--budget", "200")

            def placed() -> dict[str, object] | None:
                for topic, payload in _crossed(ops):
                    if topic.startswith(f"{REMOTE}orders/"):
                        body = json.loads(payload)
                        if body["state"] == "placed":
                            return dict(body)
                return None

            wait_until(lambda: placed() is not None, 60,
                       lambda: [t for t, _ in _crossed(ops)])
            wait_until(lambda: any(t == f"{REMOTE}health" for t, _ in _crossed(ops)), 30)
            # The agent published its dashboards and discovery at home meanwhile.
            home = sessions(house, "household")
            assert home.connect() == 0 and home.subscribe("replenish/v1/household/#") in (0, 1)
            wait_until(lambda: len(home.messages) > 0, 20)
    order = placed()
    assert order is not None
    assert order["sku"] == "TN-2420" and order["consumable"] == "printer-1/black"
    assert order["order_id"] == sandbox.orders()[0].id
    health = json.loads(dict(_crossed(ops))[f"{REMOTE}health"])
    assert health["clock"] == "system" and health["ordering"] == "on"
    crossed = _crossed(ops)
    allowed = [t for t, _ in crossed if t == f"{REMOTE}health" or t == f"{REMOTE}bridge/state"
               or t.startswith(f"{REMOTE}orders/")]
    assert len(allowed) == len(crossed)  # 0 telemetry, dashboard or discovery messages
    everything = b"".join(t.encode() + p for t, p in ops.messages)
    assert canary.encode() not in everything
    assert b'"level"' not in everything  # no reading, in any form
    assert b"idem" not in everything  # the idempotency key stays home too
    for secret in [*house.passwords.values(), token]:
        assert secret.encode() not in everything
