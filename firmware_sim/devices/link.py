"""Irregular reporting: when a simulated device can reach the broker.

Two habits, combinable: random offline spells (Wi-Fi down, phone left at home) of a few
days, and sparse sync (a meter or phone app that only uploads every N hours). While a
device is offline it buffers what it would have published and sends the backlog, with
the original ``ts`` and ``seq``, when it is back.

Offline spells are drawn per day from a generator seeded with (seed, day), so whether a
device is online at an instant does not depend on how often anyone asked before.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(slots=True, frozen=True)
class LinkProfile:
    """Connectivity habits of one device (all off by default: always online)."""

    offline_prob_per_day: float = 0.0
    offline_days: tuple[float, float] = (1.0, 3.0)
    sync_every_hours: float | None = None
    buffer: bool = True
    buffer_max: int = 5000

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LinkProfile:
        """Build from the scenario table ``link = {offline_prob_per_day = 0.02, ...}``."""
        if not data:
            return cls()
        days = data.get("offline_days", (1.0, 3.0))
        lo, hi = (float(v) for v in days)
        sync = data.get("sync_every_hours")
        return cls(
            offline_prob_per_day=float(data.get("offline_prob_per_day", 0.0)),
            offline_days=(lo, hi),
            sync_every_hours=float(sync) if sync is not None else None,
            buffer=bool(data.get("buffer", True)),
            buffer_max=int(data.get("buffer_max", 5000)),
        )


class Link:
    """Answers "can the device publish at ``t``?" for one device, deterministically."""

    def __init__(self, profile: LinkProfile, seed: int, origin: datetime) -> None:
        self.profile = profile
        self._seed = seed
        self._origin = origin
        self._windows: dict[int, tuple[datetime, datetime] | None] = {}
        self._sync_rng = random.Random(seed ^ 0x5EED)
        self._next_sync = origin
        self._lookback = int(profile.offline_days[1]) + 1
        self._always = profile.offline_prob_per_day <= 0 and profile.sync_every_hours is None

    def _window(self, day: int) -> tuple[datetime, datetime] | None:
        """The offline spell that starts on ``day`` (days since origin), if any."""
        if day not in self._windows:
            rng = random.Random(self._seed * 1_000_003 + day)
            window = None
            if rng.random() < self.profile.offline_prob_per_day:
                start = self._origin + timedelta(days=day + rng.random())
                length = rng.uniform(*self.profile.offline_days)
                window = (start, start + timedelta(days=length))
            self._windows[day] = window
        return self._windows[day]

    def in_spell(self, t: datetime) -> bool:
        """True inside a random offline spell."""
        if self.profile.offline_prob_per_day <= 0:
            return False
        today = (t - self._origin).days
        for day in range(today - self._lookback, today + 1):
            window = self._window(day)
            if window is not None and window[0] <= t < window[1]:
                return True
        return False

    def online(self, t: datetime) -> bool:
        """Whether a report due at ``t`` goes out now (stateful for sparse sync)."""
        if self._always:
            return True
        if self.in_spell(t):
            return False
        every = self.profile.sync_every_hours
        if every is None:
            return True
        if t < self._next_sync:
            return False
        jitter = self._sync_rng.uniform(0.5, 1.5)
        self._next_sync = t + timedelta(hours=every * jitter)
        return True
