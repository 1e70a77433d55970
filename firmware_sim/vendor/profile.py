"""Sandbox profiles: how much of the vendor contract the sandbox gives beyond the minimum.

``full`` sends every field and answers at once. ``minimal`` is the least a vendor that
follows ``docs/vendor-api.yaml`` may do, so a client is tested against what the spec
promises and nothing more:

* responses carry only the required fields; optional ones are missing, or null where
  the schema allows null (``expected_delivery`` is null until the order is confirmed,
  ``reject_reason`` is null, ``free_shipping_threshold`` is null);
* an order POST is held in flight for ``commit_delay_s`` real seconds (past a client's
  timeout) and committed afterwards, whether or not the client is still waiting;
* idempotency keys are kept for exactly the spec's minimum (24 h);
* a 404 for an unknown SKU is stored for the key and replayed (as in ``full``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# docs/vendor-api.yaml: "Keys are kept for at least 24 hours after their first answer".
SPEC_MIN_KEY_RETENTION = timedelta(hours=24)
# Past the agent's default overall deadline (15 s in agent.vendor.client).
DEFAULT_SLOW_COMMIT_S = 20.0

ORDER_REQUIRED = (
    "id", "idempotency_key", "sku", "quantity", "unit_price", "currency", "total", "test",
    "status", "created_at",
)
CATALOG_REQUIRED = (
    "sku", "name", "price", "currency", "availability", "lead_time_days", "pack_size", "unit",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the sandbox sends and how fast it commits (see the module docstring)."""

    name: str
    required_only: bool = False
    commit_delay_s: float = 0.0
    key_retention: timedelta | None = None  # None: the sandbox's configured retention

    def order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order JSON as this profile sends it."""
        if not self.required_only:
            return order
        view = {name: order[name] for name in ORDER_REQUIRED}
        view["reject_reason"] = None
        view["expected_delivery"] = (
            None if order["status"] == "pending" else order["expected_delivery"]
        )
        return view

    def catalog_view(self, item: dict[str, Any]) -> dict[str, Any]:
        """The catalog JSON as this profile sends it."""
        if not self.required_only:
            return item
        view = {name: item[name] for name in CATALOG_REQUIRED}
        view["free_shipping_threshold"] = None
        return view


FULL = Profile("full")
MINIMAL = Profile(
    "minimal",
    required_only=True,
    commit_delay_s=DEFAULT_SLOW_COMMIT_S,
    key_retention=SPEC_MIN_KEY_RETENTION,
)
PROFILES = {p.name: p for p in (FULL, MINIMAL)}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError names the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
