"""The sandbox's ``minimal`` profile: only what ``docs/vendor-api.yaml`` promises.

Required fields only (optional ones missing or null), order POSTs held past the
client's timeout and committed afterwards, keys kept the spec's minimum, a stored 404
replayed. The agent's own client must read all of it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from agent.vendor.client import OrderRequest, VendorClient, VendorRetryable
from firmware_sim.vendor import VendorSandbox
from firmware_sim.vendor.profile import (
    CATALOG_REQUIRED,
    ORDER_REQUIRED,
    SPEC_MIN_KEY_RETENTION,
    get_profile,
)
from tests.integration.vendor_helpers import TOKEN, authed_client, post_order
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def quick(sandbox_minimal: VendorSandbox) -> VendorSandbox:
    sandbox_minimal.commit_delay_s = 0
    return sandbox_minimal


def test_orders_and_catalog_carry_only_required_fields(quick: VendorSandbox) -> None:
    with authed_client(quick.url) as http:
        item = http.get("/v1/catalog/TN-2420").json()
        assert set(item) == set(CATALOG_REQUIRED) | {"free_shipping_threshold"}
        assert item["free_shipping_threshold"] is None
        order = post_order(http, "k1", client_ref="intent-1", max_unit_price="70.00").json()
        assert set(order) == set(ORDER_REQUIRED) | {"reject_reason", "expected_delivery"}
        assert order["status"] == "pending" and order["expected_delivery"] is None
        quick.advance(timedelta(minutes=16))  # confirmed now
        seen = http.get(f"/v1/orders/{order['id']}").json()
        assert seen["status"] == "confirmed" and seen["expected_delivery"] is not None
        assert http.get("/v1/orders", params={"client_ref": "intent-1"}).json()["orders"]


def test_the_agents_client_reads_the_minimal_answers(quick: VendorSandbox) -> None:
    with VendorClient(quick.url, TOKEN) as client:
        item = client.catalog("TN-2420")
        assert item.substitutes == () and item.free_shipping_threshold is None
        order = client.place_order(
            OrderRequest(sku="TN-2420", quantity=1, max_unit_price=Decimal("70.00")), "k"
        )
        assert order.cancel_until is None and order.expected_delivery is None
        assert order.history == () and order.pack_size == 1
        assert client.place_order(OrderRequest(sku="TN-2420", quantity=1,
                                               max_unit_price=Decimal("70.00")), "k").replayed


def test_a_held_post_commits_after_the_client_gave_up(sandbox_minimal: VendorSandbox) -> None:
    sandbox_minimal.commit_delay_s = 1.5
    with authed_client(sandbox_minimal.url) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/orders", json={"sku": "TN-2420", "quantity": 1},
                      headers={"Idempotency-Key": "slow"}, timeout=0.3)
        # Nothing committed yet: an empty lookup, and a retry with the key is "in flight".
        assert http.get("/v1/orders", params={"idempotency_key": "slow"}).json() == {"orders": []}
        retry = post_order(http, "slow")
        assert retry.status_code == 409 and retry.headers["Retry-After"] == "1"
        wait_until(lambda: len(sandbox_minimal.orders()) == 1, timeout=5)
        found = http.get("/v1/orders", params={"idempotency_key": "slow"}).json()["orders"]
        replay = post_order(http, "slow")
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert [o["id"] for o in found] == [replay.json()["id"]]


def test_the_agents_client_sees_a_held_post_as_unknown(sandbox_minimal: VendorSandbox) -> None:
    sandbox_minimal.commit_delay_s = 1.0
    with VendorClient(sandbox_minimal.url, TOKEN, timeout=0.3, deadline_s=0.5) as client:
        with pytest.raises(VendorRetryable):
            client.place_order(OrderRequest(sku="TN-2420", quantity=1), "held")
        assert client.find_by_key("held") is None  # not committed *yet*
        wait_until(lambda: len(sandbox_minimal.orders()) == 1, timeout=5)
        found = client.find_by_key("held")
        assert found is not None and found.idempotency_key == "held"


def test_concurrent_retries_of_a_held_post_make_one_order(sandbox_minimal: VendorSandbox) -> None:
    sandbox_minimal.commit_delay_s = 0.5
    codes: list[int] = []

    def send() -> None:
        with authed_client(sandbox_minimal.url) as http:
            codes.append(post_order(http, "same").status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(codes) == [201, 409, 409, 409]
    assert len(sandbox_minimal.orders()) == 1


def test_keys_are_kept_exactly_the_spec_minimum(quick: VendorSandbox) -> None:
    assert quick.state.key_retention == SPEC_MIN_KEY_RETENTION == timedelta(hours=24)
    with authed_client(quick.url) as http:
        first = post_order(http, "k").json()
        quick.advance(SPEC_MIN_KEY_RETENTION - timedelta(seconds=1))
        assert post_order(http, "k").headers.get("Idempotent-Replayed") == "true"
        quick.advance(timedelta(seconds=1))
        second = post_order(http, "k").json()  # the key is gone: a blind resend orders again
        assert second["id"] != first["id"]
        listed = http.get("/v1/orders", params={"idempotency_key": "k"}).json()["orders"]
        assert [o["id"] for o in listed] == [first["id"], second["id"]]


def test_a_404_for_an_unknown_sku_is_stored_and_replayed(quick: VendorSandbox) -> None:
    with authed_client(quick.url) as http:
        first = post_order(http, "gone", sku="NO-SUCH-SKU")
        again = post_order(http, "gone", sku="NO-SUCH-SKU")
    assert first.status_code == again.status_code == 404
    assert first.json()["error"] == again.json()["error"] == "unknown_sku"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert quick.orders() == []


def test_profile_names_and_overrides() -> None:
    with pytest.raises(ValueError, match="minimal"):
        get_profile("lavish")
    with VendorSandbox(token=TOKEN, profile="minimal") as sb:
        assert sb.commit_delay_s == 20.0 and sb.profile.name == "minimal"
    with VendorSandbox(token=TOKEN, profile="minimal", key_retention=timedelta(hours=48)) as sb:
        assert sb.state.key_retention == timedelta(hours=48)
    with VendorSandbox(token=TOKEN) as sb:
        assert sb.commit_delay_s == 0 and sb.profile.name == "full"
        with pytest.raises(ValueError):
            sb.commit_delay_s = -1


def test_the_command_line_serves_the_minimal_profile(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "vendor", "--port", "0", "--token-file",
         str(token_file), "--profile", "minimal", "--commit-delay-s", "0", "--speed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with authed_client(url) as http:
            item = http.get("/v1/catalog/TN-2420").json()
            assert "substitutes" not in item and item["free_shipping_threshold"] is None
            assert post_order(http, "cli").json()["expected_delivery"] is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
