"""The checks: what replenish-agent relies on from a vendor (docs/vendor-api.yaml).

Each check takes a :class:`~firmware_sim.conformance.kit.Kit`, returns a short detail
on success, raises :class:`CheckFailed` (with the request that failed) or
:class:`NotExercised` when the vendor cannot be made to show the behaviour (409 and 429
need a slow or rate-limited server: the replenish sandbox is made so through its admin
surface, any other vendor only if it happens to be). Only test-mode orders are placed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from agent.vendor.client import CatalogItem, Order
from firmware_sim.conformance.kit import MONEY_RE, CheckFailed, Kit, NotExercised

_MONEY = re.compile(MONEY_RE)
UNKNOWN_SKU = "ZZ-CONFORMANCE-NO-SUCH-SKU"


def expect(ok: bool, message: str, kit: Kit) -> None:
    if not ok:
        raise CheckFailed(message, kit.last)


def _status(kit: Kit, response: httpx.Response, *codes: int) -> None:
    expect(response.status_code in codes,
           f"expected {' or '.join(map(str, codes))}, got {response.status_code}", kit)


def _error_code(kit: Kit, response: httpx.Response, code: str) -> None:
    try:
        got = response.json().get("error")
    except (ValueError, AttributeError):
        got = None
    expect(got == code, f"expected error {code!r}, got {got!r}", kit)


def _agent_reads(kit: Kit, model: type[Order] | type[CatalogItem], data: Any) -> None:
    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckFailed(f"the agent cannot read it: {where}: {first['msg']}", kit.last) from None


# -- the checks ------------------------------------------------------------------------


def check_auth(kit: Kit) -> str:
    path = f"/v1/catalog/{kit.sku}"
    _status(kit, kit.request("GET", path, token=None), 401)
    _status(kit, kit.request("GET", path, token=f"wrong-{kit.run_id}"), 401)
    _status(kit, kit.request("GET", path), 200)
    return "401 without and with a wrong token, 200 with the right one"


def check_catalog(kit: Kit) -> str:
    response = kit.request("GET", f"/v1/catalog/{kit.sku}")
    _status(kit, response, 200)
    _agent_reads(kit, CatalogItem, response.json())
    expect(response.json().get("sku") == kit.sku, "catalog answered another sku", kit)
    missing = kit.request("GET", f"/v1/catalog/{UNKNOWN_SKU}")
    _status(kit, missing, 404)
    return "item readable by the agent; unknown sku 404"


def check_money_format(kit: Kit) -> str:
    item = kit.request("GET", f"/v1/catalog/{kit.sku}").json()
    amounts = {f"catalog.{k}": item.get(k) for k in ("price", "shipping_fee",
                                                     "free_shipping_threshold")}
    order = kit.placed().order
    amounts |= {f"order.{k}": order.get(k) for k in ("unit_price", "shipping", "total")}
    for name, value in amounts.items():
        if value is None and not name.endswith(("price", "total")):
            continue  # optional, and missing or null
        expect(isinstance(value, str) and bool(_MONEY.match(value)),
               f"{name} is {value!r}, not a decimal string with two places", kit)
    bad = kit.post_order(kit.key("abc-money"), {"sku": kit.sku, "quantity": 1,
                                                "max_unit_price": "abc"})
    _status(kit, bad, 400)
    huge = kit.post_order(kit.key("huge-money"), {"sku": kit.sku, "quantity": 1,
                                                  "max_unit_price": 1e26})
    _status(kit, huge, 400)
    return "amounts like 24.90; 'abc' and 1e26 as max_unit_price get 400"


def check_idempotent_replay(kit: Kit) -> str:
    placed = kit.placed()
    _status(kit, placed.response, 201)
    again = kit.post_order(placed.key, placed.body)
    _status(kit, again, 201)
    expect(again.headers.get("Idempotent-Replayed", "").lower() == "true",
           "replay without 'Idempotent-Replayed: true'", kit)
    expect(again.json().get("id") == placed.order.get("id"), "replay has another order id", kit)
    return f"same key and body replayed order {placed.order.get('id')}"


def check_reused_key(kit: Kit) -> str:
    placed = kit.placed()
    other = {**placed.body, "quantity": placed.body["quantity"] + 1}
    response = kit.post_order(placed.key, other)
    _status(kit, response, 422)
    _error_code(kit, response, "idempotency_key_reused")
    return "same key, other body: 422 idempotency_key_reused"


def check_in_flight(kit: Kit) -> str:
    """A second POST with a key whose first POST is still running gets 409."""
    restore: dict[str, Any] | None = None
    if kit.has_sandbox_admin():
        restore = kit.set_faults({"latency": 1.5})
    try:
        key = kit.key("in-flight")
        body = {"sku": kit.sku, "quantity": 1}
        first: list[httpx.Response | Exception] = []

        def send() -> None:
            try:
                first.append(kit.post_order(key, body, timeout=max(kit.timeout, 5.0)))
            except httpx.HTTPError as err:
                first.append(err)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        time.sleep(0.3)
        second = kit.post_order(key, body)
        thread.join(timeout=kit.settle_s)
    finally:
        if restore is not None:
            kit.set_faults(restore)
    if second.status_code == 409:
        _error_code(kit, second, "idempotency_in_flight")
        kit.order("in-flight")  # settle it, so no order stays in flight after the kit
        return "overlapping POST with the same key: 409 idempotency_in_flight"
    if second.status_code == 201:
        raise NotExercised("the first POST was answered before a second one could overlap")
    raise CheckFailed(f"overlapping POST got {second.status_code}", kit.last)


def check_lookup_by_key(kit: Kit) -> str:
    placed = kit.placed()
    response = kit.request("GET", "/v1/orders", params={"idempotency_key": placed.key})
    _status(kit, response, 200)
    orders = response.json().get("orders")
    expect(isinstance(orders, list) and [o.get("id") for o in orders] == [placed.order["id"]],
           "lookup by key did not list exactly the order placed with it", kit)
    for order in orders:
        _agent_reads(kit, Order, order)
    empty = kit.request("GET", "/v1/orders", params={"idempotency_key": kit.key("never-used")})
    _status(kit, empty, 200)
    expect(empty.json().get("orders") == [], "an unused key listed orders", kit)
    return "the key finds its order; an unused key finds none"


def check_cancel_window(kit: Kit) -> str:
    placed = kit.order("cancel")
    _status(kit, placed.response, 201)
    order_id = placed.order["id"]
    cancelled = kit.request("POST", f"/v1/orders/{order_id}/cancel")
    if cancelled.status_code == 409 and not placed.order.get("cancel_until"):
        _error_code(kit, cancelled, "cancel_window_closed")
        return "no cancel window offered (cancel_until missing, cancel 409)"
    _status(kit, cancelled, 200)
    expect(cancelled.json().get("status") == "cancelled", "cancel did not answer cancelled", kit)
    again = kit.request("POST", f"/v1/orders/{order_id}/cancel")
    _status(kit, again, 200)
    seen = kit.request("GET", f"/v1/orders/{order_id}")
    _status(kit, seen, 200)
    expect(seen.json().get("status") == "cancelled", "order not cancelled afterwards", kit)
    _status(kit, kit.request("POST", f"/v1/orders/ord_conformance_{kit.run_id}/cancel"), 404)
    return "cancel inside the window: cancelled; twice is a no-op; unknown order 404"


def check_rate_limit(kit: Kit) -> str:
    if not kit.has_sandbox_admin():
        raise NotExercised("no way to provoke a 429 on this vendor without flooding it")
    restore = kit.set_faults({"rate_limit": 0})
    try:
        response = kit.request("GET", f"/v1/catalog/{kit.sku}")
    finally:
        kit.set_faults(restore)
    _status(kit, response, 429)
    _error_code(kit, response, "rate_limited")
    value = response.headers.get("Retry-After", "")
    expect(value.isdigit() and int(value) >= 1, f"Retry-After is {value!r}", kit)
    return f"429 rate_limited with Retry-After: {value}"


def check_optional_fields(kit: Kit) -> str:
    placed = kit.placed()
    got = kit.request("GET", f"/v1/orders/{placed.order['id']}")
    _status(kit, got, 200)
    data = got.json()
    _agent_reads(kit, Order, data)
    _agent_reads(kit, Order, placed.order)
    optional = ("client_ref", "requested_sku", "pack_size", "unit", "shipping",
                "max_unit_price", "reject_reason", "cancel_until", "expected_delivery",
                "history")
    absent = [name for name in optional if data.get(name) is None]
    return f"readable by the agent; missing or null: {', '.join(absent) or 'none'}"


def check_unknown_sku_replay(kit: Kit) -> str:
    key, body = kit.key("unknown-sku"), {"sku": UNKNOWN_SKU, "quantity": 1}
    first = kit.settle(key, body)  # a vendor may hold this POST like any other
    _status(kit, first, 404)
    _error_code(kit, first, "unknown_sku")
    again = kit.post_order(key, body)
    _status(kit, again, 404)
    expect(again.headers.get("Idempotent-Replayed", "").lower() == "true",
           "the stored 404 was not replayed with 'Idempotent-Replayed: true'", kit)
    return "404 unknown_sku stored for the key and replayed"


def check_methods(kit: Kit) -> str:
    response = kit.request("PATCH", "/v1/orders")
    _status(kit, response, 405)
    _error_code(kit, response, "method_not_allowed")
    return "PATCH /v1/orders: JSON 405"


def check_test_mode(kit: Kit) -> str:
    placed = kit.placed()
    expect(placed.order.get("test") is True, "the test order came back without test: true", kit)
    expect(not kit.test_violations,
           f"orders answered without test: true: {', '.join(kit.test_violations)}", kit)
    return "every order answered carried test: true"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[Kit], str]


CHECKS: tuple[Check, ...] = tuple(
    Check(fn.__name__.removeprefix("check_"), fn)
    for fn in (
        check_auth, check_catalog, check_money_format, check_idempotent_replay,
        check_reused_key, check_in_flight, check_lookup_by_key, check_cancel_window,
        check_rate_limit, check_optional_fields, check_unknown_sku_replay, check_methods,
        check_test_mode,  # last: it looks at every order the others were answered
    )
)
