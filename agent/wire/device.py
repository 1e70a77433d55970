"""Device protocol: the MQTT topic scheme and the wire models shared with ``firmware_sim``.

Topics (``<device_id>`` is the device's MQTT username, so the broker's ``%u`` ACL binds
identity to the topic)::

    replenish/v1/devices/<device_id>/state     StateMessage, QoS 1, not retained
    replenish/v1/devices/<device_id>/status    StatusMessage, retained, also the last will
    replenish/v1/devices/<device_id>/events    EventMessage, QoS 1
    replenish/v1/devices/<device_id>/commands  agent -> device (read-only for the device)

Everything arriving from the network goes through :func:`parse_topic` and one of the
``parse_*`` functions; they raise only :class:`~agent.errors.PayloadError`, whose
``reason`` is a short token used for reject counters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue

from agent.domain import CoarseState, DeviceKind, Unit
from agent.errors import PayloadError
from agent.wire.schema_doc import document

TOPIC_ROOT = "replenish/v1/devices"
HOUSEHOLD_ROOT = "replenish/v1/household"
MAX_PAYLOAD_BYTES = 16_384
MAX_CONSUMABLES = 32
MAX_SEQ = 2**63 - 1

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]


class Channel(StrEnum):
    STATE = "state"
    STATUS = "status"
    EVENTS = "events"
    COMMANDS = "commands"


# Largest plausible level per unit: anything above is a broken sensor or an attack.
MAX_LEVEL: dict[Unit, float] = {
    Unit.PERCENT: 100.0,
    Unit.GRAMS: 100_000.0,
    Unit.MILLILITRES: 100_000.0,
    Unit.COUNT: 100_000.0,
    Unit.DAYS: 3_650.0,
}

M = TypeVar("M", bound=BaseModel)

_WIRE = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, str_max_length=256)

# RFC 3339 date-time with a zone, the only form on the wire. pydantic's own parser also
# takes "2026-11-01 08:00Z" (no seconds, a space): stricter here, and the same pattern
# goes into the schema, so a third-party validator and the agent draw the line alike.
RFC3339 = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])"
           r":[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
_RFC3339_RE = re.compile(RFC3339)


def _rfc3339(value: Any) -> Any:
    # Python-side construction passes datetimes; anything else from the wire must be a
    # string in the form above (an epoch number is refused by the strict datetime after).
    if isinstance(value, str):
        if not _RFC3339_RE.match(value):
            raise ValueError("not an RFC 3339 date-time with a time zone")
        return datetime.fromisoformat(value)
    return value


def _integral(value: Any) -> Any:
    # 5.0 and 1e3 are the JSON numbers 5 and 1000 (JSON Schema's "integer" says so too);
    # a string or a bool stays what it is and the strict int refuses it.
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# The validator goes last: on top of a wrapped int, pydantic would render the bounds as
# non-standard "ge"/"le" keywords that JSON Schema validators ignore.
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ), BeforeValidator(_integral)]
Counter = Annotated[int, Field(ge=0, le=10**12), BeforeValidator(_integral)]

WireTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339),
                     Field(json_schema_extra={"pattern": RFC3339})]


def _unit_limits() -> list[JsonSchemaValue]:
    """Per-unit ceilings of level and capacity as if/then clauses (percent is the default)."""
    clauses: list[JsonSchemaValue] = []
    for unit, ceiling in MAX_LEVEL.items():
        cond: JsonSchemaValue = {"properties": {"unit": {"const": unit.value}}}
        if unit is not Unit.PERCENT:
            cond["required"] = ["unit"]
        clauses.append({"if": cond, "then": {"properties": {
            "level": {"maximum": ceiling}, "capacity": {"maximum": ceiling},
        }}})
    return clauses


# The model validators below, written out for JSON Schema (what a third party checks).
_CONSUMABLE_SCHEMA: JsonSchemaValue = {
    "allOf": _unit_limits(),
    "anyOf": [
        {"required": ["level"], "properties": {"level": {"type": "number"}}},
        {"required": ["state"], "properties": {"state": {"type": "string"}}},
    ],
}


class Consumable(BaseModel):
    """One consumable inside a device: a cartridge, the milk on the scale, a CGM sensor.

    Needs a level or a state. Checked by the agent but not expressible in JSON Schema:
    level at most 1.1 x capacity when both are given.
    """

    model_config = ConfigDict(**_WIRE, json_schema_extra=_CONSUMABLE_SCHEMA)

    id: Identifier
    sku: Sku | None = None
    level: Annotated[float, Field(ge=0)] | None = None
    unit: Unit = Unit.PERCENT
    capacity: Annotated[float, Field(gt=0)] | None = None
    state: CoarseState | None = None
    counters: dict[Identifier, Counter] | None = Field(
        default=None, max_length=8
    )

    @model_validator(mode="after")
    def _plausible(self) -> Consumable:
        if self.level is None and self.state is None:
            raise ValueError("a consumable needs a level or a state")
        ceiling = MAX_LEVEL[self.unit]
        if self.capacity is not None and self.capacity > ceiling:
            raise ValueError(f"capacity above {ceiling} {self.unit}")
        if self.level is not None:
            if self.level > ceiling:
                raise ValueError(f"level above {ceiling} {self.unit}")
            # Scales drift a little above a full pack; 10 % is generous, 10x is not a sensor.
            if self.capacity is not None and self.level > self.capacity * 1.1:
                raise ValueError("level above capacity")
        return self


class StateMessage(BaseModel):
    """A device's periodic report of its consumables.

    Checked by the agent but not expressible in JSON Schema: consumable ids are unique,
    device_id equals the topic's, ts at most ingest.max_clock_skew_s ahead of the gateway.
    """

    model_config = _WIRE

    device_id: Identifier
    seq: Seq
    ts: WireTime
    kind: DeviceKind
    consumables: list[Consumable] = Field(min_length=1, max_length=MAX_CONSUMABLES)
    fw: Annotated[str, StringConstraints(max_length=32)] | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> StateMessage:
        ids = [c.id for c in self.consumables]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate consumable id")
        return self


class StatusMessage(BaseModel):
    """Retained online/offline marker; the offline form is also the device's last will."""

    model_config = _WIRE

    state: Literal["online", "offline"]
    ts: WireTime | None = None


class EventType(StrEnum):
    CARTRIDGE_REPLACED = "cartridge_replaced"
    REFILLED = "refilled"
    SENSOR_REPLACED = "sensor_replaced"
    SENSOR_FAILED = "sensor_failed"
    FALL_ALERT = "fall_alert"
    LOW_BATTERY = "low_battery"


class EventMessage(BaseModel):
    """Something that happened on the device, such as a cartridge change."""

    model_config = _WIRE

    device_id: Identifier
    seq: Seq
    ts: WireTime
    type: EventType
    consumable_id: Identifier | None = None


@dataclass(slots=True, frozen=True)
class Topic:
    """A parsed device topic."""

    device_id: str
    channel: Channel


def device_topic(device_id: str, channel: Channel | str) -> str:
    """Build the topic a device publishes ``channel`` on."""
    return f"{TOPIC_ROOT}/{device_id}/{Channel(channel).value}"


def parse_topic(topic: str) -> Topic:
    """Parse a device topic strictly: exactly root/<id>/<channel>, nothing else.

    Rejects wildcards, empty levels, ``..`` and over-long ids even if the broker let
    them through (a topic like ``a/%u/../other`` passes a literal ACL).
    """
    prefix = TOPIC_ROOT + "/"
    if len(topic) > 200 or not topic.startswith(prefix):
        raise PayloadError("bad_topic", "not a device topic")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2:
        raise PayloadError("bad_topic", "wrong number of levels")
    device_id, channel = parts
    if not _ID_RE.match(device_id):
        raise PayloadError("bad_topic", "invalid device id")
    try:
        return Topic(device_id, Channel(channel))
    except ValueError:
        raise PayloadError("bad_topic", "unknown channel") from None


def _validate(model: type[M], payload: bytes) -> M:
    """Parse and validate in one strict pass: no coercion ("5", true, "40" stay wrong),
    RFC 8259 JSON in UTF-8 only (UTF-16/32, a BOM, NaN or a lone surrogate are bad_json)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", f"{len(payload)} bytes")
    try:
        return model.model_validate_json(payload, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            raise PayloadError("bad_json") from None
        where = ".".join(str(p) for p in first["loc"]) or "message"
        # Only the location and pydantic's error type: never the offending value.
        raise PayloadError("schema", f"{where}: {first['type']}") from None


def parse_state(topic: Topic, payload: bytes) -> StateMessage:
    """Validate a state payload against its (already parsed) topic."""
    msg = _validate(StateMessage, payload)
    if msg.device_id != topic.device_id:
        raise PayloadError("device_mismatch", "payload device_id differs from topic")
    return msg


def parse_event(topic: Topic, payload: bytes) -> EventMessage:
    """Validate an event payload against its topic."""
    msg = _validate(EventMessage, payload)
    if msg.device_id != topic.device_id:
        raise PayloadError("device_mismatch", "payload device_id differs from topic")
    return msg


def parse_status(payload: bytes) -> StatusMessage:
    """Validate a retained status payload."""
    return _validate(StatusMessage, payload)


def encode(msg: BaseModel) -> bytes:
    """Serialise a wire model compactly (what devices and the simulator publish)."""
    return msg.model_dump_json(exclude_none=True).encode()


def json_schemas() -> JsonSchemaValue:
    """The device protocol as one JSON Schema document, as committed in docs/."""
    return document(
        "replenish-agent device protocol v1",
        (StateMessage, StatusMessage, EventMessage),
        topics={
            "state": {"topic": f"{TOPIC_ROOT}/<device_id>/state",
                      "payload": "#/$defs/StateMessage"},
            "status": {"topic": f"{TOPIC_ROOT}/<device_id>/status",
                       "payload": "#/$defs/StatusMessage"},
            "events": {"topic": f"{TOPIC_ROOT}/<device_id>/events",
                       "payload": "#/$defs/EventMessage"},
        },
        max_payload_bytes=MAX_PAYLOAD_BYTES,
    )


def schema_text() -> str:
    """The committed ``docs/protocol.schema.json`` content (``make schema`` writes it)."""
    return json.dumps(json_schemas(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(schema_text())
