"""The committed docs/protocol.schema.json is usable by a third party and agrees with the
agent: every simulator message and documented example passes both, and on a generated
corpus of bad payloads the schema and the agent reject the same ones."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from agent.errors import PayloadError
from agent.wire.device import (
    Channel,
    Topic,
    encode,
    parse_event,
    parse_state,
    parse_status,
)
from firmware_sim.household.scenario import run_offline, shipped_scenarios
from tests.protocol_corpus import agent_only_violation, corpus
from tests.schema_helpers import ROOT, load, strict_json, validator

DOC = load("protocol.schema.json")
DEFINITION = {Channel.STATE: "StateMessage", Channel.EVENTS: "EventMessage",
              Channel.STATUS: "StatusMessage"}
FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("payload_*.json"))


def schema_for(channel: Channel) -> Draft202012Validator:
    v = validator(DOC, DEFINITION[channel])
    # format: date-time is asserted too (jsonschema checks it with rfc3339-validator).
    return Draft202012Validator(v.schema, registry=v._registry,  # noqa: SLF001
                                format_checker=FormatChecker(["date-time"]))


SCHEMAS = {c: schema_for(c) for c in DEFINITION}


def agent_accepts(channel: Channel, device_id: str, payload: bytes) -> bool:
    try:
        if channel is Channel.STATE:
            parse_state(Topic(device_id, channel), payload)
        elif channel is Channel.EVENTS:
            parse_event(Topic(device_id, channel), payload)
        else:
            parse_status(payload)
    except PayloadError:
        return False
    return True


def schema_accepts(channel: Channel, payload: bytes) -> bool:
    try:
        body = strict_json(payload)
    except ValueError:
        return False
    return SCHEMAS[channel].is_valid(body)


def test_committed_protocol_schema_is_one_valid_document() -> None:
    Draft202012Validator.check_schema(DOC)
    text = json.dumps(DOC)
    refs = set(re.findall(r'"\$ref": "#/\$defs/(\w+)"', text))
    assert {"Consumable", "StateMessage", "CoarseState"} <= refs <= set(DOC["$defs"])
    assert not any("$defs" in d for d in DOC["$defs"].values())


def test_rfc3339_checker_is_installed() -> None:
    # Without rfc3339-validator jsonschema skips format checks silently.
    assert not FormatChecker(["date-time"]).conforms("2026-02-30T08:00:00Z", "date-time")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_recorded_fixtures_pass_the_schema(path: Any) -> None:
    SCHEMAS[Channel.STATE].validate(strict_json(path.read_bytes()))


def test_every_simulated_message_passes_schema_and_agent() -> None:
    checked = 0
    for scenario in shipped_scenarios():
        trace = run_offline(scenario, days=30)
        published = [(Channel.STATE, encode(m)) for _, m in trace.readings]
        published += [(Channel.EVENTS, encode(e)) for e in trace.events]
        for channel, payload in published:
            SCHEMAS[channel].validate(strict_json(payload))
            device = json.loads(payload)["device_id"]
            assert agent_accepts(channel, device, payload), payload[:200]
            checked += 1
    for state in ("online", "offline"):
        payload = json.dumps({"state": state, "ts": "2026-11-20T08:00:00Z"}).encode()
        assert schema_accepts(Channel.STATUS, payload)
        assert agent_accepts(Channel.STATUS, "x", payload)
    assert checked > 3_000


def _documented_device_examples() -> list[str]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    device_part = text.split("## Household topics")[0]
    return re.findall(r"```json\n(.*?)```", device_part, re.S)


def _channel_of(body: dict[str, Any]) -> Channel:
    if "consumables" in body:
        return Channel.STATE
    return Channel.EVENTS if "type" in body else Channel.STATUS


def test_documented_device_examples_pass_schema_and_agent() -> None:
    examples = _documented_device_examples()
    assert len(examples) >= 3
    seen = set()
    for text in examples:
        body = json.loads(text)
        channel = _channel_of(body)
        seen.add(channel)
        SCHEMAS[channel].validate(body)
        assert agent_accepts(channel, body.get("device_id", "x"), text.encode())
    assert seen == set(DEFINITION)


def test_schema_and_agent_agree_on_the_bad_payload_corpus() -> None:
    cases = corpus()
    disagreements = []
    verdicts: Counter[str] = Counter()
    for case in cases:
        agent = agent_accepts(case.channel, case.device_id, case.payload)
        schema = schema_accepts(case.channel, case.payload)
        if schema and not agent:
            # Only the documented checks JSON Schema cannot express may differ.
            if agent_only_violation(case.channel, json.loads(case.payload)):
                verdicts["agent-only"] += 1
                continue
        if agent != schema:
            disagreements.append((case.name, "agent" if agent else "schema"))
        verdicts["accepted" if agent else "rejected"] += 1
    assert disagreements == [], disagreements[:20]
    assert verdicts["rejected"] >= 1_000, verdicts
    assert verdicts["accepted"] > 0  # the corpus also probes the edges that are valid


def test_no_type_coercion_at_the_wire() -> None:
    """The fuzz harness's stored-as-coerced payloads: each one is refused now."""
    for field, value in [("seq", "5"), ("seq", " 5"), ("seq", "40.0"), ("seq", "1_000"),
                         ("seq", True), ("ts", 1_700_000_000)]:
        body = {"device_id": "p", "seq": 1, "ts": "2026-11-20T08:15:00Z", "kind": "printer",
                "consumables": [{"id": "black", "level": 40}]}
        body[field] = value
        assert not agent_accepts(Channel.STATE, "p", json.dumps(body).encode()), (field, value)
    for field, value in [("level", "40"), ("level", True), ("counters", {"pages": "1"})]:
        body = {"device_id": "p", "seq": 1, "ts": "2026-11-20T08:15:00Z", "kind": "printer",
                "consumables": [{"id": "black", "level": 40, field: value}]}
        assert not agent_accepts(Channel.STATE, "p", json.dumps(body).encode()), (field, value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_only_utf8_json(encoding: str) -> None:
    payload = json.dumps({"state": "online"}).encode(encoding)
    with pytest.raises(PayloadError) as err:
        parse_status(payload)
    assert err.value.reason == "bad_json"
