"""One order per consumable need: the real ``replenish run``, SIGKILLed again and again,
against both sandbox profiles, and the vendor's live orders counted per consumable.

The minimal profile is what the spec allows at its thinnest (docs/vendor-api.yaml): no
optional fields (``expected_delivery`` null until confirmed) and every order POST held
past the agent's deadline before the vendor commits it. The agent must treat each such
outcome as unknown, find the order by its key later, and never order the same need again,
across crashes, restarts and decision passes.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agent.consent import Mandate, Mode
from agent.storage.ledger import Ledger
from firmware_sim.broker import LocalBroker
from firmware_sim.vendor import VendorSandbox
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.conftest import BROKER_USERS, Session
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "one-order-per-need"
NEEDS = {  # consumable -> (device, reading, SKU)
    "printer-1/black": ("printer-1", {"id": "black", "level": 3, "unit": "percent",
                                      "sku": "TN-2420"}, "TN-2420"),
    "printer-1/drum": ("printer-1", {"id": "drum", "level": 2, "unit": "percent",
                                     "sku": "DR-2400"}, "DR-2400"),
    "fridge-1/milk": ("fridge-1", {"id": "milk", "level": 60, "unit": "grams",
                                   "capacity": 2000, "sku": "MILK-1L"}, "MILK-1L"),
}
KILLS = 6


@pytest.fixture(params=["full", "minimal"])
def vendor(request: pytest.FixtureRequest) -> Iterator[VendorSandbox]:
    kw: dict[str, object] = {}
    if request.param == "minimal":
        # Held past the agent's 1.5 s deadline below, then committed anyway.
        kw = {"profile": "minimal", "commit_delay_s": 2.5}
    with VendorSandbox(token=TOKEN, seed=3, **kw) as sandbox:  # type: ignore[arg-type]
        yield sandbox


def _config(tmp_path: Path, broker: LocalBroker, vendor: VendorSandbox) -> Path:
    work = tmp_path / "agent"
    work.mkdir()
    (work / "vendor-token").write_text(TOKEN)
    return write_agent_config(work, broker, f"""
[vendor]
base_url = "{vendor.url}"
token_file = "{work / 'vendor-token'}"
dispatch_interval_s = 0.5
pre_notice_h = 0
timeout_s = 1.0
deadline_s = 1.5
settle_s = 1
poll_interval_min = 1
require_synced_clock = false

[forecast]
interval_s = 10

[household]
enabled = false
""")


def _grant(db: Path) -> None:
    with closing(Ledger.open(db)) as ledger:
        for consumable, (_, _, sku) in NEEDS.items():
            ledger.set_consent(consumable, Mode.AUTO, Mandate(
                skus=(sku,), max_unit_price=Decimal("100"), max_quantity=2,
                monthly_budget=Decimal("500")), datetime.now(UTC))


def _publish(broker: LocalBroker, seq: int) -> None:
    by_device: dict[str, list[dict[str, object]]] = {}
    for device, reading, _ in NEEDS.values():
        by_device.setdefault(device, []).append(reading)
    for device, consumables in by_device.items():
        session = Session(broker, device)
        assert session.connect() == 0
        body = {"device_id": device, "seq": seq, "ts": datetime.now(UTC).isoformat(),
                "kind": "printer" if device.startswith("printer") else "fridge",
                "consumables": consumables}
        assert session.publish(f"replenish/v1/devices/{device}/state",
                               json.dumps(body).encode()) in (0, 16)
        session.close()


def _live(vendor: VendorSandbox) -> Counter[str]:
    return Counter(o.sku for o in vendor.orders() if o.status not in ("cancelled", "rejected"))


def test_one_live_order_per_need_across_sigkills(
    tmp_path: Path, vendor: VendorSandbox
) -> None:
    rng = random.Random(11)
    with LocalBroker(tmp_path / "broker", users=dict(BROKER_USERS)) as broker:
        config = _config(tmp_path, broker, vendor)
        agent = AgentProcess(config)
        agent.start()
        _publish(broker, 1)
        db = config.parent / "agent.db"
        wait_until(lambda: db.exists(), timeout=10)
        _grant(db)
        # Kill it at random moments while it decides, sends and reconciles.
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.5, 4.0))
            agent.kill()
            agent.start()
            if kill == KILLS // 2:
                _publish(broker, 2 + kill)  # the need is still there: still LOW
        skus = {sku for _, _, sku in NEEDS.values()}
        wait_until(lambda: set(_live(vendor)) == skus,
                   timeout=90, what=lambda: (_live(vendor), agent.log()[-2000:]))
        # Further passes (decisions every 10 s) must not add a second order per need: wait
        # for the positive marker of two more passes (one decision line per consumable
        # each), so a slow agent cannot pass this by not having decided again yet.
        seen = agent.new_log().count("decision consumable=")
        wait_until(lambda: agent.new_log().count("decision consumable=")
                   >= seen + 2 * len(NEEDS), timeout=40, what="two more decision passes")
        agent.stop()
    live = _live(vendor)
    assert live == Counter(dict.fromkeys(skus, 1)), (live, [vars(o) for o in vendor.orders()])
