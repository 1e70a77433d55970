"""Helpers shared by the vendor sandbox tests."""

from __future__ import annotations

from typing import Any

import httpx

TOKEN = "sandbox-test-token"


def authed_client(url: str) -> httpx.Client:
    """A plain httpx client with the right bearer token (no agent code involved)."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def post_order(http: httpx.Client, key: str | None, **body: Any) -> httpx.Response:
    """POST /v1/orders with a toner default body and ``key`` as Idempotency-Key."""
    body.setdefault("sku", "TN-2420")
    body.setdefault("quantity", 1)
    headers = {} if key is None else {"Idempotency-Key": key}
    return http.post("/v1/orders", json=body, headers=headers)
