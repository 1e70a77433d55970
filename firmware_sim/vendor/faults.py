"""Simulated clock and fault knobs of the vendor sandbox."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from firmware_sim.vendor.catalog import CENT

DEFAULT_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Clock(Protocol):
    """Anything that tells the simulated time (an aware datetime)."""

    def now(self) -> datetime: ...


class SimClock:
    """Simulated time: a start instant moved by hand, optionally running at ``speed`` x real.

    ``speed=0`` (the default) freezes time between :meth:`advance` calls, which is what
    tests want; the CLI runs at ``speed=1`` so a standalone sandbox behaves like a vendor.
    """

    def __init__(
        self,
        start: datetime = DEFAULT_START,
        speed: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._lock = threading.Lock()
        self._mono = monotonic
        self._base = start
        self._t0 = monotonic()
        self._speed = speed
        self._published: tuple[datetime, int] | None = None

    @property
    def published(self) -> tuple[datetime, int] | None:
        """What a rig in lockstep said its devices had published by an instant."""
        with self._lock:
            return self._published

    def announce(self, at: datetime, count: int) -> None:
        """Say the devices had published ``count`` messages in all by ``at``: an agent on
        this clock waits until it has committed that many (``/_sandbox/clock``)."""
        with self._lock:
            self._published = (at, count)

    def now(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=self._speed * (self._mono() - self._t0))

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta`` (never backwards: deliveries cannot be undone)."""
        if delta < timedelta(0):
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._base += delta
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (not earlier than now)."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        if when < self.now():
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._base = when
            self._t0 = self._mono()
        return when


def iso(when: datetime) -> str:
    """RFC 3339 UTC timestamp with a ``Z``."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


@dataclass
class Faults:
    """Fault knobs; tests set attributes directly, the admin API uses :meth:`update`.

    error_rate: share of ``/v1`` requests answered 500 before anything is done.
    latency: seconds each ``/v1`` request waits (an order POST waits while in flight).
    commit_then_500: an order is committed, then 500 is answered instead of 201.
    slow_drip: ``/v1`` response bodies are sent byte by byte over this many seconds.
    rate_limit: at most this many ``/v1`` requests per ``rate_window`` real seconds
        (0 answers every request 429); 429 carries ``Retry-After``.
    outages: simulated-time ranges [start, end) answered 503 with ``Retry-After``.
    prices: current price by SKU, overriding the catalog.
    out_of_stock: SKU -> substitute SKU offered instead (or None for no substitute).
    """

    error_rate: float = 0.0
    latency: float = 0.0
    commit_then_500: bool = False
    slow_drip: float = 0.0
    rate_limit: int | None = None
    rate_window: float = 1.0
    outages: list[tuple[datetime, datetime]] = field(default_factory=list)
    prices: dict[str, Decimal] = field(default_factory=dict)
    out_of_stock: dict[str, str | None] = field(default_factory=dict)

    def reset(self) -> None:
        """Switch every fault off."""
        self.update(Faults().to_json(), replace_all=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "latency": self.latency,
            "commit_then_500": self.commit_then_500,
            "slow_drip": self.slow_drip,
            "rate_limit": self.rate_limit,
            "rate_window": self.rate_window,
            "outages": [[iso(a), iso(b)] for a, b in self.outages],
            "prices": {sku: money(p) for sku, p in self.prices.items()},
            "out_of_stock": dict(self.out_of_stock),
        }

    def update(self, raw: dict[str, Any], replace_all: bool = False) -> None:
        """Apply knobs from JSON; unknown keys or bad values raise ValueError, nothing applied."""
        unknown = set(raw) - set(self.to_json())
        if unknown:
            raise ValueError(f"unknown fault knobs {sorted(unknown)}")
        new: dict[str, Any] = {}
        for name in ("error_rate", "latency", "slow_drip", "rate_window"):
            if name in raw:
                value = float(raw[name])
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{name} must be >= 0")
                new[name] = value
        if "error_rate" in new and new["error_rate"] > 1:
            raise ValueError("error_rate must be <= 1")
        if "commit_then_500" in raw:
            new["commit_then_500"] = bool(raw["commit_then_500"])
        if "rate_limit" in raw:
            limit = raw["rate_limit"]
            bad_type = isinstance(limit, bool) or not isinstance(limit, int)
            if limit is not None and (bad_type or limit < 0):
                raise ValueError("rate_limit must be null or an integer >= 0")
            new["rate_limit"] = limit
        if "outages" in raw:
            new["outages"] = [
                (datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in raw["outages"]
            ]
            if any(a.tzinfo is None or b <= a for a, b in new["outages"]):
                raise ValueError("outages need aware [start, end) with end > start")
        if "prices" in raw:
            new["prices"] = {
                str(k): Decimal(str(v)).quantize(CENT) for k, v in raw["prices"].items()
            }
        if "out_of_stock" in raw:
            new["out_of_stock"] = {
                str(k): (None if v is None else str(v)) for k, v in raw["out_of_stock"].items()
            }
        for name, value in new.items():
            if replace_all or name not in ("prices", "out_of_stock"):
                setattr(self, name, value)
            else:
                getattr(self, name).update(value)
