"""A household's first day under a real systemd: the README's install steps in a booted
Debian container, the broker late, a LOW reading, a CLI approval, one sandbox order,
READY/STATUS, a clean journal, a clean stop, the watchdog and the unit's exposure score.

The container (``tests/integration/nspawn_rig.py``) is a cached debootstrap rootfs booted
with ``systemd-nspawn --boot``; it shares the host's network, so the agent inside reaches
the vendor sandbox this test runs on the host. Where nspawn cannot run, the test fails
with the reason (``RigError``); it never skips.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ops.progress import DEFAULT_RUNTIME_DIR, FILE_NAME
from firmware_sim.vendor import VendorSandbox
from tests.integration.nspawn_rig import Container, RigError, preflight, rootfs, stage_source
from tests.integration.nspawn_rig import wheels as dependency_wheels
from tests.test_systemd_unit import MAX_EXPOSURE
from tests.waiting import wait_until

# About 2 min with the rootfs cached; the first debootstrap adds about a minute.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[2]
UNIT = "replenish-agent"
TOKEN = "nspawn-vendor-token-5f2c"
BROKER_LATE_S = 10.0
MARKER = "<!-- install-steps:"
SRC_INSIDE = "/root/replenish-agent"
# The installed unit's WatchdogSec=60s plus the restart delay, with margin.
WATCHDOG_RESTART_WAIT_S = 110.0


def readme_install_steps(readme: Path = PROJECT / "README.md") -> list[str]:
    """The commands of the README's marked install block, one per line, comments dropped."""
    text = readme.read_text()
    start = text.index(MARKER)
    block = text[text.index("```sh\n", start) + len("```sh\n"):]
    block = block[: block.index("```")]
    steps = []
    for line in block.splitlines():
        command = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
        if command:
            steps.append(command)
    return steps


def agent_toml(vendor_url: str) -> str:
    """The household's edited config (install.sh keeps an existing one): the sandbox as
    vendor, and short intervals so the test does not wait 15 minutes for a pass."""
    example = (PROJECT / "systemd" / "agent.toml.example").read_text()
    replaced = {
        'base_url = "http://127.0.0.1:8080"': f'base_url = "{vendor_url}"',
        "dispatch_interval_s = 30.0": "dispatch_interval_s = 1.0",
        "settle_s = 30.0": "settle_s = 0",
        "interval_s = 900": "interval_s = 10",
    }
    for old, new in replaced.items():
        assert old in example, f"agent.toml.example changed: {old!r} not found"
        example = example.replace(old, new)
    return example


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    try:
        preflight()
        root = rootfs()
        wheel_dir = dependency_wheels(PROJECT)
    except RigError as err:
        pytest.fail(f"systemd container test cannot run: {err}", pytrace=False)
    work = tmp_path_factory.mktemp("nspawn")
    src = stage_source(PROJECT, work / "src")
    box = Container(root, {src: "/mnt/replenish-src", wheel_dir: "/mnt/wheels"})
    try:
        box.boot(work / "console.log")
    except RigError as err:
        box.shutdown()
        pytest.fail(f"systemd container test cannot run: {err}", pytrace=False)
    try:
        yield box
    finally:
        box.shutdown()


def test_first_day_under_real_systemd(container: Container) -> None:
    box = container
    with VendorSandbox(token=TOKEN) as sandbox:
        # What the household did before the README's block (see the prose above it).
        box.sh(f"mkdir -p /etc/replenish-agent /etc/credstore && cp -a /mnt/replenish-src "
               f"{SRC_INSIDE} && printf '%s\\n' '{TOKEN}' > "
               "/etc/credstore/replenish-agent-vendor-token && chmod 0600 "
               "/etc/credstore/replenish-agent-vendor-token")
        box.sh("cat > /etc/replenish-agent/agent.toml", stdin=agent_toml(sandbox.url))
        # No NTP in the container; the host's clock is synchronised. This is the flag file
        # systemd-timesyncd leaves, which the agent reads inside its hardened unit.
        box.sh("mkdir -p /run/systemd/timesync && touch /run/systemd/timesync/synchronized")
        # The broker is late: masked in the image, so the unit's Wants= cannot start it;
        # it is unmasked just before the README's `systemctl restart mosquitto`.
        assert box.sh("systemctl is-active mosquitto", check=False).stdout.strip() != "active"

        try:
            password = run_readme_steps(box)
            first_order(box, sandbox, password)
            clean_journal_and_stop(box)
            watchdog_restarts_a_hung_agent(box)
            exposure_within_threshold(box)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{diagnose(box)}") from None


def diagnose(box: Container) -> str:
    """What support would look at first, for the failure message."""
    return box.sh(f"systemctl status --no-pager -l {UNIT} mosquitto; "
                  f"journalctl --no-pager -q -n 80 -u {UNIT} -u mosquitto", check=False).stdout


def run_readme_steps(box: Container) -> str:
    """Every README install command, verbatim (sudo dropped: we are root), with checks."""
    steps = readme_install_steps()
    assert any(s.startswith("sudo make install") for s in steps), steps
    password = ""
    started = 0.0
    pip_offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/mnt/wheels"}
    for step in steps:
        command = step.removeprefix("sudo ")
        if command.startswith("systemctl restart mosquitto"):
            # The agent was started first and must still be waiting, never failed.
            wait_until(lambda: box.show(UNIT, "StatusText").startswith(
                           "waiting for MQTT broker 127.0.0.1:1883 (attempt "),
                       timeout=30, every=0.5,
                       what="the agent's STATUS to say it waits for the broker")
            # doctor explains it from the unit's STATUS= (systemctl show, the real one).
            doctor_out = box.sh("replenish doctor --json", check=False).stdout
            broker = next(c for c in json.loads(doctor_out)["checks"] if c["name"] == "broker")
            assert broker["level"] == "FAIL", broker
            assert any(d.startswith("the agent service is alive and waiting for MQTT broker")
                       for d in broker["details"]), broker
            time.sleep(max(0.0, started + BROKER_LATE_S - time.monotonic()))
            assert box.show(UNIT, "ActiveState") == "active"
            assert box.show(UNIT, "NRestarts") == "0"
            box.sh("systemctl unmask mosquitto")
        # doctor exits 1 for warnings: the new printer has not reported yet.
        doctor = command.startswith("replenish doctor")
        done = box.sh(f"cd {SRC_INSIDE} && {command}", timeout=300, env=pip_offline,
                      check=not doctor)
        if command.startswith("systemctl enable --now"):
            started = time.monotonic()
            # READY=1 came once the database was open: the unit is active, not activating.
            assert box.show(UNIT, "ActiveState") == "active"
        if command.startswith("systemctl restart mosquitto"):
            wait_until(lambda: box.show(UNIT, "StatusText").startswith(
                "running: MQTT broker 127.0.0.1:1883 connected"),
                    timeout=30, what="the agent to connect", every=0.5)
            assert box.show(UNIT, "NRestarts") == "0", "the late broker cost a restart"
        if command.startswith("replenish device add"):
            found = re.search(r"^\s*password:\s+(\S+)", done.stdout, re.M)
            assert found, done.stdout
            password = found.group(1)
        if command.startswith("journalctl"):
            assert "-- No entries --" in done.stdout or not done.stdout.strip(), done.stdout
        if doctor:
            assert done.returncode in (0, 1), done.stdout + done.stderr
            assert re.search(r"broker.*connected as agent", done.stdout), done.stdout
    assert password, "the README's steps never added a device"
    return password


def cli_json(box: Container, args: str) -> object:
    return json.loads(box.sh(f"replenish {args}").stdout)


def dispatch_passes(box: Container) -> int:
    """Dispatch passes the running agent completed (its progress file, as data)."""
    doc = json.loads(box.sh(f"cat {DEFAULT_RUNTIME_DIR / FILE_NAME}").stdout)
    return int(doc["passes"].get("dispatch", 0))


def first_order(box: Container, sandbox: VendorSandbox, password: str) -> None:
    reading = json.dumps({
        "device_id": "office-printer", "seq": 1, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime()),
        "kind": "printer",
        "consumables": [{"id": "black", "level": 4, "unit": "percent", "state": "low",
                         "sku": "TN-2420"}]})
    # As the printer would: TLS to the LAN listener, trusting only the household CA.
    box.sh("mosquitto_pub -h 127.0.0.1 -p 8883 --cafile /etc/mosquitto/replenish-ca/ca.crt "
           f"-u office-printer -P '{password}' -i office-printer -V 5 -q 1 "
           f"-t replenish/v1/devices/office-printer/state -m '{reading}'")
    wait_until(lambda: "office-printer" in box.sh("replenish status").stdout,
               timeout=30, what="the reading in the agent's database", every=0.5)
    box.sh("replenish consent set office-printer/black confirm")

    def proposal() -> int | None:
        rows = cli_json(box, "orders list --json")
        assert isinstance(rows, list)
        ids = [r["id"] for r in rows if r["state"] == "proposed"]
        return ids[0] if ids else None

    proposed = wait_until(proposal, timeout=40, what="a proposal for the LOW toner", every=1.0)
    assert sandbox.orders() == []
    box.sh(f"replenish orders approve {proposed}")
    wait_until(lambda: sandbox.orders(), timeout=30, what="the order at the vendor", every=0.5)
    # Nothing may go out twice: the positive marker is three more dispatch passes, as the
    # agent counts them in its runtime directory (agent.ops.progress).
    after = dispatch_passes(box)
    wait_until(lambda: dispatch_passes(box) >= after + 3, timeout=30, every=0.5,
               what="three more dispatch passes")
    orders = sandbox.orders()
    assert len(orders) == 1, orders


def journal_warnings(box: Container) -> str:
    return box.sh(f"journalctl -b -u {UNIT} -p warning --no-pager -q").stdout.strip()


def clean_journal_and_stop(box: Container) -> None:
    assert journal_warnings(box) == ""
    box.sh(f"systemctl stop {UNIT}", timeout=60)
    assert box.show(UNIT, "ActiveState") == "inactive"
    assert box.show(UNIT, "Result") == "success"
    assert box.show(UNIT, "ExecMainStatus") == "0"
    assert "agent.stopped" in box.sh(f"journalctl -b -u {UNIT} --no-pager -q -o cat").stdout
    assert journal_warnings(box) == "", "a clean stop logged warnings"


def watchdog_restarts_a_hung_agent(box: Container) -> None:
    box.sh(f"systemctl start {UNIT}", timeout=60)
    wait_until(lambda: box.show(UNIT, "StatusText").startswith(
        "running:"), timeout=30, what="the agent running again", every=0.5)
    before = int(box.show(UNIT, "NRestarts"))
    hung = box.show(UNIT, "MainPID")
    box.sh(f"kill -STOP {hung}")
    wait_until(lambda: int(box.show(UNIT, "NRestarts")) > before,
               timeout=WATCHDOG_RESTART_WAIT_S, every=2.0,
               what="systemd's watchdog to restart the hung agent")
    wait_until(lambda: box.show(UNIT, "StatusText").startswith(
        "running:"), timeout=30, what="the restarted agent connected", every=0.5)
    assert box.show(UNIT, "MainPID") != hung
    assert "watchdog timeout" in box.sh(f"journalctl -b -u {UNIT} --no-pager -q").stdout.lower()


def exposure_within_threshold(box: Container) -> None:
    done = box.sh(f"systemd-analyze security --no-pager {UNIT}.service")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
