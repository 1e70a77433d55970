"""Home Assistant MQTT discovery for the household topics, as pure message builders.

Configs point Home Assistant at the retained household states of
:mod:`agent.wire.household`; an empty retained payload removes an entity.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from agent import __version__
from agent.domain import JsonObject
from agent.wire.household import (
    ALERTS_TOPIC,
    COMMAND_PREFIX,
    DEFAULT_DISCOVERY_PREFIX,
    Outgoing,
    Proposal,
    Verb,
    availability_topic,
    consumable_topic,
)

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


def _device_block(device: DeviceInfo) -> JsonObject:
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
        config: JsonObject | None) -> Outgoing:
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
        level: JsonObject = {
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
        days: JsonObject = {
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
        order_now: JsonObject = {
            "unique_id": f"{unique}_order_now",
            "name": f"Order {consumable_id} now",
            "command_topic": f"{COMMAND_PREFIX}/{Verb.ORDER_NOW.value}",
            "payload_press": json.dumps({"ref": f"{device.device_id}:{consumable_id}",
                                         "source": "homeassistant"}),
            "availability": availability,
            "device": _device_block(device),
        }
        order_id = f"{_ha_id(consumable_id)}_order_now"
        out.append(_ha(prefix, "sensor", device.device_id, level_id, None if remove else level))
        out.append(_ha(prefix, "sensor", device.device_id, days_id, None if remove else days))
        out.append(_ha(prefix, "button", device.device_id, order_id,
                       None if remove else order_now))
    return out


def discovery_for_proposal(proposal: Proposal, device: DeviceInfo,
                           prefix: str = DEFAULT_DISCOVERY_PREFIX,
                           remove: bool = False) -> list[Outgoing]:
    """Approve and cancel buttons for one open proposal (or their removal once decided)."""
    out: list[Outgoing] = []
    for verb in (Verb.APPROVE, Verb.CANCEL):
        object_id = f"proposal_{_ha_id(proposal.proposal_id)}_{verb.value}"
        config: JsonObject = {
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


def alert_discovery(event_types: list[str],
                    prefix: str = DEFAULT_DISCOVERY_PREFIX) -> Outgoing:
    """One Home Assistant ``event`` entity for the gateway's urgent alerts."""
    config = {
        "unique_id": "replenish_alerts",
        "name": "Urgent alert",
        "state_topic": ALERTS_TOPIC,
        "event_types": sorted(event_types),
        "device": {"identifiers": ["replenish_gateway"], "name": "replenish-agent",
                   "manufacturer": "replenish-agent", "sw_version": __version__},
    }
    topic = f"{prefix}/event/replenish_gateway/alerts/config"
    return Outgoing(topic, json.dumps(config, sort_keys=True).encode(), True)
