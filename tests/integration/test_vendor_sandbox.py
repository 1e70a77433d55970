"""The vendor sandbox over real HTTP: auth, catalog, idempotency rules, key pruning,
lifecycle on the simulated clock, closed loop, cancel window, rejections.

Fault knobs, the admin surface, the OpenAPI document and the CLI are tested in
``test_vendor_sandbox_faults.py``.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.household.scenario import Household
from firmware_sim.vendor import SimClock, VendorSandbox, catalog_for, deliver_to
from firmware_sim.vendor.orders import RecordedOrder
from tests.integration.vendor_helpers import TOKEN, post_order

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


# -- auth and catalog ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/catalog/TN-2420", "/v1/orders", "/_sandbox/orders"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_requests_without_the_right_token_get_401(
    sandbox: VendorSandbox, path: str, auth: str | None
) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    response = httpx.get(sandbox.url + path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"


def test_unauthorized_order_is_not_recorded(sandbox: VendorSandbox) -> None:
    response = httpx.post(
        sandbox.url + "/v1/orders",
        json={"sku": "TN-2420", "quantity": 1},
        headers={"Idempotency-Key": "k", "Authorization": "Bearer nope"},
    )
    assert response.status_code == 401
    assert sandbox.orders() == []


def test_catalog_item(http: httpx.Client) -> None:
    item = http.get("/v1/catalog/MILK-1L").json()
    assert item["price"] == "1.19" and item["currency"] == "EUR"
    assert item["availability"] == "in_stock"
    assert item["lead_time_days"] > 0 and item["lead_time_sd_days"] >= 0
    assert item["substitutes"] == ["MILK-1L-ORGANIC"]
    assert (item["pack_size"], item["unit"]) == (1000, "g")
    assert Decimal(item["free_shipping_threshold"]) > 0
    missing = http.get("/v1/catalog/NOPE-1")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_sku"


# -- idempotency rules --------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_response(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    first = post_order(http, "intent-1", client_ref="c1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    sandbox.advance(timedelta(hours=1))  # the order has moved on meanwhile
    again = post_order(http, "intent-1", client_ref="c1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # the first response, status pending included
    assert [o.idempotency_key for o in sandbox.orders()] == ["intent-1"]


def test_key_reused_with_another_body_is_422(sandbox: VendorSandbox, http: httpx.Client) -> None:
    assert post_order(http, "intent-1", quantity=1).status_code == 201
    for body in ({"quantity": 2}, {"sku": "TN-2410"}, {"test": True}, {"max_unit_price": "1.00"}):
        response = post_order(http, "intent-1", **body)
        assert response.status_code == 422, body
        assert response.json()["error"] == "idempotency_key_reused"
    assert len(sandbox.orders()) == 1


def test_body_key_order_and_defaults_do_not_change_the_fingerprint(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    assert post_order(http, "k", sku="TN-2420", quantity=2).status_code == 201
    same = http.post(
        "/v1/orders",
        content=b'{"quantity": 2, "test": false, "sku": "TN-2420"}',
        headers={"Idempotency-Key": "k", "Content-Type": "application/json"},
    )
    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.orders()) == 1


def test_concurrent_requests_with_one_key_make_one_order_and_one_409(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.latency = 0.5  # the first request stays in flight this long
    barrier = threading.Barrier(2)
    results: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=sandbox.url, headers=http.headers, timeout=10) as c:
            barrier.wait()
            results.append(post_order(c, "intent-1"))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [201, 409]
    conflict = next(r for r in results if r.status_code == 409)
    assert conflict.json()["error"] == "idempotency_in_flight"
    assert int(conflict.headers["Retry-After"]) >= 1
    sandbox.faults.latency = 0
    retry = post_order(http, "intent-1")
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.orders()) == 1


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({}, b'{"sku": "TN-2420", "quantity": 1}'),
        ({"Idempotency-Key": ""}, b'{"sku": "TN-2420", "quantity": 1}'),
        ({"Idempotency-Key": "k"}, b"not json"),
        ({"Idempotency-Key": "k"}, b'{"sku": "TN-2420", "quantity": 0}'),
        ({"Idempotency-Key": "k"}, b'{"sku": "TN-2420", "quantity": true}'),
        ({"Idempotency-Key": "k"}, b'{"sku": "TN-2420", "quantity": 1, "colour": "red"}'),
        ({"Idempotency-Key": "k"}, b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": "x"}'),
        ({"Idempotency-Key": "k"}, b'{"sku": "TN-2420", "quantity": 1, "test": "yes"}'),
        ({"Idempotency-Key": "k"}, b"[1, 2]"),
    ],
)
def test_bad_requests_are_400_and_do_not_burn_the_key(
    sandbox: VendorSandbox, http: httpx.Client, headers: dict[str, str], content: bytes
) -> None:
    response = http.post("/v1/orders", content=content, headers=headers)
    assert response.status_code == 400
    assert sandbox.orders() == []
    assert post_order(http, "k").status_code == 201  # the key is still free


def test_lookup_by_key(sandbox: VendorSandbox, http: httpx.Client) -> None:
    placed = post_order(http, "intent-1", client_ref="ref-1").json()
    post_order(http, "intent-2")
    found = http.get("/v1/orders", params={"idempotency_key": "intent-1"}).json()["orders"]
    assert [o["id"] for o in found] == [placed["id"]]
    assert http.get("/v1/orders", params={"idempotency_key": "never"}).json() == {"orders": []}
    by_ref = http.get("/v1/orders", params={"client_ref": "ref-1"}).json()["orders"]
    assert [o["id"] for o in by_ref] == [placed["id"]]
    assert http.get(f"/v1/orders/{placed['id']}").json()["idempotency_key"] == "intent-1"
    assert http.get("/v1/orders/ord_999999").status_code == 404


def test_keys_are_pruned_after_retention_but_lookup_still_finds_the_order(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    first = post_order(http, "intent-1").json()
    sandbox.advance(timedelta(hours=23))
    assert post_order(http, "intent-1").headers.get("Idempotent-Replayed") == "true"
    sandbox.advance(timedelta(hours=2))  # 25 h after the key was first used
    found = http.get("/v1/orders", params={"idempotency_key": "intent-1"}).json()["orders"]
    assert [o["id"] for o in found] == [first["id"]]  # so a careful agent would stop here
    # A blind resend after the retention is a new order: the duplicate the lookup avoids.
    resend = post_order(http, "intent-1", quantity=3)
    assert resend.status_code == 201 and "Idempotent-Replayed" not in resend.headers
    assert len(sandbox.orders()) == 2


def test_key_retention_is_configurable() -> None:
    with VendorSandbox(token=TOKEN, key_retention=timedelta(hours=1)) as sb:
        c = httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {TOKEN}"})
        post_order(c, "k")
        sb.advance(timedelta(minutes=59))
        assert post_order(c, "k").headers.get("Idempotent-Replayed") == "true"
        sb.advance(timedelta(minutes=2))
        assert "Idempotent-Replayed" not in post_order(c, "k").headers
        assert len(sb.orders()) == 2
        c.close()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("advance"), st.sampled_from([1, 12, 30]), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_idempotency_matches_a_model(ops: list[tuple[str, int, int]]) -> None:
    """Random posts and clock moves: replays, 422s and new orders exactly as the rules say."""
    retention = timedelta(hours=24)
    with (
        VendorSandbox(token=TOKEN, key_retention=retention) as sb,
        httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        keys: dict[int, tuple[int, Any, str]] = {}  # key -> (quantity, first use, order id)
        placed = 0
        for op, a, b in ops:
            if op == "advance":
                sb.advance(timedelta(hours=a))
                continue
            now = sb.now()
            keys = {k: v for k, v in keys.items() if now - v[1] < retention}
            response = post_order(c, f"key-{a}", quantity=b)
            if a not in keys:
                assert response.status_code == 201
                assert "Idempotent-Replayed" not in response.headers
                keys[a] = (b, now, response.json()["id"])
                placed += 1
            elif keys[a][0] == b:
                assert response.status_code == 201
                assert response.headers["Idempotent-Replayed"] == "true"
                assert response.json()["id"] == keys[a][2]
            else:
                assert response.status_code == 422
        assert len(sb.orders()) == placed


# -- lifecycle on the simulated clock -----------------------------------------------------


def status_of(http: httpx.Client, order_id: str) -> str:
    return str(http.get(f"/v1/orders/{order_id}").json()["status"])


def test_lifecycle_follows_the_simulated_clock(sandbox: VendorSandbox, http: httpx.Client) -> None:
    delivered: list[RecordedOrder] = []
    sandbox.on_delivered = delivered.append
    order = post_order(http, "k", sku="MILK-1L", quantity=2).json()
    assert order["status"] == "pending"
    assert status_of(http, order["id"]) == "pending"
    sandbox.advance(timedelta(minutes=16))
    assert status_of(http, order["id"]) == "confirmed"
    full = http.get(f"/v1/orders/{order['id']}").json()
    eta = full["expected_delivery"]
    assert eta is not None
    sandbox.advance(timedelta(days=10))
    final = http.get(f"/v1/orders/{order['id']}").json()
    assert final["status"] == "delivered"
    assert [h["status"] for h in final["history"]] == [
        "pending",
        "confirmed",
        "shipped",
        "delivered",
    ]
    stamps = [h["at"] for h in final["history"]]
    assert stamps == sorted(stamps) and stamps[-1] == eta
    assert [(o.id, o.quantity, o.pack_size) for o in delivered] == [(order["id"], 2, 1000)]
    sandbox.advance(timedelta(days=1))
    assert len(delivered) == 1  # reported once


def test_lead_times_follow_the_catalog_model(sandbox: VendorSandbox, http: httpx.Client) -> None:
    for i in range(40):
        post_order(http, f"k{i}", sku="CGM-G7-3")
    leads = [
        (o.expected_delivery - o.created_at).total_seconds() / 86_400
        for o in sandbox.orders()
        if o.expected_delivery is not None
    ]
    mean = sum(leads) / len(leads)
    assert 2.0 < mean < 4.0  # catalog mean 3 days, sd 1 day
    assert len(set(leads)) > 30  # variable, not a constant


def test_set_time_and_clock_only_moves_forward(sandbox: VendorSandbox) -> None:
    later = sandbox.now() + timedelta(days=2)
    sandbox.set_time(later)
    assert sandbox.now() == later
    with pytest.raises(ValueError):
        sandbox.set_time(later - timedelta(seconds=1))
    with pytest.raises(ValueError):
        sandbox.advance(timedelta(seconds=-1))


def test_test_orders_are_recorded_but_not_fulfilled(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    delivered: list[RecordedOrder] = []
    sandbox.on_delivered = delivered.append
    body = post_order(http, "k", test=True).json()
    assert body["test"] is True
    sandbox.advance(timedelta(days=10))
    (recorded,) = sandbox.orders()
    assert recorded.test
    assert delivered == []


def test_a_broken_delivery_hook_does_not_break_the_sandbox(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    def hook(order: RecordedOrder) -> None:
        raise RuntimeError("household crashed")

    sandbox.on_delivered = hook
    order = post_order(http, "k").json()
    sandbox.advance(timedelta(days=10))
    assert status_of(http, order["id"]) == "delivered"


def test_closed_loop_delivery_refills_the_household() -> None:
    # Two identical households; only one is wired to the sandbox. The difference in stock
    # after the delivery is exactly what was ordered.
    home, control = Household.from_scenario("demo"), Household.from_scenario("demo")
    device, consumable = home.find_sku("CGM-G7-3")
    catalog = catalog_for(home)
    assert {e.sku: e.lead_time_days for e in catalog}["TN-2410"] == 3.0  # scenario's model
    with VendorSandbox(
        token=TOKEN, catalog=catalog, clock=SimClock(home.start), on_delivered=deliver_to(home)
    ) as sb:
        c = httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {TOKEN}"})
        post_order(c, "k", sku="CGM-G7-3", quantity=2)
        post_order(c, "t", sku="CGM-G7-3", quantity=5, test=True)  # never fulfilled
        delivered = sb.advance(timedelta(days=10))
        c.close()
    assert [o.idempotency_key for o in delivered] == ["k"]
    end = home.start + timedelta(days=10)
    home.advance(end)
    control.advance(end)
    mine = home.device(device.device_id).stocks[consumable]
    theirs = control.device(device.device_id).stocks[consumable]
    pack = mine.pack_size
    assert (mine.level + mine.spare) - (theirs.level + theirs.spare) == pytest.approx(2 * pack)


# -- cancel window ------------------------------------------------------------------------


def test_cancel_inside_the_window(sandbox: VendorSandbox, http: httpx.Client) -> None:
    delivered: list[RecordedOrder] = []
    sandbox.on_delivered = delivered.append
    order = post_order(http, "k", sku="TN-3480").json()
    sandbox.advance(timedelta(minutes=30))
    cancelled = http.post(f"/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = http.post(f"/v1/orders/{order['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    sandbox.advance(timedelta(days=10))
    assert status_of(http, order["id"]) == "cancelled"
    assert delivered == []


def test_cancel_after_the_window_is_409() -> None:
    with VendorSandbox(token=TOKEN, cancel_window=timedelta(hours=1)) as sb:
        c = httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {TOKEN}"})
        order = post_order(c, "k", sku="DR-3400").json()
        assert order["cancel_until"] == "2026-01-05T09:00:00Z"
        sb.advance(timedelta(minutes=61))
        response = c.post(f"/v1/orders/{order['id']}/cancel")
        assert response.status_code == 409
        assert response.json()["error"] == "cancel_window_closed"
        assert status_of(c, order["id"]) == "confirmed"
        c.close()


def test_default_cancel_window_is_24_hours(sandbox: VendorSandbox, http: httpx.Client) -> None:
    order = post_order(http, "k").json()
    created = sandbox.now()
    assert order["cancel_until"] == (created + timedelta(hours=24)).isoformat().replace(
        "+00:00", "Z"
    )


def test_shipped_delivered_and_rejected_orders_cannot_be_cancelled(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    order = post_order(http, "k").json()
    sandbox.advance(timedelta(days=10))
    response = http.post(f"/v1/orders/{order['id']}/cancel")
    assert response.status_code == 409 and response.json()["error"] == "not_cancellable"
    rejected = post_order(http, "k2", max_unit_price="0.01").json()
    response = http.post(f"/v1/orders/{rejected['id']}/cancel")
    assert response.status_code == 409 and response.json()["error"] == "not_cancellable"
    assert http.post("/v1/orders/ord_999999/cancel").status_code == 404


# -- rejections, prices, stock ------------------------------------------------------------


def test_price_change_shows_in_catalog_and_rejects_orders_above_max(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.prices["TN-2420"] = Decimal("79.90")
    assert http.get("/v1/catalog/TN-2420").json()["price"] == "79.90"
    order = post_order(http, "k", max_unit_price="70.00").json()
    assert (order["status"], order["reject_reason"]) == ("rejected", "price_above_max")
    assert order["history"][-1]["status"] == "rejected"
    ok = post_order(http, "k2", max_unit_price="80").json()
    assert ok["status"] == "pending" and ok["unit_price"] == "79.90"
    assert [o.status for o in sandbox.orders()] == ["rejected", "pending"]


def test_out_of_stock_offers_the_substitute(sandbox: VendorSandbox, http: httpx.Client) -> None:
    sandbox.faults.out_of_stock["TN-2420"] = "TN-2410"
    item = http.get("/v1/catalog/TN-2420").json()
    assert item["availability"] == "out_of_stock" and item["substitutes"] == ["TN-2410"]
    # Without consent to substitutes the order is rejected: the product must not change.
    plain = post_order(http, "k1").json()
    assert (plain["status"], plain["reject_reason"]) == ("rejected", "out_of_stock")
    swapped = post_order(http, "k2", allow_substitute=True).json()
    assert swapped["status"] == "pending"
    assert (swapped["sku"], swapped["requested_sku"]) == ("TN-2410", "TN-2420")
    assert swapped["unit_price"] == "39.90"


def test_out_of_stock_without_substitute_is_rejected(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.out_of_stock["CGM-G7-3"] = None
    assert http.get("/v1/catalog/CGM-G7-3").json()["substitutes"] == []
    order = post_order(http, "k", sku="CGM-G7-3", allow_substitute=True).json()
    assert (order["status"], order["reject_reason"]) == ("rejected", "out_of_stock")
    # The substitute is out as well: rejected, and the record names what was asked for.
    sandbox.faults.out_of_stock.update({"TN-2420": "TN-2410", "TN-2410": None})
    both = post_order(http, "k2", sku="TN-2420", allow_substitute=True).json()
    assert (both["status"], both["sku"], both["reject_reason"]) == (
        "rejected",
        "TN-2420",
        "out_of_stock",
    )


def test_free_shipping_threshold(http: httpx.Client) -> None:
    small = post_order(http, "k1", sku="MILK-1L", quantity=2).json()
    big = post_order(http, "k2", sku="MILK-1L", quantity=40).json()
    assert small["shipping"] == "4.90" and small["total"] == "7.28"
    assert big["shipping"] == "0.00" and big["total"] == "47.60"
