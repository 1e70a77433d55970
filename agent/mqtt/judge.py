"""Judging one inbound device message: topic, size, rate, payload and timestamp.

Pure of MQTT and threads; the ingest writer calls :func:`validate` for every message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import PayloadError
from agent.storage.store import UNKNOWN_DEVICE, Item, Pending, Rejected, StatusUpdate
from agent.wire.device import (
    Channel,
    EventMessage,
    StateMessage,
    parse_event,
    parse_state,
    parse_status,
    parse_topic,
)


@dataclass(slots=True, frozen=True)
class Inbound:
    """A message as paho handed it over, before any validation."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # wall clock, epoch seconds
    # Monotonic time of the hand-off: the writer's commit window runs from here, not
    # from when it took the message (see agent.mqtt.writer).
    arrived: float = field(default_factory=time.monotonic, compare=False)


class RateLimiter:
    """Token bucket per device: a catch-up burst passes, an endless flood does not."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, device_id: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


class Unlimited(RateLimiter):
    """For messages judged again: they passed the rate limit when they arrived."""

    def __init__(self) -> None:
        super().__init__(1.0, 1)

    def allow(self, device_id: str) -> bool:
        return True


def validate(msg: Inbound, limiter: RateLimiter, max_payload: int, max_skew_s: float,
             clock_trusted: bool = True) -> Item:
    """Turn one inbound message into something to store: a model, a Rejected, or (for a
    skewed timestamp while the gateway clock is not trusted) a Pending."""
    device_id = UNKNOWN_DEVICE
    try:
        topic = parse_topic(msg.topic)
        device_id = topic.device_id
        if len(msg.payload) > max_payload:
            raise PayloadError("too_large", f"{len(msg.payload)} bytes")
        # Every device topic shares the device's bucket: a status flood is a flood too.
        if not limiter.allow(device_id):
            raise PayloadError("rate_limited")
        if topic.channel is Channel.STATUS:
            return StatusUpdate(device_id, parse_status(msg.payload).state == "online")
        parsed: StateMessage | EventMessage
        if topic.channel is Channel.STATE:
            parsed = parse_state(topic, msg.payload)
        elif topic.channel is Channel.EVENTS:
            parsed = parse_event(topic, msg.payload)
        else:
            raise PayloadError("bad_topic", "devices may not publish commands")
        # Devices without a clock source report absurd times; never let those steer forecasts.
        if parsed.ts.timestamp() > msg.received_at + max_skew_s:
            if not clock_trusted:
                # A Pi without RTC can be months behind before NTP: the fault may be ours.
                return Pending(device_id, msg.topic, msg.payload)
            raise PayloadError("clock_skew", "timestamp in the future")
        return parsed
    except PayloadError as err:
        return Rejected(device_id, err.reason, msg.topic, msg.payload)
