"""HTTP surface of the vendor sandbox: request parsing, routing, fault delivery.

Public API under ``/v1`` (see ``docs/vendor-api.yaml``) and the sandbox-only admin
surface under ``/_sandbox`` (clock, faults, orders), both behind the same bearer token.
Faults (outage, rate limit, error rate, latency, slow drip) apply to ``/v1`` only, so a
test can always drive the sandbox while it misbehaves.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import socket
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from firmware_sim.vendor.catalog import SKU_RE
from firmware_sim.vendor.faults import iso
from firmware_sim.vendor.orders import ApiError, OrderRequest, RecordedOrder
from firmware_sim.vendor.state import SandboxState

log = logging.getLogger(__name__)

MAX_BODY = 65_536
MAX_QUANTITY = 1_000
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# Request amounts (docs/vendor-api.yaml MoneyIn): up to 9 integer digits, 0-2 places.
MONEY_IN_RE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
MAX_PRICE = Decimal("999999999.99")
ORDER_FIELDS = {"sku", "quantity", "max_unit_price", "test", "client_ref", "allow_substitute"}
REPLAYED_HEADER = "Idempotent-Replayed"

_CATALOG = re.compile(r"^/v1/catalog/([^/]+)$")
_ORDER = re.compile(r"^/v1/orders/([A-Za-z0-9_]+)$")
_CANCEL = re.compile(r"^/v1/orders/([A-Za-z0-9_]+)/cancel$")

Answer = tuple[int, dict[str, Any], dict[str, str]]


class SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the sandbox state and its token."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SandboxState, token: str) -> None:
        self.state = state
        self.token = token.encode()
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


def parse_order(raw: bytes) -> OrderRequest:
    """Validate a ``POST /v1/orders`` body; raises ApiError 400 with a short reason."""
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ApiError(400, "bad_request", "body is not JSON") from err
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "body must be an object")
    unknown = set(data) - ORDER_FIELDS
    if unknown:
        raise ApiError(400, "bad_request", "unknown fields in body")
    sku, qty = data.get("sku"), data.get("quantity")
    if not isinstance(sku, str) or not SKU_RE.match(sku):
        raise ApiError(400, "bad_request", "sku missing or malformed")
    # JSON has one number type: 2.0 is the integer 2 (as JSON Schema's "integer" says).
    if isinstance(qty, float) and qty.is_integer():
        qty = int(qty)
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
        raise ApiError(400, "bad_request", f"quantity must be an integer 1..{MAX_QUANTITY}")
    price = parse_price(data.get("max_unit_price"))
    ref = data.get("client_ref")
    if ref is not None and (not isinstance(ref, str) or not 1 <= len(ref) <= 128):
        raise ApiError(400, "bad_request", "client_ref must be a string of 1..128")
    flags = {name: data.get(name, False) for name in ("test", "allow_substitute")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise ApiError(400, "bad_request", "test and allow_substitute must be booleans")
    return OrderRequest(sku, qty, price, flags["test"], ref, flags["allow_substitute"])


def parse_price(raw: object) -> Decimal | None:
    """``max_unit_price``: null, a decimal string with at most two places, or a number.

    Bounded by :data:`MAX_PRICE` so no amount can overflow the decimal context later
    (1e26 or "1e400" once made a 500 in the fingerprint).
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        if not MONEY_IN_RE.match(raw):
            raise ApiError(400, "bad_request", "max_unit_price must look like 24.90")
        return Decimal(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ApiError(400, "bad_request", "max_unit_price must be a string or a number")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ApiError(400, "bad_request", "max_unit_price must be finite")
    # Through the shortest repr, so the float 999999999.99 is the decimal it reads as.
    price = Decimal(str(raw))
    if not 0 <= price <= MAX_PRICE:
        raise ApiError(400, "bad_request", f"max_unit_price must be 0..{MAX_PRICE}")
    return price


def _error(err: ApiError) -> Answer:
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return err.status, {"error": err.code, "message": str(err)}, headers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus delayed
        # ACKs add ~40 ms per request, and a drip must leave byte by byte anyway.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """JSON for every error the stdlib raises itself (never its HTML page).

        A method without a ``do_`` handler (PATCH, TRACE, OPTIONS, HEAD, ...) lands here
        as 501: route it anyway, so auth, 404 and a JSON 405 with ``Allow`` apply to it
        exactly as to PUT or DELETE.
        """
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self._serve(self.command)
            return
        self.close_connection = True
        error = "too_large" if code in (413, 414, 431) else "bad_request"
        payload = {"error": error, "message": "malformed request"}
        self._send((code, payload, {"Connection": "close"}))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("%s %s", self.client_address[0], format % args)

    # -- plumbing --------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._send((400, {"error": "bad_request", "message": "bad Content-Length"}, {}))
                return
            if length > MAX_BODY:
                self.close_connection = True
                self._send((413, {"error": "too_large", "message": "body too large"}, {}))
                return
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            public = url.path.startswith("/v1/") and self._authorized()
            try:
                answer = self._route(method, url.path, parse_qs(url.query), body)
            except Exception:
                log.exception("sandbox bug on %s %s", method, url.path)
                answer = (500, {"error": "internal", "message": "sandbox bug"}, {})
            self._send(answer, drip=self.server.state.faults.slow_drip if public else 0.0)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (deadline hit during a drip): nothing left to tell it.
            self.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        if not self._authorized():
            return (
                401,
                {"error": "unauthorized", "message": "bad token"},
                {"WWW-Authenticate": 'Bearer realm="vendor"'},
            )
        if path.startswith("/v1/") or path == "/v1":
            return self._public(method, path, query, body)
        if path.startswith("/_sandbox/"):
            return self._admin(method, path, body)
        return 404, {"error": "not_found", "message": "no such path"}, {}

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.server.token)

    def _send(self, answer: Answer, drip: float = 0.0) -> None:
        status, payload, headers = answer
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return  # headers only, Content-Length as a GET would have had
        if drip <= 0:
            self.wfile.write(body)
            return
        step = drip / len(body)
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            if self.server.stopping.wait(step):
                self.close_connection = True
                return

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.server.stopping.wait(seconds)

    # -- public API ------------------------------------------------------------------

    def _public(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        state = self.server.state
        state.tick()
        try:
            state.gate()
            if path == "/v1/orders" and method == "POST":
                return self._place_order(body)
            self._pause(state.faults.latency)
            return self._public_route(method, path, query)
        except ApiError as err:
            return _error(err)

    def _public_route(self, method: str, path: str, query: dict[str, list[str]]) -> Answer:
        state = self.server.state
        if m := _CATALOG.match(path):
            _only(method, "GET")
            return 200, state.catalog_item(unquote(m.group(1))), {}
        if path == "/v1/orders":
            _only(method, "GET", "POST")
            key = query.get("idempotency_key", [None])[0]
            ref = query.get("client_ref", [None])[0]
            if (key is not None and len(key) > 255) or (ref is not None and len(ref) > 128):
                raise ApiError(400, "bad_request", "filter too long")
            return 200, {"orders": state.find_orders(key=key, client_ref=ref)}, {}
        if m := _ORDER.match(path):
            _only(method, "GET")
            return 200, state.get_order(m.group(1)), {}
        if m := _CANCEL.match(path):
            _only(method, "POST")
            return 200, state.cancel(m.group(1)), {}
        raise ApiError(404, "not_found", "no such path")

    def _place_order(self, body: bytes) -> Answer:
        state = self.server.state
        key = self.headers.get("Idempotency-Key")
        if key is None or not KEY_RE.match(key):
            raise ApiError(400, "idempotency_key_missing", "Idempotency-Key header required")
        req = parse_order(body)
        stored = state.begin_order(key, req)
        if stored is not None:
            return stored[0], stored[1], {REPLAYED_HEADER: "true"}
        try:
            # Latency while the key is in flight, so a concurrent retry sees 409; a slow
            # commit (profile "minimal") holds it past the client's timeout, and commits
            # even when the client has given up meanwhile.
            self._pause(state.faults.latency + state.commit_delay_s)
            status, payload = state.commit_order(key, req)
        except BaseException:
            state.abandon(key)
            raise
        if state.faults.commit_then_500:
            return 500, {"error": "internal", "message": "injected error after commit"}, {}
        return status, payload, {}

    # -- admin surface (sandbox only) ------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> Answer:
        state = self.server.state
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ApiError(400, "bad_request", "body must be an object")
            if path == "/_sandbox/clock":
                _only(method, "GET", "POST")
                delivered: list[RecordedOrder] = []
                if method == "POST":
                    if "advance_seconds" in data:
                        delivered = state.advance(timedelta(seconds=float(data["advance_seconds"])))
                    elif "set" in data:
                        delivered = state.set_time(datetime.fromisoformat(str(data["set"])))
                    else:
                        raise ApiError(400, "bad_request", "give advance_seconds or set")
                now = state.clock.now()
                answer: dict[str, Any] = {"now": iso(now),
                                             "delivered": [o.id for o in delivered]}
                published = getattr(state.clock, "published", None)
                if published is not None:
                    answer["published"] = {"at": iso(published[0]), "count": published[1]}
                return 200, answer, {}
            if path == "/_sandbox/faults":
                _only(method, "GET", "PUT", "DELETE")
                if method == "PUT":
                    if not body:
                        raise ApiError(400, "bad_request", "give the knobs to set")
                    state.faults.update(data)
                elif method == "DELETE":
                    state.faults.reset()
                return 200, state.faults.to_json(), {}
            if path == "/_sandbox/orders":
                _only(method, "GET")
                return 200, {"orders": state.find_orders()}, {}
            if path == "/_sandbox/catalog":
                _only(method, "GET")
                return 200, {"items": [state.catalog_item(s) for s in state.catalog_skus()]}, {}
            raise ApiError(404, "not_found", "no such path")
        except ApiError as err:
            return _error(err)
        except (ValueError, TypeError, KeyError) as err:
            return _error(ApiError(400, "bad_request", str(err)[:200]))


def _only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
