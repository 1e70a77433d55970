"""A generated corpus of device payloads, mostly bad, for the schema/agent agreement test.

Each case starts from a good message and changes one thing: a value replaced by a value
of another type or out of range, a field removed, an unknown field added, a string made
too long or ill-formed. Some mutations stay valid (dropping an optional field, 5.0 for
an integer); the test does not assume which: it asks the agent and the schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent.wire.device import Channel

# Values dropped in wherever a field is: strings that look like numbers or times, the
# wrong JSON type, out-of-range numbers and an epoch time (the fuzz harness's findings).
REPLACEMENTS: list[Any] = [
    "5", " 5", "40.0", "1_000", "", "x" * 300, "true", True, False, None, [], {}, [1],
    {"a": 1}, 0, 5, 5.0, 1.5, -1, -0.5, 101, 2**63, 1e300, 1_700_000_000,
    "2026-11-20T08:15:00", "2026-11-20 08:15:00Z", "2026-11-20T08:15Z",
    "2026-02-30T08:00:00Z", "2026-11-20T24:00:00Z", "20261120T081500Z",
    "1700000000", "printer", "ok", "percent", "online", "cartridge_replaced", "a/b", "..",
]


@dataclass(frozen=True)
class Case:
    name: str
    channel: Channel
    payload: bytes
    device_id: str  # the topic's device id


BASE_STATE: dict[str, Any] = {
    "device_id": "printer-1", "seq": 1042, "ts": "2026-11-20T08:15:00Z", "kind": "printer",
    "fw": "2.1.0",
    "consumables": [
        {"id": "black", "sku": "TN-2420", "level": 40.0, "unit": "percent",
         "counters": {"pages": 12876}},
        {"id": "drum", "sku": "DR-2400", "state": "some_remaining", "unit": "percent"},
        {"id": "milk", "level": 900.0, "unit": "grams", "capacity": 1030.0},
        {"id": "sensors", "level": 4, "unit": "count", "capacity": 15, "state": "ok",
         "counters": {"days_worn": 4}},
    ],
}
BASE_EVENT: dict[str, Any] = {"device_id": "printer-1", "seq": 1043,
                              "ts": "2026-11-20T09:00:00+01:00",
                              "type": "cartridge_replaced", "consumable_id": "black"}
BASE_STATUS: dict[str, Any] = {"state": "online", "ts": "2026-11-20T08:00:00Z"}
BASES = [(Channel.STATE, BASE_STATE), (Channel.EVENTS, BASE_EVENT),
         (Channel.STATUS, BASE_STATUS)]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*prefix, i)
            yield from _paths(value, (*prefix, i))


def _objects(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        yield prefix
        for key, value in node.items():
            yield from _objects(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, (*prefix, i))


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


def _case(name: str, channel: Channel, body: Any) -> Case:
    device = body.get("device_id") if isinstance(body, dict) else None
    topic_id = device if isinstance(device, str) and device else "printer-1"
    return Case(name, channel, json.dumps(body).encode(), topic_id)


def corpus() -> list[Case]:
    cases: list[Case] = []
    for channel, base in BASES:
        for path in _paths(base):
            label = "/".join(map(str, path))
            for n, value in enumerate(REPLACEMENTS):
                body = copy.deepcopy(base)
                _at(body, path[:-1])[path[-1]] = value
                cases.append(_case(f"{channel}:{label}={n}", channel, body))
            body = copy.deepcopy(base)
            del _at(body, path[:-1])[path[-1]]
            cases.append(_case(f"{channel}:{label}:removed", channel, body))
        for path in _objects(base):
            body = copy.deepcopy(base)
            _at(body, path)["extra"] = 1
            cases.append(_case(f"{channel}:{'/'.join(map(str, path))}:extra", channel, body))
        cases.append(_case(f"{channel}:not-an-object", channel, [base]))
    state = copy.deepcopy(BASE_STATE)
    state["consumables"] = [dict(state["consumables"][0], id=f"c{i}") for i in range(33)]
    cases.append(_case("state:33-consumables", Channel.STATE, state))
    state = copy.deepcopy(BASE_STATE)
    state["consumables"][0]["counters"] = {f"k{i}": i for i in range(9)}
    cases.append(_case("state:9-counters", Channel.STATE, state))
    for unit, ceiling in (("percent", 100), ("grams", 100_000), ("days", 3_650)):
        for field in ("level", "capacity"):
            for value in (ceiling, ceiling + 0.001):
                state = copy.deepcopy(BASE_STATE)
                state["consumables"] = [{"id": "x", "unit": unit, field: value, "state": "ok"}]
                cases.append(_case(f"state:{unit}-{field}-{value}", Channel.STATE, state))
    return cases


def agent_only_violation(channel: Channel, body: Any) -> str | None:
    """The checks the agent makes that JSON Schema cannot express (documented in the
    committed schema's descriptions), for payloads the schema accepts."""
    if channel is not Channel.STATE:
        return None
    ids = [c["id"] for c in body["consumables"]]
    if len(ids) != len(set(ids)):
        return "duplicate consumable id"
    for c in body["consumables"]:
        level, capacity = c.get("level"), c.get("capacity")
        if level is not None and capacity is not None and level > capacity * 1.1:
            return "level above 1.1 x capacity"
    return None
