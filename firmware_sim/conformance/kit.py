"""The conformance kit's HTTP side: one vendor, one token, test-mode orders only.

Every request goes through :meth:`Kit.request`, which remembers a printable account of
it (method, path, query, ``Idempotency-Key``, body and the answer; never the token) so
a failed check can show the request that failed. Orders go through :meth:`Kit.order`,
which always sends ``"test": true``: the kit never places a real order.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

MONEY_RE = r"^[0-9]{1,15}\.[0-9]{2}$"
# How long a POST may stay unsettled (held, 409, 5xx, 429) before the kit gives up.
DEFAULT_SETTLE_S = 90.0


class CheckFailed(Exception):
    """A check's verdict: the vendor did not do what the spec promises."""

    def __init__(self, message: str, request: str | None = None) -> None:
        super().__init__(message)
        self.request = request


class NotExercised(Exception):
    """The check could not be provoked on this vendor (not a failure)."""


@dataclass(frozen=True, slots=True)
class Placed:
    """An order the kit placed and settled: its key, the body sent and the answer."""

    key: str
    body: dict[str, Any]
    response: httpx.Response

    @property
    def order(self) -> dict[str, Any]:
        data = self.response.json()
        assert isinstance(data, dict)
        return data


class Kit:
    """Talks to one vendor for the checks in :mod:`firmware_sim.conformance.checks`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        sku: str,
        *,
        timeout: float = 10.0,
        settle_s: float = DEFAULT_SETTLE_S,
        sandbox_admin: bool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.sku = sku
        self.timeout = timeout
        self.settle_s = settle_s
        self.run_id = uuid.uuid4().hex[:10]
        self.last = ""
        self.test_violations: list[str] = []  # orders answered without "test": true
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._admin = sandbox_admin
        self._placed: Placed | None = None

    def close(self) -> None:
        self._http.close()

    # -- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
        token: str | None = "",
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request (``token=None`` sends none, ``""`` the real one)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        account = f"{method} {path}"
        if params:
            account += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        if key is not None:
            account += f" Idempotency-Key: {key}"
        if token is None:
            account += " (no token)"
        elif token:
            account += " (wrong token)"
        if body is not None:
            account += f" body: {json.dumps(body, sort_keys=True)}"
        self.last = account
        try:
            response = self._http.request(
                method, path, json=body, headers=headers, params=params,
                timeout=self.timeout if timeout is None else timeout,
            )
        except httpx.HTTPError as err:
            self.last = f"{account} -> {type(err).__name__}"
            raise
        self.last = f"{account} -> {response.status_code} {response.text[:300]}"
        return response

    def key(self, name: str) -> str:
        """A fresh idempotency key for this run (``conformance-<run>-<name>``)."""
        return f"conformance-{self.run_id}-{name}"

    def post_order(self, key: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        """One order POST, always in test mode."""
        body = {**body, "test": True}
        response = self.request("POST", "/v1/orders", body=body, key=key, **kw)
        self._note_test_mode(response)
        return response

    def order(self, name: str, **fields: Any) -> Placed:
        """Place a test order and retry the same key until the vendor settles it.

        Timeouts, 409 in flight, 429 and 5xx are "outcome unknown": the kit retries
        with the same key (honouring ``Retry-After``) until a 201 or another final
        answer, for up to ``settle_s`` seconds.
        """
        key = self.key(name)
        body = {"sku": self.sku, "quantity": 1, **fields, "test": True}
        return Placed(key, body, self.settle(key, body))

    def settle(self, key: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` with ``key`` until the vendor gives a final answer."""
        deadline = time.monotonic() + self.settle_s
        while True:
            wait = 1.0
            try:
                response = self.post_order(key, body)
            except httpx.TimeoutException:
                response = None
            if response is not None:
                retryable = response.status_code in (409, 429) or response.status_code >= 500
                if not retryable:
                    return response
                wait = _retry_after(response) or 1.0
            if time.monotonic() + wait > deadline:
                raise CheckFailed(f"order not settled within {self.settle_s:.0f} s", self.last)
            time.sleep(wait)

    def placed(self) -> Placed:
        """The kit's reference order (placed once, shared by several checks)."""
        if self._placed is None:
            placed = self.order("reference", client_ref=f"conformance-{self.run_id}")
            if placed.response.status_code != 201:
                raise CheckFailed("a valid test order was not answered 201", self.last)
            self._placed = placed
        return self._placed

    def _note_test_mode(self, response: httpx.Response) -> None:
        if response.status_code not in (200, 201):
            return
        try:
            data = response.json()
        except ValueError:
            return
        if isinstance(data, dict) and "id" in data and data.get("test") is not True:
            self.test_violations.append(str(data.get("id")))

    # -- sandbox admin (only on firmware_sim.vendor) -----------------------------------

    def has_sandbox_admin(self) -> bool:
        """Whether the vendor is the replenish sandbox (its fault knobs can be set)."""
        if self._admin is None:
            try:
                got = self._http.get("/_sandbox/faults",
                                     headers={"Authorization": f"Bearer {self.token}"})
                self._admin = got.status_code == 200 and "latency" in got.json()
            except (httpx.HTTPError, ValueError):
                self._admin = False
        return self._admin

    def set_faults(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set sandbox fault knobs; returns the previous values of those knobs."""
        auth = {"Authorization": f"Bearer {self.token}"}
        before = self._http.get("/_sandbox/faults", headers=auth).json()
        self._http.put("/_sandbox/faults", json=knobs, headers=auth).raise_for_status()
        return {k: before[k] for k in knobs}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
