"""The discovery abbreviations a reading source meets.

Home Assistant lets a discovery payload abbreviate its keys (``stat_t`` for
``state_topic``); the full list is ``homeassistant/components/mqtt/abbreviations.py``
(https://github.com/home-assistant/core/blob/dev/homeassistant/components/mqtt/abbreviations.py,
documented at https://www.home-assistant.io/integrations/mqtt/#discovery-payload). Only
the keys a read-only source uses are expanded here; any other key is kept as it came and
ignored.
"""

from __future__ import annotations

from typing import Any

ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "dev": "device",
    "dev_cla": "device_class",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "exp_aft": "expire_after",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "name": "name",
    "obj_id": "object_id",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "stat_cla": "state_class",
    "stat_t": "state_topic",
    "stat_tpl": "state_template",
    "stat_val_tpl": "state_value_template",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}

DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "sa": "suggested_area",
}


def _topic_key(key: str) -> bool:
    return key == "topic" or key.endswith("_topic")


# Any-valued: a foreign device's JSON as parsed; every value is narrowed with
# isinstance where it is read (agent.sources.ha_discovery.config).
def expand(payload: dict[str, Any]) -> dict[str, Any]:
    """Full key names, and ``~`` expanded in every topic (HA: a leading or trailing ``~``
    in a ``*_topic`` value is replaced by the value of the ``~`` key)."""
    base = payload.get("~")
    out: dict[str, Any] = {}  # the same foreign JSON, keys expanded
    for key, value in payload.items():
        name = ABBREVIATIONS.get(key, key)
        if name == "device" and isinstance(value, dict):
            value = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in value.items()}
        if name == "availability" and isinstance(value, list):
            value = [expand({**a, "~": base} if base is not None else a)
                     for a in value if isinstance(a, dict)]
        out[name] = value
    if isinstance(base, str):
        for key, value in list(out.items()):
            if _topic_key(key) and isinstance(value, str):
                if value.startswith("~"):
                    value = base + value[1:]
                if value.endswith("~"):
                    value = value[:-1] + base
                out[key] = value
    out.pop("~", None)
    return out
