"""Household notifications and Home Assistant discovery, as pure message builders.

Nothing here touches the network: functions take plain views of the agent's state and
return :class:`Outgoing` messages; :mod:`agent.household` publishes them. Topics::

    replenish/v1/household/consumables/<device>/<consumable>   retained  ConsumableState
    replenish/v1/household/devices/<device>/availability       retained  "online"/"offline"
    replenish/v1/household/proposals/<proposal_id>             retained  Proposal ("" = decided)
    replenish/v1/household/events                              QoS 1     HouseholdEvent
    replenish/v1/household/commands/<verb>                     household -> agent

Orders are not retained state: placing, shipping, delivery and cancellation reach the
household as events (``ref`` ``o<order>``). Home Assistant reads only
``replenish/v1/household/#`` and ``homeassistant/#`` (the household account cannot read
raw device topics), so device availability is mirrored under the household tree.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from agent import __version__
from agent.protocol import HOUSEHOLD_ROOT

COMMAND_PREFIX = f"{HOUSEHOLD_ROOT}/commands"
EVENTS_TOPIC = f"{HOUSEHOLD_ROOT}/events"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = "homeassistant/status"

_MODEL = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class Verb(StrEnum):
    APPROVE = "approve"
    CANCEL = "cancel"
    SNOOZE = "snooze"


class EventKind(StrEnum):
    REMINDER = "reminder"
    CARE_TIP = "care_tip"
    PROPOSAL = "proposal"
    ORDER_ANNOUNCED = "order_announced"  # auto order in its pre-notice window
    ORDER_PLACED = "order_placed"
    ORDER_SHIPPED = "order_shipped"
    ORDER_DELIVERED = "order_delivered"
    ORDER_CANCELLED = "order_cancelled"
    PROBLEM = "problem"


class ConsumableState(BaseModel):
    """Retained per consumable: what a dashboard shows."""

    model_config = _MODEL

    device_id: str
    consumable_id: str
    level: float | None
    unit: str
    state: str | None = None
    days_left: float | None = None
    days_left_p10: float | None = None
    confidence: str
    mode: str
    next_order_at: AwareDatetime | None = None
    updated_at: AwareDatetime


class Proposal(BaseModel):
    """An order the household must approve (``confirm`` mode, or an auto order that
    turned into a proposal because the price or product changed)."""

    model_config = _MODEL

    proposal_id: Ref
    device_id: str
    consumable_id: str
    sku: str
    product: str
    quantity: int = Field(ge=1)
    unit_price: float = Field(ge=0)
    currency: str
    expected_arrival: AwareDatetime | None = None
    expires_at: AwareDatetime
    reason: str = ""


class HouseholdEvent(BaseModel):
    """A moment the household may want to hear about."""

    model_config = _MODEL

    kind: EventKind
    at: AwareDatetime
    device_id: str | None = None
    consumable_id: str | None = None
    message: str
    ref: str | None = None  # proposal or order reference


class Command(BaseModel):
    """What a phone app or a Home Assistant button sends on ``commands/<verb>``."""

    model_config = _MODEL

    ref: Ref  # proposal id (approve) or proposal/order reference (cancel, snooze)
    until: AwareDatetime | None = None  # snooze only
    source: Annotated[str, StringConstraints(max_length=64)] = "mqtt"


@dataclass(slots=True, frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool
    qos: int = 1


def _dump(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()


def consumable_topic(device_id: str, consumable_id: str) -> str:
    return f"{HOUSEHOLD_ROOT}/consumables/{device_id}/{consumable_id}"


def availability_topic(device_id: str) -> str:
    return f"{HOUSEHOLD_ROOT}/devices/{device_id}/availability"


def proposal_topic(proposal_id: str) -> str:
    return f"{HOUSEHOLD_ROOT}/proposals/{proposal_id}"


def consumable_message(state: ConsumableState) -> Outgoing:
    return Outgoing(consumable_topic(state.device_id, state.consumable_id), _dump(state), True)


def availability_message(device_id: str, online: bool) -> Outgoing:
    return Outgoing(availability_topic(device_id), b"online" if online else b"offline", True)


def proposal_message(proposal: Proposal) -> Outgoing:
    return Outgoing(proposal_topic(proposal.proposal_id), _dump(proposal), True)


def proposal_cleared(proposal_id: str) -> Outgoing:
    """An empty retained payload deletes the retained proposal."""
    return Outgoing(proposal_topic(proposal_id), b"", True)


def event_message(event: HouseholdEvent) -> Outgoing:
    return Outgoing(EVENTS_TOPIC, _dump(event), False)


def parse_command(topic: str, payload: bytes) -> tuple[Verb, Command]:
    """Parse a household command; raises ValueError with a short reason."""
    if not topic.startswith(COMMAND_PREFIX + "/"):
        raise ValueError("not a command topic")
    verb = Verb(topic[len(COMMAND_PREFIX) + 1 :])
    if len(payload) > 4096:
        raise ValueError("command too large")
    return verb, Command.model_validate_json(payload)


# ---- Home Assistant MQTT discovery ------------------------------------------------

_CLEAN = re.compile(r"[A-Za-z0-9-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")

_UNITS: dict[str, tuple[str | None, str | None]] = {
    # our unit -> (HA unit_of_measurement, HA device_class)
    "percent": ("%", None),
    "grams": ("g", "weight"),
    "millilitres": ("mL", "volume_storage"),
    "count": (None, None),
    "days": ("d", "duration"),
}


def _ha_id(*parts: str) -> str:
    """``parts`` joined by ``_`` as Home Assistant accepts in topics (``[A-Za-z0-9_-]``).

    Injective, so two devices or consumables never share an entity: parts of letters,
    digits and ``-`` are kept as they are (the ``_`` between them is unambiguous); if any
    part has another character (``_`` included), those become ``_`` and a digest of the
    exact parts is appended. Such an id has more ``_`` than a kept one, so the two kinds
    never meet, and digests of different parts differ.
    """
    if all(_CLEAN.fullmatch(p) for p in parts):
        return "_".join(parts)
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    readable = "_".join(_UNSAFE.sub("_", p).strip("_") or "x" for p in parts)
    return f"{readable}_{digest}"


def _node(device_id: str) -> str:
    return f"replenish_{_ha_id(device_id)}"


@dataclass(slots=True, frozen=True)
class DeviceInfo:
    device_id: str
    kind: str
    consumables: tuple[tuple[str, str], ...]  # (consumable_id, unit)


def _device_block(device: DeviceInfo) -> dict[str, Any]:
    return {
        "identifiers": [_node(device.device_id)],
        "name": device.device_id,
        "manufacturer": "replenish-agent",
        "model": device.kind,
        "sw_version": __version__,
    }


def _config_topic(prefix: str, component: str, device_id: str, object_id: str) -> str:
    return f"{prefix}/{component}/{_node(device_id)}/{object_id}/config"


def _ha(prefix: str, component: str, device_id: str, object_id: str,
        config: dict[str, Any] | None) -> Outgoing:
    payload = b"" if config is None else json.dumps(config, sort_keys=True).encode()
    return Outgoing(_config_topic(prefix, component, device_id, object_id), payload, True)


def discovery_for_device(device: DeviceInfo, prefix: str = DEFAULT_DISCOVERY_PREFIX,
                         remove: bool = False) -> list[Outgoing]:
    """Level and days-left sensors for each consumable of a device (or their removal).

    ``unique_id`` depends only on device and consumable ids, so entities survive
    restarts; removal publishes the same topics with empty retained payloads.
    """
    out: list[Outgoing] = []
    availability = [{"topic": availability_topic(device.device_id)}]
    for consumable_id, unit in device.consumables:
        state_topic = consumable_topic(device.device_id, consumable_id)
        ha_unit, device_class = _UNITS.get(unit, (None, None))
        # Constant suffixes keep the ids of one kind injective and kinds apart.
        level_id = f"{_ha_id(consumable_id)}_level"
        days_id = f"{_ha_id(consumable_id)}_days_left"
        unique = f"replenish_{_ha_id(device.device_id, consumable_id)}"
        level: dict[str, Any] = {
            "unique_id": f"{unique}_level",
            "name": f"{consumable_id} level",
            "state_topic": state_topic,
            "value_template": "{{ value_json.level }}",
            "state_class": "measurement",
            "availability": availability,
            "device": _device_block(device),
        }
        if ha_unit:
            level["unit_of_measurement"] = ha_unit
        if device_class:
            level["device_class"] = device_class
        days: dict[str, Any] = {
            "unique_id": f"{unique}_days_left",
            "name": f"{consumable_id} days left",
            "state_topic": state_topic,
            "value_template": "{{ value_json.days_left }}",
            "json_attributes_topic": state_topic,
            "unit_of_measurement": "d",
            "device_class": "duration",
            "state_class": "measurement",
            "availability": availability,
            "device": _device_block(device),
        }
        out.append(_ha(prefix, "sensor", device.device_id, level_id, None if remove else level))
        out.append(_ha(prefix, "sensor", device.device_id, days_id, None if remove else days))
    return out


def discovery_for_proposal(proposal: Proposal, device: DeviceInfo,
                           prefix: str = DEFAULT_DISCOVERY_PREFIX,
                           remove: bool = False) -> list[Outgoing]:
    """Approve and cancel buttons for one open proposal (or their removal once decided)."""
    out: list[Outgoing] = []
    for verb in (Verb.APPROVE, Verb.CANCEL):
        object_id = f"proposal_{_ha_id(proposal.proposal_id)}_{verb.value}"
        config = {
            "unique_id": f"replenish_{_ha_id(proposal.proposal_id)}_{verb.value}",
            "name": (f"{verb.value.capitalize()} {proposal.quantity}x {proposal.product} "
                     f"at {proposal.unit_price:.2f} {proposal.currency}"),
            "command_topic": f"{COMMAND_PREFIX}/{verb.value}",
            "payload_press": json.dumps({"ref": proposal.proposal_id, "source": "homeassistant"}),
            "availability": [{"topic": availability_topic(device.device_id)}],
            "device": _device_block(device),
        }
        out.append(_ha(prefix, "button", device.device_id, object_id, None if remove else config))
    return out


def event(kind: EventKind, at: datetime, message: str, **fields: Any) -> HouseholdEvent:
    """Shorthand for building an event with optional device/consumable/ref."""
    return HouseholdEvent(kind=kind, at=at, message=message, **fields)


CommandResult = Literal[
    "accepted", "unknown", "expired", "already_decided", "denied", "unavailable"
]
