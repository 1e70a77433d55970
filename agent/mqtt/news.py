"""Which inbound messages are news: the writer commits their batch as soon as nothing more
is waiting.

The commit window (``ingest.commit_window_s``) trades latency for SD-card writes. That
trade is right for level ticks, whose next one says nearly the same, and wrong for what
a household or a decision waits on: a device event (``fall_alert``...), the first
message of a device since the start (a device just added shows up at once; after a
restart each device's first message is one small commit), and a change of a
consumable's reported ``state`` (LOW, EMPTY, back to OK after a replacement).

A device's state changes are news at most once per ``STATE_NEWS_EVERY_S``: a device that
flaps between LOW and OK at every message would otherwise cost a commit per message;
its later changes wait for the window like ticks. Events are always news.

This looks at the raw message before validation: a malformed payload is never news (the
judge rejects it with the rest of the batch), and a message that is judged bad later
has cost at most an early commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from agent.mqtt.judge import Inbound
from agent.wire.device import Channel

_STATE_KEY = b'"state"'
# One early commit per device this often for changed states (a LOW is days apart from
# its replacement; a flapping sensor is not).
STATE_NEWS_EVERY_S = 300.0
States = frozenset[tuple[str, str]]


def _states(payload: bytes) -> States | None:
    """The (consumable id, state) pairs a state payload reports, None if unreadable."""
    if _STATE_KEY not in payload:
        return frozenset()  # level-only: most messages, and no JSON parse for them
    try:
        doc = json.loads(payload)
        return frozenset((str(c["id"]), str(c["state"])) for c in doc["consumables"]
                         if isinstance(c, dict) and c.get("state") is not None)
    except (ValueError, KeyError, TypeError):
        return None


class News:
    """Remembers, per device topic, whether it was seen and the states it last reported."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: dict[str, States] = {}
        self._seen: set[str] = set()
        self._state_news_at: dict[str, float] = {}
        self._clock = clock

    def closes(self, msg: Inbound) -> bool:
        parts = msg.topic.rsplit("/", 2)
        if len(parts) != 3:
            return False
        _, device, channel = parts
        if channel == Channel.EVENTS.value:
            return True
        first = device not in self._seen
        self._seen.add(device)
        if channel != Channel.STATE.value:
            return first
        states = _states(msg.payload)
        if states is None:
            return False
        changed = self._states.get(msg.topic, frozenset()) != states
        self._states[msg.topic] = states
        if first or not changed:
            return first
        now = self._clock()
        if now - self._state_news_at.get(msg.topic, float("-inf")) < STATE_NEWS_EVERY_S:
            return False
        self._state_news_at[msg.topic] = now
        return True
