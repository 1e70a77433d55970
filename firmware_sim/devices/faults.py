"""Fault modes for vendors' tests: bad publications a real device fleet will produce.

Every function returns (topic, payload bytes) pairs ready to publish, built from good
:class:`~agent.wire.device.StateMessage` readings, so a test can aim them at any consumer:

==================  ===================================================================
``malformed``       truncated JSON
``wrong_device``    payload ``device_id`` differs from the topic's (a spoofing attempt)
``replay``          the same message (same ``seq``) published again
``out_of_order``    a batch published with ``seq`` descending
``nan``             NaN level (a JSON ``NaN`` token, which strict parsers refuse)
``absurd``          impossible levels: far above capacity and the unit's ceiling
``negative``        a negative level
``oversized``       a payload over the protocol's size limit
``flood``           hundreds of valid messages at once (fresh ``seq`` numbers)
``silent``          nothing at all: the device stops publishing
==================  ===================================================================

:data:`FAULTS` maps those names to functions ``(msg, rng) -> list[Publication]``; the
live publisher uses it for ``--faults NAME,... --fault-rate P``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from agent.wire.device import MAX_PAYLOAD_BYTES, Channel, StateMessage, device_topic, encode

Publication = tuple[str, bytes]
FLOOD_SIZE = 500
# Fault copies get seq numbers far above the device's own, so they never collide with
# (and get a consumer to drop as duplicates) the genuine readings that follow.
SEQ_OFFSET = 10**9


def publication(msg: StateMessage) -> Publication:
    """The good publication of a reading."""
    return device_topic(msg.device_id, Channel.STATE), encode(msg)


def _body(msg: StateMessage) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(msg))
    return body


def _raw(msg: StateMessage, body: dict[str, Any]) -> Publication:
    """Publish a hand-edited body on the device's own topic (allow_nan for the NaN case)."""
    return device_topic(msg.device_id, Channel.STATE), json.dumps(body).encode()


def malformed_json(msg: StateMessage) -> Publication:
    """The payload cut off half-way, as a device that loses power mid-write sends it."""
    topic, payload = publication(msg)
    return topic, payload[: max(1, len(payload) // 2)]


def wrong_device_id(msg: StateMessage, other: str = "intruder-1") -> Publication:
    """Published on the device's topic but claiming to be ``other``."""
    body = _body(msg)
    body["device_id"] = other
    return _raw(msg, body)


def replayed(msgs: Sequence[StateMessage], times: int = 1) -> list[Publication]:
    """Each message, then every one of them again ``times`` more (same seq)."""
    pubs = [publication(m) for m in msgs]
    return pubs + pubs * times


def out_of_order(msgs: Sequence[StateMessage]) -> list[Publication]:
    """The batch with ``seq`` descending."""
    return [publication(m) for m in sorted(msgs, key=lambda m: m.seq, reverse=True)]


def with_level(msg: StateMessage, level: Any) -> Publication:
    """Every consumable's level replaced by ``level`` (a number, NaN, anything)."""
    body = _body(msg)
    for item in body["consumables"]:
        item["level"] = level
        item.pop("state", None)
    return _raw(msg, body)


def nan_values(msg: StateMessage) -> Publication:
    """Levels of NaN (Python's json writes the non-standard ``NaN`` token)."""
    return with_level(msg, float("nan"))


def absurd_values(msg: StateMessage) -> Publication:
    """Levels far above any capacity and the unit's ceiling."""
    return with_level(msg, 1e12)


def negative_values(msg: StateMessage) -> Publication:
    """Negative levels."""
    return with_level(msg, -5.0)


def oversized(msg: StateMessage) -> Publication:
    """A payload padded past the protocol's size limit."""
    body = _body(msg)
    body["fw"] = "x" * (MAX_PAYLOAD_BYTES + 1)
    return _raw(msg, body)


def flood(msg: StateMessage, count: int = FLOOD_SIZE) -> list[Publication]:
    """``count`` valid copies with fresh, increasing ``seq`` (a stuck reporting loop)."""
    return [publication(msg.model_copy(update={"seq": msg.seq + SEQ_OFFSET + i}))
            for i in range(count)]


def silent(msgs: Iterable[StateMessage], after: datetime) -> list[Publication]:
    """The device goes quiet: only readings before ``after`` are published."""
    return [publication(m) for m in msgs if m.ts < after]


FaultFn = Callable[[StateMessage, random.Random], list[Publication]]

FAULTS: dict[str, FaultFn] = {
    "malformed": lambda m, rng: [malformed_json(m)],
    "wrong_device": lambda m, rng: [wrong_device_id(m)],
    "replay": lambda m, rng: replayed([m], times=rng.randint(1, 3)),
    "out_of_order": lambda m, rng: out_of_order(
        [m, m.model_copy(update={"seq": m.seq + SEQ_OFFSET})]),
    "nan": lambda m, rng: [nan_values(m)],
    "absurd": lambda m, rng: [absurd_values(m)],
    "negative": lambda m, rng: [negative_values(m)],
    "oversized": lambda m, rng: [oversized(m)],
    "flood": lambda m, rng: flood(m, rng.randint(FLOOD_SIZE // 2, FLOOD_SIZE)),
    "silent": lambda m, rng: [],
}


class FaultPlan:
    """Replace a share of a device's good publications with faults (deterministic by seed)."""

    def __init__(self, names: Sequence[str], rate: float, seed: int = 0,
                 silent_for: timedelta = timedelta(days=1)) -> None:
        unknown = sorted(set(names) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(FAULTS)}")
        if not 0 <= rate <= 1:
            raise ValueError("fault rate must be within 0..1")
        self.names = list(names)
        self.rate = rate
        self.rng = random.Random(seed)
        self.injected: dict[str, int] = dict.fromkeys(self.names, 0)
        self.silent_for = silent_for
        self._silent_until: dict[str, datetime] = {}

    def apply(self, msg: StateMessage) -> list[Publication]:
        """The publications to send for ``msg``: itself, or a fault instead of it.

        ``silent`` keeps the device quiet for ``silent_for`` of simulated time.
        """
        quiet = self._silent_until.get(msg.device_id)
        if quiet is not None and msg.ts < quiet:
            return []
        if not self.names or self.rng.random() >= self.rate:
            return [publication(msg)]
        name = self.rng.choice(self.names)
        self.injected[name] += 1
        if name == "silent":
            self._silent_until[msg.device_id] = msg.ts + self.silent_for
        return FAULTS[name](msg, self.rng)
