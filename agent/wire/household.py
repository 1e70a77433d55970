"""Household notifications and Home Assistant discovery, as pure message builders.

Nothing here touches the network: functions take plain views of the agent's state and
return :class:`Outgoing` messages; :mod:`agent.household.link` publishes them. Topics::

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

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from agent.wire.device import HOUSEHOLD_ROOT

COMMAND_PREFIX = f"{HOUSEHOLD_ROOT}/commands"
EVENTS_TOPIC = f"{HOUSEHOLD_ROOT}/events"
ALERTS_TOPIC = f"{HOUSEHOLD_ROOT}/alerts"  # Home Assistant event entity
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = "homeassistant/status"

_MODEL = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
# Money goes to the household as a decimal string ("64.90"), never a float: the amount a
# button shows is the amount the ledger holds, to the cent.
MONEY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,4})?$"
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False),
                  WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN})]


class Verb(StrEnum):
    APPROVE = "approve"
    CANCEL = "cancel"
    SNOOZE = "snooze"
    ACK = "ack"  # a caregiver acknowledges an urgent alert (ref a<alert id>)
    ORDER_NOW = "order_now"  # the household wants a refill now (ref <device>:<consumable>)


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
    ALERT = "alert"  # an urgent device event (fall, failed sensor) sent to caregivers
    ORDER_NOW = "order_now"  # the answer to an "order now" tap: queued, proposed, on its way


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
    unit_price: Money
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
    quantity: int | None = Field(default=None, ge=1, le=99)  # order_now only
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


def event(kind: EventKind, at: datetime, message: str, **fields: Any) -> HouseholdEvent:
    """Shorthand for building an event with optional device/consumable/ref."""
    return HouseholdEvent(kind=kind, at=at, message=message, **fields)


CommandResult = Literal[
    "accepted", "unknown", "expired", "already_decided", "denied", "unavailable",
    "already_on_order", "needs_sku",
]
