"""The household broker config enforces identity: every device speaks only for itself.

Runs a real Mosquitto rendered from ``broker_config/`` (see ``conftest.broker``), with
the real ``mosquitto_pub`` and paho-mqtt 2 (MQTT 5 and 3.1.1) as clients.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.broker import LocalBroker
from tests.integration.conftest import Endpoint, Session
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOT_AUTHORIZED = 135
NO_SUBSCRIBERS = 16  # a success code: "accepted, nobody is listening"
MosquittoPub = Callable[..., "subprocess.CompletedProcess[str]"]
STATE = "replenish/v1/devices/{}/state"
COMMANDS = "replenish/v1/devices/{}/commands"


def _observer(broker: LocalBroker, make: Callable[..., Session]) -> Session:
    """The agent account subscribed to every device topic."""
    agent = make(broker, "agent")
    assert agent.connect() == 0
    assert agent.subscribe("replenish/v1/devices/#") == 1
    return agent


def _puback_code(result: subprocess.CompletedProcess[str]) -> int:
    for line in result.stdout.splitlines():
        if "received PUBACK" in line:
            return int(line.rsplit("RC:", 1)[1].rstrip(")"))
    raise AssertionError(f"no PUBACK in output: {result.stdout}")


def _connack_code(result: subprocess.CompletedProcess[str]) -> str:
    for line in result.stdout.splitlines():
        if "received CONNACK" in line:
            return line.rsplit("(", 1)[1].rstrip(")")
    return "none"


# -- a device speaks only for itself ------------------------------------------------------


def test_foreign_topic_dropped_with_mqtt311(
    broker: LocalBroker, mosquitto_pub: MosquittoPub, sessions: Callable[..., Session]
) -> None:
    agent = _observer(broker, sessions)
    spoof = mosquitto_pub("printer-1", STATE.format("fridge-1"), "spoof")
    # MQTT 3.1.1 cannot say "denied": the broker acks with success and drops the message.
    assert spoof.returncode == 0
    assert _puback_code(spoof) == 0
    mosquitto_pub("printer-1", STATE.format("printer-1"), "own")
    # The broker forwards in order: a spoof it had let through would arrive before "own".
    wait_until(lambda: len(agent.messages) >= 1, timeout=10.0)
    assert agent.messages == [(STATE.format("printer-1"), b"own")]


def test_foreign_topic_refused_with_mqtt5_reason_135(
    broker: LocalBroker, mosquitto_pub: MosquittoPub, sessions: Callable[..., Session]
) -> None:
    agent = _observer(broker, sessions)
    spoof = mosquitto_pub("printer-1", STATE.format("fridge-1"), "spoof", mqtt_version="5")
    assert _puback_code(spoof) == NOT_AUTHORIZED
    device = sessions(broker, "printer-1")
    assert device.connect() == 0
    assert device.publish(STATE.format("fridge-1"), b"spoof") == NOT_AUTHORIZED
    assert device.publish(STATE.format("printer-1"), b"own") == 0
    wait_until(lambda: len(agent.messages) >= 1, timeout=10.0)  # "own" is the marker
    assert agent.messages == [(STATE.format("printer-1"), b"own")]


@pytest.mark.parametrize(
    ("user", "topic", "allowed"),
    [
        ("printer-1", "replenish/v1/devices/printer-1/state", True),
        ("printer-1", "replenish/v1/devices/printer-1/status", True),
        ("printer-1", "replenish/v1/devices/printer-1/events", True),
        ("printer-1", "replenish/v1/devices/printer-1/commands", False),
        ("printer-1", "replenish/v1/devices/printer-1/other", False),
        ("printer-1", "replenish/v1/devices/printer-1/state/deeper", False),
        ("printer-1", "replenish/v1/devices/wearable-1/status", False),
        ("printer-1", "replenish/v1/household/commands/approve", False),
        ("printer-1", "homeassistant/status", False),
        ("agent", "replenish/v1/devices/printer-1/commands", True),
        ("agent", "replenish/v1/devices/printer-1/state", False),
        ("agent", "replenish/v1/devices/agent/state", False),
        ("agent", "replenish/v1/household/orders/1", True),
        ("agent", "homeassistant/sensor/replenish/x/config", True),
        ("household", "replenish/v1/household/commands/approve", True),
        ("household", "replenish/v1/household/orders/1", False),
        ("household", "replenish/v1/devices/printer-1/state", False),
        ("household", "replenish/v1/devices/printer-1/commands", False),
        ("household", "replenish/v1/devices/household/state", False),
        ("household", "replenish/v1/devices/household/events", False),
        ("household", "homeassistant/status", True),
    ],
)
def test_publish_acl(
    broker: LocalBroker, sessions: Callable[..., Session], user: str, topic: str, allowed: bool
) -> None:
    session = sessions(broker, user)
    assert session.connect() == 0
    code = session.publish(topic)
    assert (code < 128) is allowed, code


# Who publishes a marker each subscriber may read (sent after the probe, so once the
# marker has arrived, an allowed probe has arrived too).
MARKERS = {
    "printer-1": ("agent", COMMANDS.format("printer-1")),
    "agent": ("household", "replenish/v1/household/commands/marker"),
    "household": ("agent", "replenish/v1/household/marker"),
}


@pytest.mark.parametrize(
    ("user", "topic_filter", "publisher", "topic", "allowed"),
    [
        ("printer-1", COMMANDS.format("printer-1"), "agent", COMMANDS.format("printer-1"), True),
        ("printer-1", COMMANDS.format("fridge-1"), "agent", COMMANDS.format("fridge-1"), False),
        ("printer-1", COMMANDS.format("+"), "agent", COMMANDS.format("fridge-1"), False),
        ("printer-1", "replenish/v1/devices/#", "fridge-1", STATE.format("fridge-1"), False),
        ("printer-1", "replenish/v1/household/#", "agent", "replenish/v1/household/o/1", False),
        ("agent", "replenish/v1/devices/#", "fridge-1", STATE.format("fridge-1"), True),
        ("agent", "replenish/v1/household/commands/#", "household",
         "replenish/v1/household/commands/approve", True),
        ("agent", "homeassistant/status", "household", "homeassistant/status", True),
        ("household", "replenish/v1/household/#", "agent", "replenish/v1/household/o/1", True),
        ("household", "homeassistant/#", "agent", "homeassistant/sensor/r/x/config", True),
        ("household", "replenish/v1/devices/#", "fridge-1", STATE.format("fridge-1"), False),
        ("household", COMMANDS.format("+"), "agent", COMMANDS.format("printer-1"), False),
    ],
)  # fmt: skip
def test_read_acl(
    broker: LocalBroker,
    sessions: Callable[..., Session],
    user: str,
    topic_filter: str,
    publisher: str,
    topic: str,
    allowed: bool,
) -> None:
    reader = sessions(broker, user)
    assert reader.connect() == 0
    # Mosquitto 2.0 grants a SUBSCRIBE it cannot judge for every topic and filters each
    # message on delivery, so what counts is what arrives.
    reader.subscribe(topic_filter)
    marker_from, marker_topic = MARKERS[user]
    assert reader.subscribe(marker_topic) == 1
    sender = sessions(broker, publisher)
    assert sender.connect() == 0
    assert sender.publish(topic, b"probe") < 128
    marker = sessions(broker, marker_from)
    assert marker.connect() == 0
    assert marker.publish(marker_topic, b"marker") == 0
    wait_until(lambda: (marker_topic, b"marker") in reader.messages, timeout=10.0)
    assert ((topic, b"probe") in reader.messages) is allowed


def test_device_does_not_receive_other_devices_commands(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    snoop = sessions(broker, "fridge-1")
    assert snoop.connect() == 0
    assert snoop.subscribe(COMMANDS.format("fridge-1")) == 1
    agent = sessions(broker, "agent")
    assert agent.connect() == 0
    assert agent.publish(COMMANDS.format("printer-1"), b"for-printer") == NO_SUBSCRIBERS
    assert agent.publish(COMMANDS.format("fridge-1"), b"for-fridge") == 0
    # The printer's command went out first: it would arrive before the fridge's marker.
    wait_until(lambda: len(snoop.messages) >= 1, timeout=10.0)
    assert snoop.messages == [(COMMANDS.format("fridge-1"), b"for-fridge")]


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("printer-1", "wrong"), ("nobody", "printer-1-pass"), ("agent", "x")],
)
def test_unauthenticated_connections_refused(
    mosquitto_pub: MosquittoPub, user: str | None, password: str | None
) -> None:
    result = mosquitto_pub(user, STATE.format("printer-1"), "x", password=password)
    assert result.returncode != 0
    assert _connack_code(result) == "5"  # MQTT 3.1.1: not authorised


def test_anonymous_refused_with_mqtt5(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    assert sessions(broker, None).connect() == NOT_AUTHORIZED
    wrong = sessions(broker, "printer-1", password="wrong")
    assert wrong.connect() == NOT_AUTHORIZED


def test_removed_device_is_cut_off_after_reload(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    password = broker.passwords["wearable-1"]
    live = sessions(broker, "wearable-1")
    assert live.connect() == 0
    assert live.publish(STATE.format("wearable-1")) == NO_SUBSCRIBERS
    broker.remove_user("wearable-1")
    # Mosquitto rechecks connected clients on reload: the live session is dropped too.
    assert live.wait_disconnected()
    retry = sessions(broker, "wearable-1", password=password)
    assert retry.connect() == NOT_AUTHORIZED


def test_added_device_can_connect_after_reload(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    broker.add_user("scale-1", "scale-pass")
    scale = sessions(broker, "scale-1")
    assert scale.connect() == 0
    assert scale.publish(STATE.format("scale-1")) == NO_SUBSCRIBERS
    assert scale.publish(STATE.format("printer-1")) == NOT_AUTHORIZED


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_copied_client_id_gains_nothing(
    broker: LocalBroker, sessions: Callable[..., Session], mqtt5: bool
) -> None:
    # printer-1 has a persistent session with a command queued for it.
    opts: dict[str, object] = {
        "client_id": "printer-1",
        "clean_start": False,
        "session_expiry": 3600,
        "mqtt5": mqtt5,
    }
    printer = sessions(broker, "printer-1", **opts)
    assert printer.connect() == 0
    assert printer.subscribe(COMMANDS.format("printer-1")) == 1
    printer.close()
    agent = sessions(broker, "agent")
    assert agent.connect() == 0
    assert agent.publish(COMMANDS.format("printer-1"), b"secret-command") == 0

    # fridge-1 presents printer-1's client id: the ACL follows the username, so it may
    # not speak for printer-1 and never sees printer-1's queued command.
    thief = sessions(broker, "fridge-1", **opts)
    assert thief.connect() == 0
    if mqtt5:
        assert thief.publish(STATE.format("printer-1")) == NOT_AUTHORIZED
        assert thief.publish(STATE.format("fridge-1")) < 128
    thief.subscribe(COMMANDS.format("printer-1"))
    assert thief.subscribe(COMMANDS.format("fridge-1")) == 1
    assert agent.publish(COMMANDS.format("printer-1"), b"second-command") < 128
    assert agent.publish(COMMANDS.format("fridge-1"), b"marker") == 0
    wait_until(lambda: (COMMANDS.format("fridge-1"), b"marker") in thief.messages, timeout=10.0)
    assert thief.messages == [(COMMANDS.format("fridge-1"), b"marker")]


def test_mosquitto_pub_and_paho_agree_on_own_topic(
    broker: LocalBroker, mosquitto_pub: MosquittoPub, sessions: Callable[..., Session]
) -> None:
    agent = _observer(broker, sessions)
    result = mosquitto_pub("printer-1", STATE.format("printer-1"), '{"seq": 1}')
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: len(agent.messages) == 1, timeout=10.0)
    assert agent.messages == [(STATE.format("printer-1"), b'{"seq": 1}')]


# -- TLS ------------------------------------------------------------------------------------


def test_tls_client_trusting_household_ca_connects(
    tls_broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    assert tls_broker.ca_file is not None and tls_broker.tls_port is not None
    device = sessions(tls_broker, "printer-1", port=tls_broker.tls_port, tls_ca=tls_broker.ca_file)
    assert device.connect() == 0
    assert device.publish(STATE.format("printer-1")) == NO_SUBSCRIBERS
    assert device.publish(STATE.format("fridge-1")) == NOT_AUTHORIZED


def test_tls_client_trusting_only_system_cas_fails(
    tls_broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    device = sessions(tls_broker, "printer-1", port=tls_broker.tls_port, system_ca=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        device.connect()


def test_plain_mqtt_to_tls_port_fails(
    tls_broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    device = sessions(tls_broker, "printer-1", port=tls_broker.tls_port)
    with pytest.raises(ConnectionError):
        device.connect()
    assert device.connect_rc is None  # no CONNACK ever came back


def test_client_certificate_identity_and_revocation(
    tls_broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    assert tls_broker.cert_port is not None
    cert = tls_broker.make_client_cert("scale-1")
    opts: dict[str, object] = {
        "port": tls_broker.cert_port,
        "tls_ca": tls_broker.ca_file,
        "cert": cert,
    }
    # No username: the certificate's CN is the identity the ACL sees.
    scale = sessions(tls_broker, None, **opts)
    assert scale.connect() == 0
    assert scale.publish(STATE.format("scale-1")) == NO_SUBSCRIBERS
    assert scale.publish(STATE.format("printer-1")) == NOT_AUTHORIZED
    scale.close()

    no_cert = sessions(
        tls_broker, "printer-1", port=tls_broker.cert_port, tls_ca=tls_broker.ca_file
    )
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, AssertionError)):
        no_cert.connect()

    live = sessions(tls_broker, None, **opts)
    assert live.connect() == 0
    tls_broker.revoke_client_cert("scale-1")
    assert live.publish(STATE.format("scale-1")) == NOT_AUTHORIZED
    revoked = sessions(tls_broker, None, **opts)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, AssertionError)):
        revoked.connect()


# -- provisioning CLI against the real broker ------------------------------------------------


def _replenish_device(broker: LocalBroker, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "agent.cli.main", "device",
        "--password-file", str(broker.password_file),
        "--acl-file", str(broker.acl_file),
        "--registry-file", str(broker.workdir / "devices.json"),
        "--ca-dir", str(broker.ca_dir),
        "--pid-file", str(broker.pid_file),
        "--json", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_device_add_and_remove_via_cli(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    before = broker.reload_count()
    added = _replenish_device(broker, "add", "kettle-1", "--kind", "other")
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert info["username"] == "kettle-1"
    assert info["publish"][0] == STATE.format("kettle-1")
    broker.wait_for_reload(before)

    kettle = sessions(broker, "kettle-1", password=info["password"])
    assert kettle.connect() == 0
    assert kettle.publish(STATE.format("kettle-1")) == NO_SUBSCRIBERS
    assert kettle.publish(STATE.format("printer-1")) == NOT_AUTHORIZED

    before = broker.reload_count()
    removed = _replenish_device(broker, "remove", "kettle-1")
    assert removed.returncode == 0, removed.stderr
    broker.wait_for_reload(before)
    assert kettle.wait_disconnected()
    again = sessions(broker, "kettle-1", password=info["password"])
    assert again.connect() == NOT_AUTHORIZED

    listed = json.loads(_replenish_device(broker, "list").stdout)["devices"]
    # The fixture's devices were written by LocalBroker, not registered: kind unknown.
    assert [d["device_id"] for d in listed] == ["fridge-1", "printer-1", "wearable-1"]


def test_device_add_with_cert_via_cli_then_revoke(
    tls_broker: LocalBroker, sessions: Callable[..., Session], tmp_path: Path
) -> None:
    before = tls_broker.reload_count()
    added = _replenish_device(tls_broker, "add", "scale-2", "--kind", "fridge", "--cert")
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert "password" not in info and "username" not in info
    tls_broker.wait_for_reload(before)
    # What the installer copies into the device (the gateway's copy goes on removal).
    cert = (tmp_path / "device.crt", tmp_path / "device.key")
    shutil.copy(info["cert_file"], cert[0])
    shutil.copy(info["key_file"], cert[1])
    opts: dict[str, object] = {
        "port": tls_broker.cert_port,
        "tls_ca": Path(info["ca_file"]),
        "cert": cert,
    }
    scale = sessions(tls_broker, None, **opts)
    assert scale.connect() == 0
    assert scale.publish(STATE.format("scale-2")) == NO_SUBSCRIBERS
    assert scale.publish(STATE.format("fridge-1")) == NOT_AUTHORIZED

    before = tls_broker.reload_count()
    removed = _replenish_device(tls_broker, "remove", "scale-2")
    assert removed.returncode == 0, removed.stderr
    tls_broker.wait_for_reload(before)
    # Mosquitto keeps a live TLS session across the reload; the ACL deny silences it.
    assert scale.publish(STATE.format("scale-2")) == NOT_AUTHORIZED
    scale.close()
    assert not Path(info["key_file"]).exists()  # no private key lingers on the gateway
    again = sessions(tls_broker, None, **opts)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, AssertionError)):
        again.connect()


# -- LocalBroker lifecycle (what the other suites rely on) ------------------------------------


def test_restart_keeps_port_and_queued_messages(
    broker: LocalBroker, sessions: Callable[..., Session]
) -> None:
    port = broker.port
    opts: dict[str, object] = {"client_id": "agent-q", "clean_start": False}
    agent = sessions(broker, "agent", session_expiry=3600, **opts)
    assert agent.connect() == 0
    assert agent.subscribe(STATE.format("printer-1")) == 1
    agent.close()
    printer = sessions(broker, "printer-1")
    assert printer.connect() == 0
    assert printer.publish(STATE.format("printer-1"), b"queued") == 0
    printer.close()

    broker.restart()  # graceful: the persistence snapshot is written
    assert broker.port == port and broker.running
    back = sessions(broker, "agent", session_expiry=3600, **opts)
    assert back.connect() == 0
    wait_until(lambda: len(back.messages) == 1, timeout=10.0)
    assert back.messages == [(STATE.format("printer-1"), b"queued")]


def test_kill_and_restart_on_same_port(broker: LocalBroker) -> None:
    port, pid = broker.port, broker.pid
    broker.kill()
    assert not broker.running
    broker.start()
    assert broker.port == port and broker.pid != pid
    assert "mosquitto version" in broker.log_text()


# -- with the real agent: nothing spoofed reaches the database --------------------------------


# Generous: on a loaded 2-core machine the agent subprocess needs seconds to start and
# commit; the wait ends as soon as the data is there.
AGENT_WAIT = 60.0


def _reading(device: str, seq: int, kind: str = "printer") -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "ts": "2026-11-20T10:00:00Z",
            "kind": kind,
            "consumables": [{"id": "black", "level": 40.0, "unit": "percent"}],
        }
    ).encode()


def _store_snapshot(db: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(readings per device, rejects per reason) as the agent committed them."""
    from agent.storage.store import Store

    if not db.exists():
        return {}, {}
    with Store(db) as store:
        devices = {d.device_id: store.reading_count(d.device_id) for d in store.devices()}
        rejects: dict[str, int] = {}
        for row in store.reject_counts():
            rejects[row.reason] = rejects.get(row.reason, 0) + row.count
    return {k: v for k, v in devices.items() if v}, rejects


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_spoofed_reading_never_reaches_the_database(
    broker: LocalBroker, sessions: Callable[..., Session], tmp_path: Path, mqtt5: bool
) -> None:
    from tests.integration.agent_harness import AgentProcess, write_agent_config

    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    with AgentProcess(config):
        printer = sessions(broker, "printer-1", mqtt5=mqtt5)
        assert printer.connect() == 0
        code = printer.publish(STATE.format("fridge-1"), _reading("fridge-1", 1, "fridge"))
        assert code == (NOT_AUTHORIZED if mqtt5 else 0)
        assert printer.publish(STATE.format("printer-1"), _reading("printer-1", 1)) < 128
        wait_until(lambda: _store_snapshot(db)[0].get("printer-1") == 1,
                   timeout=AGENT_WAIT, what=lambda: _store_snapshot(db))
    readings, _ = _store_snapshot(db)
    assert readings == {"printer-1": 1}


@pytest.mark.timeout(120)
def test_agent_rejects_bad_topics_even_when_the_broker_lets_them_through(
    tmp_path: Path, sessions: Callable[..., Session]
) -> None:
    from tests.integration.agent_harness import AgentProcess, write_agent_config

    # A broker misconfigured the way a vendor's test broker might be: one account may
    # write any device's state topic.
    lax = "user intruder\ntopic write replenish/v1/devices/+/state\n"
    users = {"agent": "agent-pass", "printer-1": "p1-pass", "intruder": "in-pass"}
    with LocalBroker(tmp_path / "lax-broker", users=users, extra_acl=lax) as broker:
        config = write_agent_config(tmp_path / "agent", broker)
        db = tmp_path / "agent" / "agent.db"
        with AgentProcess(config) as agent:
            intruder = sessions(broker, "intruder")
            assert intruder.connect() == 0
            for topic, body in [
                ("replenish/v1/devices/../state", _reading("printer-1", 10)),
                ("replenish/v1/devices/.hidden/state", _reading("printer-1", 11)),
                (f"replenish/v1/devices/{'x' * 65}/state", _reading("printer-1", 12)),
                # The topic is right, the payload speaks for someone else.
                (STATE.format("printer-1"), _reading("fridge-1", 13, "fridge")),
            ]:
                assert intruder.publish(topic, body) < 128  # the broker let it through
            printer = sessions(broker, "printer-1")
            assert printer.connect() == 0
            assert printer.publish(STATE.format("printer-1"), _reading("printer-1", 1)) < 128

            def settled() -> bool:
                readings, rejects = _store_snapshot(db)
                return readings.get("printer-1") == 1 and sum(rejects.values()) >= 4

            wait_until(settled, timeout=AGENT_WAIT, what=lambda: _store_snapshot(db))
            assert agent.proc is not None and agent.proc.poll() is None
        readings, rejects = _store_snapshot(db)
    assert readings == {"printer-1": 1}
    assert rejects == {"bad_topic": 3, "device_mismatch": 1}


# -- the household gateway layout: Debian main conf + conf.d drop-in, privilege drop ----------


@pytest.fixture
def gateway_dir() -> Iterator[Path]:
    """A world-traversable private dir: as root, mosquitto drops to user ``mosquitto``,
    which cannot enter pytest's 0700 temp tree."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="replenish-gateway-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _gateway_cli(d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "agent.cli.main", "--config", "/dev/null", "device",
        "--password-file", str(d / "replenish.passwd"),
        "--acl-file", str(d / "replenish.acl"),
        "--registry-file", str(d / "replenish-devices.json"),
        "--ca-dir", str(d / "replenish-ca"),
        "--pid-file", str(d / "run" / "mosquitto.pid"),
        "--json", *args,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.timeout(120)
def test_device_init_config_runs_under_debian_main_conf(gateway_dir: Path) -> None:
    import os
    import pwd

    from firmware_sim.broker import find_mosquitto, free_port

    d = gateway_dir
    local, tls, cert = free_port(), free_port(), free_port()
    _gateway_cli(
        d, "init", "--hostname", "gw-test", "--ip", "127.0.0.1",
        "--conf-file", str(d / "conf.d" / "replenish.conf"),
        "--local-port", str(local), "--tls-port", str(tls), "--cert-port", str(cert),
        "--bind", "127.0.0.1",
        "--agent-password-file", str(d / "agent-password"),
        "--household-password-file", str(d / "household-password"),
    )  # fmt: skip
    # What Debian's /etc/mosquitto/mosquitto.conf holds; the drop-in must not repeat it.
    for sub in ("run", "data"):
        (d / sub).mkdir()
        if os.geteuid() == 0:
            mosq = pwd.getpwnam("mosquitto")
            os.chown(d / sub, mosq.pw_uid, mosq.pw_gid)
    (d / "mosquitto.conf").write_text(
        f"pid_file {d}/run/mosquitto.pid\npersistence true\n"
        f"persistence_location {d}/data/\nlog_dest file {d}/run/mosquitto.log\n"
        f"include_dir {d}/conf.d\n"
    )
    proc = subprocess.Popen(
        [str(find_mosquitto()), "-c", str(d / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = d / "run" / "mosquitto.log"

    def log_text() -> str:
        return log.read_text() if log.exists() else ""

    try:
        wait_until(lambda: "running" in log_text(), timeout=10.0, what=log_text)
        if os.geteuid() == 0:  # the broker really dropped root
            status = Path(f"/proc/{proc.pid}/status").read_text()
            uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
            assert int(uid) == pwd.getpwnam("mosquitto").pw_uid

        ca = d / "replenish-ca" / "ca.crt"
        added = json.loads(_gateway_cli(d, "add", "kettle-1", "--kind", "other").stdout)
        # The reload happens after the privilege drop: the files must be readable.
        wait_until(lambda: "Reloading config" in log_text(), timeout=10.0, what=log_text)
        broker = Endpoint(
            "127.0.0.1",
            local,
            {
                "kettle-1": added["password"],
                "agent": (d / "agent-password").read_text().strip(),
                "household": (d / "household-password").read_text().strip(),
            },
        )
        kettle = Session(broker, "kettle-1", port=tls, tls_ca=ca)
        agent = Session(broker, "agent")
        household = Session(broker, "household", port=tls, tls_ca=ca)
        try:
            assert kettle.connect() == 0
            assert kettle.publish(STATE.format("kettle-1")) == NO_SUBSCRIBERS
            assert kettle.publish(STATE.format("printer-1")) == NOT_AUTHORIZED
            assert agent.connect() == 0
            assert agent.publish(COMMANDS.format("kettle-1")) == NO_SUBSCRIBERS
            assert household.connect() == 0
            assert household.publish("replenish/v1/household/commands/approve") < 128
            assert household.publish(STATE.format("kettle-1")) == NOT_AUTHORIZED
        finally:
            for session in (kettle, agent, household):
                session.close()

        reloads = log_text().count("Reloading config")
        _gateway_cli(d, "remove", "kettle-1")
        wait_until(lambda: log_text().count("Reloading config") > reloads,
                   timeout=10.0, what=log_text)
        again = Session(broker, "kettle-1", port=tls, tls_ca=ca)
        try:
            assert again.connect() == NOT_AUTHORIZED
        finally:
            again.close()
        assert "Error" not in log_text()
    finally:
        proc.terminate()
        proc.wait(10)
