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
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from agent.domain import CoarseState, DeviceKind, Unit
from agent.errors import PayloadError

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


class Consumable(BaseModel):
    """One consumable inside a device: a cartridge, the milk on the scale, a CGM sensor."""

    model_config = _WIRE

    id: Identifier
    sku: Sku | None = None
    level: Annotated[float, Field(ge=0)] | None = None
    unit: Unit = Unit.PERCENT
    capacity: Annotated[float, Field(gt=0)] | None = None
    state: CoarseState | None = None
    counters: dict[Identifier, Annotated[int, Field(ge=0, le=10**12)]] | None = Field(
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
    """A device's periodic report of its consumables."""

    model_config = _WIRE

    device_id: Identifier
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    ts: AwareDatetime
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
    ts: AwareDatetime | None = None


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
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    ts: AwareDatetime
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


def _decode(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", f"{len(payload)} bytes")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError("bad_json") from None


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        # Only the location and pydantic's error type: never the offending value.
        raise PayloadError("schema", f"{where}: {first['type']}") from None


def parse_state(topic: Topic, payload: bytes) -> StateMessage:
    """Validate a state payload against its (already parsed) topic."""
    msg = _validate(StateMessage, _decode(payload))
    if msg.device_id != topic.device_id:
        raise PayloadError("device_mismatch", "payload device_id differs from topic")
    return msg


def parse_event(topic: Topic, payload: bytes) -> EventMessage:
    """Validate an event payload against its topic."""
    msg = _validate(EventMessage, _decode(payload))
    if msg.device_id != topic.device_id:
        raise PayloadError("device_mismatch", "payload device_id differs from topic")
    return msg


def parse_status(payload: bytes) -> StatusMessage:
    """Validate a retained status payload."""
    return _validate(StatusMessage, _decode(payload))


def encode(msg: BaseModel) -> bytes:
    """Serialise a wire model compactly (what devices and the simulator publish)."""
    return msg.model_dump_json(exclude_none=True).encode()


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every device-side wire model, as committed in docs/."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "replenish-agent device protocol v1",
        "topics": {
            "state": f"{TOPIC_ROOT}/<device_id>/state",
            "status": f"{TOPIC_ROOT}/<device_id>/status",
            "events": f"{TOPIC_ROOT}/<device_id>/events",
        },
        "$defs": {
            m.__name__: m.model_json_schema()
            for m in (StateMessage, StatusMessage, EventMessage)
        },
    }


def schema_text() -> str:
    """The committed ``docs/protocol.schema.json`` content (``make schema`` writes it)."""
    return json.dumps(json_schemas(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(schema_text())
