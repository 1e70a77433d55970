"""Source settings: calendars, foreign MQTT devices (Zigbee2MQTT, Valetudo, explicit
mappings), Nightscout and household buttons ([sources.md](../docs/sources.md))."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agent.config.io import SECTION


class CalendarSettings(BaseModel):
    """Calendar subscriptions (``replenish away subscribe``): how often and what is away."""

    model_config = SECTION

    # Where the secret URL files and last good copies live (None: beside the database).
    dir: Path | None = None
    refresh_interval_min: float = Field(default=60.0, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)
    deadline_s: float = Field(default=30.0, gt=0)
    # An event is an absence when it has this category (case-insensitive) ...
    category: str | None = None
    # ... or, without a category, when its summary or categories contain one of these
    # (None: the built-in away/vacation/holiday/travel words).
    keywords: list[str] | None = None


class BatterySkuSettings(BaseModel):
    """The product for one battery type: ``CR2032 = { sku = "CR2032-10", pack_size = 10 }``."""

    model_config = SECTION

    sku: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
    pack_size: int = Field(default=1, ge=1, le=1000)  # cells in one pack


class Zigbee2MqttSettings(BaseModel):
    model_config = SECTION

    enabled: bool = True
    prefix: str = Field(default="zigbee2mqtt", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Friendly name or IEEE address -> battery type, for models not in the bundled table.
    battery_types: dict[str, str] = {}
    # Battery type -> the SKU that restocks it and the cells in one pack (docs/sources.md).
    battery_skus: dict[str, BatterySkuSettings] = {}
    # Cells keep for years: one order of a type covers every device of that type due
    # within this many days, not only the first one (the planner's window is for baskets).
    battery_window_days: float = Field(default=30.0, ge=0, le=365)


class MappingSettings(BaseModel):
    """A device without discovery: a topic, where the number is, and what it measures."""

    model_config = SECTION

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    topic: str = Field(min_length=1, max_length=256)
    # value_template subset, e.g. "{{ value_json.weight | float }}" (None: the raw payload)
    value_template: str | None = None
    unit: Literal["%", "g", "kg", "ml", "l", "count", "min", "h", "d"] = "%"
    consumable_id: str = Field(default="level", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    sku: str | None = None
    capacity: float | None = Field(default=None, gt=0)


class ValetudoSettings(BaseModel):
    """A Valetudo robot's consumables from its own MQTT topics (no HA discovery needed)."""

    model_config = SECTION

    prefix: str = Field(default="valetudo", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # consumable (brush-main, brush-side_right, filter-main, mop ...) -> the robot's SKU
    skus: dict[str, str] = {}
    # consumable -> hours of running time a new part lasts (bundled defaults otherwise)
    life_hours: dict[str, float] = {}


class NightscoutSettings(BaseModel):
    """A Nightscout site (CGM wearer): polled over HTTPS, read-only."""

    model_config = SECTION

    url: str = Field(pattern=r"^https?://")
    name: str = Field(default="nightscout", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")
    # An access token (Admin Tools -> Subjects, role "readable"), sent as ?token=.
    token_file: Path | None = None
    # Or the site's API_SECRET, sent SHA-1 hashed in the API-SECRET header.
    api_secret_file: Path | None = None
    poll_interval_min: float = Field(default=15.0, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)
    sensor_life_days: float = Field(default=10.0, gt=0)
    site_life_days: float = Field(default=3.0, gt=0)
    reservoir_units: float = Field(default=300.0, gt=0)
    # consumable id (cgm-sensor, infusion-set, insulin, pump-battery) -> vendor SKU
    skus: dict[str, str] = {}


_CONSUMABLE_KEY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}/[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class ButtonSettings(BaseModel):
    """A physical button (Zigbee2MQTT, ESPHome ...) mapped to "order now" for a consumable."""

    model_config = SECTION

    topic: str = Field(min_length=1, max_length=256)
    # Where the press is in the payload, e.g. "{{ value_json.action }}" (None: raw payload).
    value_template: str | None = None
    press: str = Field(min_length=1, max_length=64)  # the value that means "pressed"
    order_now: str = Field(pattern=_CONSUMABLE_KEY)  # DEVICE/CONSUMABLE
    quantity: int | None = Field(default=None, ge=1, le=99)


class SourcesSettings(BaseModel):
    """Foreign devices on the household broker, read-only (docs/sources.md)."""

    model_config = SECTION

    discovery: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    zigbee2mqtt: Zigbee2MqttSettings = Zigbee2MqttSettings()
    mappings: list[MappingSettings] = []
    buttons: list[ButtonSettings] = []
    nightscout: NightscoutSettings | None = None
    valetudo: ValetudoSettings | None = None  # the section switches the preset on
    drain_interval_s: float = Field(default=2.0, ge=0.1)
