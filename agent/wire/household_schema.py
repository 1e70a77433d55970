"""JSON Schema of the household topics, built from the models in :mod:`agent.wire.household`.

``docs/household.schema.json`` is this module's output (``python -m agent.wire.household_schema
> docs/household.schema.json``); a unit test fails when the committed file is stale, so
the documented payloads cannot drift from what the agent publishes and accepts.
"""

from __future__ import annotations

import json
from typing import get_args

from pydantic.json_schema import JsonSchemaValue

from agent.wire.household import (
    COMMAND_PREFIX,
    DEFAULT_DISCOVERY_PREFIX,
    EVENTS_TOPIC,
    HA_STATUS_TOPIC,
    Command,
    CommandResult,
    ConsumableState,
    HouseholdEvent,
    Proposal,
    Verb,
    availability_topic,
    consumable_topic,
    proposal_topic,
)
from agent.wire.schema_doc import document


def household_schemas() -> JsonSchemaValue:
    """The schema document: topic map plus one root ``$defs`` entry per household payload
    (and per model or enum they use), so every ``$ref`` resolves."""
    prefix = DEFAULT_DISCOVERY_PREFIX
    defs: JsonSchemaValue = {}
    defs["Availability"] = {
        "description": "Retained mirror of a device's status topic (plain text, not JSON).",
        "enum": ["online", "offline"],
        "type": "string",
    }
    defs["CommandResult"] = {
        "description": "Outcome of one household command, recorded in the audit chain "
                       "(kind household_command_refused unless accepted) and the agent log.",
        "enum": list(get_args(CommandResult)),
        "type": "string",
    }
    return document(
        "replenish-agent household topics v1",
        (ConsumableState, Proposal, HouseholdEvent, Command),
        extra_defs=defs,
        topics={
            "consumable_state": {
                "topic": consumable_topic("<device_id>", "<consumable_id>"),
                "payload": "#/$defs/ConsumableState", "retain": True, "from": "agent",
            },
            "availability": {
                "topic": availability_topic("<device_id>"),
                "payload": "#/$defs/Availability", "retain": True, "from": "agent",
            },
            "proposal": {
                "topic": proposal_topic("<proposal_id>"),
                "payload": "#/$defs/Proposal", "retain": True, "from": "agent",
                "cleared": "empty retained payload once decided or expired",
            },
            "events": {
                "topic": EVENTS_TOPIC,
                "payload": "#/$defs/HouseholdEvent", "retain": False, "from": "agent",
            },
            "commands": {
                "topic": f"{COMMAND_PREFIX}/<verb>",
                "verbs": [v.value for v in Verb],
                "payload": "#/$defs/Command", "retain": False, "from": "household",
                "result": "#/$defs/CommandResult",
            },
            "homeassistant_discovery": {
                "topic": f"{prefix}/<sensor|button>/replenish_<device>/<object_id>/config",
                "retain": True, "from": "agent",
                "cleared": "empty retained payload removes the entity",
            },
            "homeassistant_status": {
                "topic": HA_STATUS_TOPIC, "payload": "online", "from": "household",
                "effect": "the agent re-announces discovery, states and open proposals",
            },
        },
    )


def household_schema_text() -> str:
    """The committed ``docs/household.schema.json`` content."""
    return json.dumps(household_schemas(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(household_schema_text())
