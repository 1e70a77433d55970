"""Unit tests of agent.vendor.client with httpx.MockTransport as the single seam."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from agent.errors import ConfigError, VendorError, VendorFinal, VendorRetryable
from agent.vendor.client import (
    Availability,
    OrderRequest,
    OrderStatus,
    VendorClient,
)

CANARY = "canary-tok-7f3a9c1e5b"
BASE = "https://vendor.example"

CATALOG = {
    "sku": "TN-2420",
    "name": "Toner",
    "price": "64.90",
    "currency": "EUR",
    "availability": "in_stock",
    "lead_time_days": 2.0,
    "lead_time_sd_days": 0.5,
    "substitutes": ["TN-2410"],
    "pack_size": 1,
    "unit": "cartridge",
    "free_shipping_threshold": "29.00",
    "shipping_fee": "3.95",
}


def order_json(**over: Any) -> dict[str, Any]:
    base = {
        "id": "ord_000001",
        "idempotency_key": "intent-1",
        "client_ref": None,
        "sku": "TN-2420",
        "requested_sku": "TN-2420",
        "quantity": 1,
        "pack_size": 1,
        "unit": "cartridge",
        "unit_price": "64.90",
        "currency": "EUR",
        "shipping": "0.00",
        "total": "64.90",
        "max_unit_price": None,
        "test": False,
        "status": "pending",
        "reject_reason": None,
        "created_at": "2026-01-05T08:00:00Z",
        "cancel_until": "2026-01-06T08:00:00Z",
        "expected_delivery": "2026-01-07T08:00:00Z",
        "history": [{"status": "pending", "at": "2026-01-05T08:00:00Z"}],
    }
    base.update(over)
    return base


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def make_client() -> Iterator[Callable[..., VendorClient]]:
    clients: list[VendorClient] = []

    def make(handler: Handler, **kw: Any) -> VendorClient:
        client = VendorClient(BASE, CANARY, transport=httpx.MockTransport(handler), **kw)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


def answer(status: int, payload: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=payload, headers=headers)

    return handler


# -- happy paths ------------------------------------------------------------------------


def test_catalog_sends_bearer_token_and_parses_item(
    make_client: Callable[..., VendorClient],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=CATALOG)

    item = make_client(handler).catalog("TN-2420")
    assert item.price == Decimal("64.90")
    assert item.availability is Availability.IN_STOCK
    assert item.substitutes == ("TN-2410",)
    assert item.free_shipping_threshold == Decimal("29.00")
    (req,) = seen
    assert req.method == "GET"
    assert req.url.path == "/v1/catalog/TN-2420"
    assert req.headers["Authorization"] == f"Bearer {CANARY}"
    assert CANARY not in str(req.url)


def test_sku_with_slash_stays_one_path_segment(make_client: Callable[..., VendorClient]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**CATALOG, "sku": "A/B"})

    make_client(handler).catalog("A/B")
    assert seen[0].url.raw_path == b"/v1/catalog/A%2FB"


def test_place_order_sends_key_and_body_and_marks_replay(
    make_client: Callable[..., VendorClient],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        replay = {"Idempotent-Replayed": "true"} if len(seen) > 1 else {}
        return httpx.Response(201, json=order_json(), headers=replay)

    client = make_client(handler)
    req = OrderRequest(sku="TN-2420", quantity=1, max_unit_price=Decimal("70.00"), client_ref="i1")
    first = client.place_order(req, "intent-1")
    second = client.place_order(req, "intent-1")
    assert first.status is OrderStatus.PENDING and not first.replayed
    assert second.replayed and second.id == first.id
    assert seen[0].headers["Idempotency-Key"] == "intent-1"
    assert json.loads(seen[0].content) == {
        "sku": "TN-2420",
        "quantity": 1,
        "test": False,
        "max_unit_price": "70.00",
        "client_ref": "i1",
    }
    assert seen[0].content == seen[1].content  # a retry sends the very same body


def test_rejected_order_is_an_answer_not_an_error(
    make_client: Callable[..., VendorClient],
) -> None:
    payload = order_json(status="rejected", reject_reason="price_above_max")
    order = make_client(answer(201, payload)).place_order(
        OrderRequest(sku="TN-2420", quantity=1), "k"
    )
    assert order.status is OrderStatus.REJECTED and order.status.is_final
    assert order.reject_reason == "price_above_max"


def test_find_by_key(
    make_client: Callable[..., VendorClient], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[httpx.Request] = []
    lists = [[], [order_json()], [order_json(), order_json(id="ord_000002")]]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"orders": lists[len(seen) - 1]})

    client = make_client(handler)
    assert client.find_by_key("intent-1") is None
    found = client.find_by_key("intent-1")
    assert found is not None and found.id == "ord_000001"
    with caplog.at_level(logging.WARNING, logger="agent.vendor.client"):
        dup = client.find_by_key("intent-1")
    assert dup is not None and dup.id == "ord_000001"  # the oldest one
    assert "vendor.duplicate_orders count=2" in caplog.text
    assert seen[0].url.params["idempotency_key"] == "intent-1"


def test_get_order_and_cancel(make_client: Callable[..., VendorClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.url.path == "/v1/orders/ord_000001/cancel"
            return httpx.Response(200, json=order_json(status="cancelled"))
        assert request.url.path == "/v1/orders/ord_000001"
        return httpx.Response(200, json=order_json(status="shipped"))

    client = make_client(handler)
    assert client.get_order("ord_000001").status is OrderStatus.SHIPPED
    assert client.cancel("ord_000001").status is OrderStatus.CANCELLED


# -- error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "headers", "retry_after"),
    [
        (500, {"error": "internal", "message": "x"}, {}, None),
        (502, None, {}, None),
        (503, {"error": "unavailable", "message": "x"}, {"Retry-After": "120"}, 120.0),
        (429, {"error": "rate_limited", "message": "x"}, {"Retry-After": "7"}, 7.0),
        (429, None, {}, None),
        (409, {"error": "idempotency_in_flight", "message": "x"}, {"Retry-After": "1"}, 1.0),
    ],
)
def test_retryable_statuses(
    make_client: Callable[..., VendorClient],
    status: int,
    payload: Any,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    client = make_client(answer(status, payload, headers))
    with pytest.raises(VendorRetryable) as info:
        client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    assert info.value.status == status
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "unauthorized"),
        (403, None),
        (404, "unknown_sku"),
        (422, "idempotency_key_reused"),
    ],
)
def test_final_statuses(
    make_client: Callable[..., VendorClient], status: int, code: str | None
) -> None:
    payload = {"error": code, "message": "no"} if code else None
    client = make_client(answer(status, payload))
    with pytest.raises(VendorFinal) as info:
        client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    assert info.value.status == status
    if code:
        assert code in str(info.value)


def test_cancel_after_window_is_final(make_client: Callable[..., VendorClient]) -> None:
    client = make_client(answer(409, {"error": "cancel_window_closed", "message": "closed"}))
    with pytest.raises(VendorFinal, match="cancel_window_closed") as info:
        client.cancel("ord_000001")
    assert info.value.status == 409


def test_409_without_code_on_order_post_is_retryable(
    make_client: Callable[..., VendorClient],
) -> None:
    client = make_client(answer(409, None))
    with pytest.raises(VendorRetryable):
        client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")


def test_vendor_message_text_is_not_copied_into_errors(
    make_client: Callable[..., VendorClient],
) -> None:
    client = make_client(answer(400, {"error": "bad_request", "message": "echo: <script>"}))
    with pytest.raises(VendorFinal) as info:
        client.catalog("TN-2420")
    assert "script" not in str(info.value)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.RemoteProtocolError("peer closed"),
        httpx.ReadError("reset"),
    ],
)
def test_transport_errors_are_retryable_and_chained(
    make_client: Callable[..., VendorClient], exc: httpx.TransportError
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(VendorRetryable) as info:
        make_client(handler).place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    assert info.value.__cause__ is exc
    assert info.value.status is None


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(201, content=b"<html>oops</html>"),
        httpx.Response(201, json={"id": "x"}),
        httpx.Response(201, content=b""),
        httpx.Response(200, json=order_json(status="teleported")),
    ],
)
def test_unreadable_success_is_outcome_unknown(
    make_client: Callable[..., VendorClient], response: httpx.Response
) -> None:
    with pytest.raises(VendorRetryable, match="place_order"):
        make_client(lambda r: response).place_order(OrderRequest(sku="TN-2420", quantity=1), "k")


class _Drip(httpx.SyncByteStream):
    """A body handed out one byte per read, advancing a fake monotonic clock each time."""

    def __init__(self, body: bytes, clock: list[float], step: float) -> None:
        self.body, self.clock, self.step = body, clock, step

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.body)):
            self.clock[0] += self.step
            yield self.body[i : i + 1]


def test_read_loop_stops_at_the_deadline(make_client: Callable[..., VendorClient]) -> None:
    clock = [0.0]
    body = json.dumps(order_json()).encode()
    reads: list[int] = []

    class Counting(_Drip):
        def __iter__(self) -> Iterator[bytes]:
            for chunk in super().__iter__():
                reads.append(1)
                yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, stream=Counting(body, clock, 0.1))

    client = make_client(handler, deadline_s=2.0, monotonic=lambda: clock[0])
    with pytest.raises(VendorRetryable, match="deadline"):
        client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    # 2 s of fake time at 0.1 s per byte: it gave up after ~20 bytes, not the whole body.
    assert 19 <= len(reads) <= 22 < len(body)


@pytest.mark.timeout(30)
def test_stalled_server_cannot_hold_a_call_past_the_deadline(
    make_client: Callable[..., VendorClient],
) -> None:
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        release.wait(20)  # a server that never answers (MockTransport has no timeouts)
        return httpx.Response(201, json=order_json())

    client = make_client(handler, deadline_s=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(VendorRetryable, match="no answer"):
            client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
        # Far below the 20 s stall: the deadline, not the server, ended the call.
        assert time.monotonic() - started < 10
    finally:
        release.set()


# -- secrets ------------------------------------------------------------------------------


def _failures() -> list[Handler]:
    def raise_(exc: Exception) -> Handler:
        def handler(request: httpx.Request) -> httpx.Response:
            raise exc

        return handler

    return [
        answer(500, {"error": "internal", "message": "x"}),
        answer(401, {"error": "unauthorized", "message": "x"}),
        answer(429, None, {"Retry-After": "3"}),
        answer(201, {"garbage": True}),
        raise_(httpx.ConnectError("refused")),
        raise_(httpx.ReadTimeout("slow")),
    ]


@pytest.mark.parametrize("handler", _failures())
def test_token_never_in_exceptions_or_logs(
    make_client: Callable[..., VendorClient],
    caplog: pytest.LogCaptureFixture,
    handler: Handler,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(handler)
    # Even with httpx's own loggers back at DEBUG (they log each request from the worker
    # thread), nothing the client hands them may carry the token.
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    with pytest.raises(VendorError) as info:
        client.place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    if not isinstance(info.value.__cause__, httpx.TransportError):
        assert "HTTP Request" in caplog.text  # the worker thread's log lines were captured
    text = "".join(traceback.format_exception(info.value))
    assert CANARY not in text
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)
    assert CANARY not in caplog.text
    assert BASE not in str(info.value)  # messages name the operation, not the URL


def test_successful_calls_do_not_log_the_token(
    make_client: Callable[..., VendorClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_client(answer(201, order_json())).place_order(OrderRequest(sku="TN-2420", quantity=1), "k")
    assert "ord_000001" in caplog.text  # the canonical order line is there...
    assert CANARY not in caplog.text  # ...without the token


def test_http_library_loggers_kept_at_warning(make_client: Callable[..., VendorClient]) -> None:
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    make_client(answer(200, CATALOG))
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


@pytest.mark.parametrize(
    ("url", "token"),
    [
        (f"https://user:{CANARY}@vendor.example", "tok"),
        ("ftp://vendor.example", "tok"),
        (BASE, ""),
        (BASE, "two words"),
        (BASE, "line\nbreak"),
    ],
)
def test_bad_settings_are_config_errors_without_secrets(url: str, token: str) -> None:
    with pytest.raises(ConfigError) as info:
        VendorClient(url, token)
    assert CANARY not in str(info.value)


def test_bad_idempotency_key_is_a_programming_error(
    make_client: Callable[..., VendorClient],
) -> None:
    client = make_client(answer(201, order_json()))
    for key in ("", "has space", "x" * 256):
        with pytest.raises(ValueError):
            client.place_order(OrderRequest(sku="TN-2420", quantity=1), key)


def test_order_request_validation() -> None:
    with pytest.raises(ValueError):
        OrderRequest(sku="TN-2420", quantity=0)
    with pytest.raises(ValueError):
        OrderRequest(sku="../etc", quantity=1)
    with pytest.raises(ValueError):
        OrderRequest(sku="TN-2420", quantity=1, max_unit_price=Decimal("-1"))


# -- canonical vendor.call lines ----------------------------------------------------------


def vendor_calls(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "agent.vendor.client" and r.getMessage().startswith("vendor.call ")]


def test_one_vendor_call_line_per_request_without_url_key_or_token(
    make_client: Callable[..., VendorClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.vendor.client")
    key = "key-4a1f9e"
    replies = iter([httpx.Response(201, json=order_json()),
                    httpx.Response(200, json={"orders": [order_json()]})])
    client = make_client(lambda request: next(replies))
    client.place_order(OrderRequest(sku="TN-2420", quantity=1), key, attempt=3)
    client.find_by_key(key)
    first, second = vendor_calls(caplog)
    text = first.getMessage()
    assert text.startswith("vendor.call order_id=ord_000001 status=201 outcome=ok attempt=3 ms=")
    assert text.endswith(" op=place_order") and first.levelno == logging.INFO
    assert second.getMessage().startswith("vendor.call order_id=- status=200 outcome=ok "
                                          "attempt=- ms=")
    for record in (first, second):
        message = record.getMessage()
        assert key not in message and CANARY not in message and BASE not in message
        assert "?" not in message and "TN-2420" not in message  # no query, no body
    assert key not in caplog.text  # no other line names the key either


@pytest.mark.parametrize(("reply", "expected"), [
    (httpx.Response(503, json={"error": "unavailable"}), "status=503 outcome=retryable"),
    (httpx.Response(429, headers={"Retry-After": "5"}), "status=429 outcome=retryable"),
    (httpx.Response(400, json={"error": "bad_sku"}), "status=400 outcome=final"),
    (httpx.Response(200, json={"nonsense": True}), "status=200 outcome=retryable"),
    (httpx.ReadTimeout("slow"), "status=- outcome=timeout"),
    (httpx.ConnectError("refused"), "status=- outcome=retryable"),
])
def test_failed_calls_log_status_and_outcome(
    make_client: Callable[..., VendorClient], caplog: pytest.LogCaptureFixture,
    reply: httpx.Response | Exception, expected: str,
) -> None:
    caplog.set_level(logging.INFO, logger="agent.vendor.client")

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(reply, Exception):
            raise reply
        return reply

    with pytest.raises(VendorError):
        make_client(handler).catalog("TN-2420")
    (line,) = vendor_calls(caplog)
    assert f" {expected} " in line.getMessage() and line.levelno == logging.WARNING
    assert line.getMessage().endswith(" op=catalog")


def test_deadline_mid_body_is_a_timeout(
    make_client: Callable[..., VendorClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.vendor.client")
    clock = [0.0]
    body = json.dumps(order_json()).encode()
    client = make_client(lambda r: httpx.Response(201, stream=_Drip(body, clock, 0.5)),
                         deadline_s=2.0, monotonic=lambda: clock[0])
    with pytest.raises(VendorRetryable, match="deadline"):
        client.get_order("ord_000001")
    (line,) = vendor_calls(caplog)
    assert " outcome=timeout " in line.getMessage()
    assert " ms=2500 " in line.getMessage()  # the fake clock: 5 bytes at 0.5 s each


def test_unanswered_counts_calls_in_a_row_without_a_usable_answer(
    make_client: Callable[..., VendorClient]
) -> None:
    replies = iter([httpx.Response(503, json={"error": "unavailable"}),
                    httpx.ReadTimeout("slow"),
                    httpx.Response(404, json={"error": "not_found"}),  # an answer: up
                    httpx.ConnectError("refused"),
                    httpx.Response(200, json=order_json())])

    def handler(request: httpx.Request) -> httpx.Response:
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    client = make_client(handler)
    seen = []
    for _ in range(5):
        try:
            client.get_order("ord_000001")
        except VendorError:
            pass
        seen.append(client.unanswered)
    assert seen == [1, 2, 0, 1, 0]
