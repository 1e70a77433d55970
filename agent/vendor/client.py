"""Client for the vendor ordering API (``docs/vendor-api.yaml``), built on httpx.

One method per endpoint, no retries: the outbox dispatcher owns retrying, always with the
same idempotency key, and uses :func:`backoff_delay` between attempts. Every failure is
translated here into the agent's error tree:

    VendorRetryable  timeout, connection error, deadline exceeded, 5xx, 409 "in flight",
                     429 (``retry_after`` parsed), an unreadable 2xx body: the outcome is
                     unknown, so look the order up by key before resending
    VendorFinal      any other 4xx: the vendor said no, retrying cannot help

Each call runs under an overall deadline (``deadline_s``): the request runs on a worker
thread that reads the body in a loop checking a monotonic deadline, and the caller stops
waiting at the deadline even if the server drips bytes or stalls. The bearer token lives
only in the ``Authorization`` header; messages name the operation, never URLs or tokens.

Every request logs one canonical ``vendor.call`` line (``op``, ``status``, ``outcome``
``ok``/``retryable``/``final``/``timeout``, ``attempt``, ``ms``, and the order id of an
order answer): never the URL, its query, headers or body.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ValidationError

from agent.errors import ConfigError, VendorError, VendorFinal, VendorRetryable
from agent.logs import canonical

# The API's values and the retry timing live beside this module; callers import them
# from here too.
from agent.vendor.models import Availability as Availability
from agent.vendor.models import CatalogItem as CatalogItem
from agent.vendor.models import Money as Money
from agent.vendor.models import Order as Order
from agent.vendor.models import OrderBody as OrderBody
from agent.vendor.models import OrderList
from agent.vendor.models import OrderRequest as OrderRequest
from agent.vendor.models import OrderStatus as OrderStatus
from agent.vendor.models import StatusChange as StatusChange
from agent.vendor.retry import BACKOFF_BASE_S as BACKOFF_BASE_S
from agent.vendor.retry import BACKOFF_CAP_S as BACKOFF_CAP_S
from agent.vendor.retry import RETRY_AFTER_CAP_S as RETRY_AFTER_CAP_S
from agent.vendor.retry import backoff_delay as backoff_delay
from agent.vendor.retry import parse_retry_after as parse_retry_after

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_DEADLINE_S = 15.0
MAX_RESPONSE_BYTES = 1_048_576
REPLAYED_HEADER = "Idempotent-Replayed"

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_M = TypeVar("_M", bound=BaseModel)


class _Deadline(Exception):
    """The overall deadline of one call passed while reading."""


def quiet_http_loggers() -> None:
    """httpx logs full URLs at INFO; keep it and httpcore at WARNING."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class VendorClient:
    """Synchronous client for one vendor. Thread-safe; close it (or use ``with``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import httpx
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError("vendor", "base_url", "must be an http(s) URL")
        if url.username is not None or url.password is not None:
            # Credentials in URLs end up in logs and tracebacks; the token goes in a header.
            raise ConfigError("vendor", "base_url", "must not contain credentials")
        if not token or not token.isprintable() or any(c.isspace() for c in token):
            raise ConfigError("vendor", "token", "empty or contains whitespace/control chars")
        if timeout <= 0 or deadline_s <= 0:
            raise ConfigError("vendor", "timeout", "timeout and deadline must be > 0")
        quiet_http_loggers()
        self._timeout = timeout
        self._deadline = deadline_s
        self._mono = monotonic
        self.unanswered = 0  # calls in a row that ended without a usable answer
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VendorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------

    def catalog(self, sku: str) -> CatalogItem:
        """Current price, availability, lead time and substitutes of ``sku``."""
        _, item = self._call("catalog", CatalogItem, "GET", f"/v1/catalog/{_segment(sku)}")
        return item

    def place_order(
        self, request: OrderRequest, idempotency_key: str, *, attempt: int | None = None
    ) -> Order:
        """Place (or replay) the order for ``idempotency_key``.

        A rejected order (price above ``max_unit_price``, out of stock) is returned with
        status ``rejected``; it is an answer, not an error. ``attempt`` (the outbox's
        count of sends with this key) only goes into the ``vendor.call`` line.
        """
        if not _KEY_RE.match(idempotency_key):
            raise ValueError("idempotency key must be 1..255 printable ASCII characters")
        headers, order = self._call(
            "place_order",
            Order,
            "POST",
            "/v1/orders",
            body=request.to_wire(),
            headers={"Idempotency-Key": idempotency_key},
            attempt=attempt,
        )
        if headers.get(REPLAYED_HEADER, "").lower() == "true":
            order = order.model_copy(update={"replayed": True})
        return order

    def get_order(self, order_id: str) -> Order:
        """The order's current state."""
        _, order = self._call("get_order", Order, "GET", f"/v1/orders/{_segment(order_id)}")
        return order

    def find_by_key(self, idempotency_key: str) -> Order | None:
        """The order placed with ``idempotency_key``, or None if the vendor has none.

        Use it before resending after an unknown outcome: vendors prune keys (about 24 h),
        after which a resend would place a second order.
        """
        _, listing = self._call(
            "find_by_key",
            OrderList,
            "GET",
            "/v1/orders",
            params={"idempotency_key": idempotency_key},
        )
        found = listing.orders
        if len(found) > 1:
            log.warning("vendor.duplicate_orders count=%d key=%s", len(found), idempotency_key)
        return found[0] if found else None

    def cancel(self, order_id: str) -> Order:
        """Cancel inside the vendor's cancel window (VendorFinal once it has closed)."""
        path = f"/v1/orders/{_segment(order_id)}/cancel"
        _, order = self._call("cancel", Order, "POST", path)
        return order

    # -- plumbing --------------------------------------------------------------------

    def _call(
        self,
        op: str,
        model: type[_M],
        method: str,
        path: str,
        *,
        body: OrderBody | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        attempt: int | None = None,
    ) -> tuple[httpx.Headers, _M]:
        """One request, its answer parsed into ``model``, and its ``vendor.call`` line."""
        import httpx
        started = self._mono()
        status: int | None = None
        outcome = "retryable"
        parsed: _M | None = None
        try:
            request = self._http.build_request(
                method, path, json=body, headers=headers, params=params,
                timeout=httpx.Timeout(min(self._timeout, self._deadline)),
            )
            resp_headers, status, payload = self._request(op, request,
                                                          started + self._deadline)
            parsed = self._parse(op, model, payload)
            outcome = "ok"
            return resp_headers, parsed
        except VendorError as err:
            status = err.status if err.status is not None else status
            if isinstance(err, VendorFinal):
                outcome = "final"
            elif isinstance(err.__cause__, _Deadline | httpx.TimeoutException):
                outcome = "timeout"
            raise
        finally:
            # An answer, even a refusal, means the vendor is up; the household hears of
            # a run of calls without one (agent.household.link.VENDOR_DOWN_AFTER).
            self.unanswered = 0 if outcome in ("ok", "final") else self.unanswered + 1
            ms = round((self._mono() - started) * 1000)
            order_id = parsed.id if isinstance(parsed, Order) else None
            canonical(log, "vendor.call", level=logging.INFO if outcome == "ok"
                      else logging.WARNING, order_id=order_id, status=status,
                      outcome=outcome, attempt=attempt, ms=ms, op=op)

    def _request(self, op: str, request: httpx.Request,
                 deadline: float) -> tuple[httpx.Headers, int, Any]:
        box: list[tuple[httpx.Headers, int, bytes] | BaseException] = []

        def run() -> None:
            try:
                box.append(self._exchange(op, request, deadline))
            except BaseException as exc:  # handed to the caller's thread
                box.append(exc)

        # A worker thread gives a hard deadline: connect, send, headers and a dripping
        # body together cannot hold the caller past it; the worker ends by its own
        # timeouts or the deadline check in its read loop.
        worker = threading.Thread(target=run, name=f"vendor-{op}", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - self._mono()))
        if not box:
            limit = self._deadline
            raise VendorRetryable(
                f"vendor {op}: no answer before the deadline ({limit:g} s)"
            ) from _Deadline()
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        resp_headers, status, raw = result
        payload = _json_or_none(raw)
        _raise_for_status(op, status, payload, resp_headers)
        if payload is None:
            raise VendorRetryable(f"vendor {op}: unreadable response", status)
        return resp_headers, status, payload

    def _exchange(self, op: str, request: httpx.Request,
                  deadline: float) -> tuple[httpx.Headers, int, bytes]:
        import httpx
        try:
            response = self._http.send(request, stream=True)
            try:
                raw = self._read(response, deadline)
            finally:
                response.close()
        except _Deadline as err:
            limit = self._deadline
            raise VendorRetryable(f"vendor {op}: deadline ({limit:g} s) passed mid-body") from err
        except httpx.TimeoutException as err:
            raise VendorRetryable(f"vendor {op}: timed out") from err
        except httpx.RequestError as err:
            # The class name says enough (ConnectError, RemoteProtocolError, ...);
            # httpx's own text may carry the URL.
            raise VendorRetryable(f"vendor {op}: {type(err).__name__}") from err
        return response.headers, response.status_code, raw

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        import httpx
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise httpx.DecodingError("response too large")
            chunks.append(chunk)
            if self._mono() > deadline:
                raise _Deadline
        return b"".join(chunks)

    @staticmethod
    def _parse(op: str, model: type[_M], payload: Any) -> _M:
        try:
            return model.model_validate(payload)
        except ValidationError as err:
            # Outcome unknown: a garbled answer to an order may still mean it was placed.
            raise VendorRetryable(f"vendor {op}: response does not match the API") from err


def _segment(value: str) -> str:
    """``value`` percent-encoded as one path segment (a SKU may contain ``/``)."""
    if not 1 <= len(value) <= 128 or not value.isprintable():
        raise ValueError("bad path segment")
    return quote(value, safe="")


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _raise_for_status(op: str, status: int, payload: Any, headers: httpx.Headers) -> None:
    if 200 <= status < 300:
        return
    code = payload.get("error") if isinstance(payload, dict) else None
    code = code if isinstance(code, str) and _CODE_RE.match(code) else None
    what = f"vendor {op}: HTTP {status}" + (f" {code}" if code else "")
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429 or status >= 500:
        raise VendorRetryable(what, status, retry_after)
    if status == 409 and (
        code == "idempotency_in_flight" or (code is None and op == "place_order")
    ):
        raise VendorRetryable(what, status, retry_after)
    raise VendorFinal(what, status)
