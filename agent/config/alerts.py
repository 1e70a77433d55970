"""Alert settings: the caregivers to tell about urgent device events, and the rules of who
hears about which event and how it escalates (docs/alerts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from agent.config.io import SECTION


class AlertContact(BaseModel):
    """A caregiver: a name and a secret file with their Apprise URL(s), one per line."""

    model_config = SECTION

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
    url_file: Path


class AlertRule(BaseModel):
    """Who is told about one device event type, and how it escalates."""

    model_config = SECTION

    event: Literal["fall_alert", "sensor_failed", "low_battery"]
    contacts: list[str] = Field(min_length=1)
    renotify_after_min: float = Field(default=5.0, gt=0)
    escalate_after_min: float = Field(default=10.0, gt=0)
    # Events of one device within this window fold into the open alert (a flood of falls
    # from one wearable is one escalating alert, not a hundred messages).
    fold_window_min: float = Field(default=30.0, gt=0)


class AlertSettings(BaseModel):
    """Urgent device events sent to caregivers (docs/alerts.md); off until rules exist."""

    model_config = SECTION

    # The only words about the household that leave the house with an alert.
    household_label: str = Field(default="home", min_length=1, max_length=64)
    contacts: list[AlertContact] = []
    rules: list[AlertRule] = []
    interval_s: float = Field(default=1.0, ge=0.2)
    send_timeout_s: float = Field(default=20.0, gt=0)
    # The web app's address as caregivers reach it (e.g. https://gateway.example:8470):
    # messages then carry a link to acknowledge. None: acknowledge by CLI or MQTT only.
    ack_url_base: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # The key that signs those links (not the web login's): None, next to the database.
    ack_key_file: Path | None = None

    @field_validator("rules")
    @classmethod
    def _one_rule_per_event(cls, value: list[AlertRule]) -> list[AlertRule]:
        events = [r.event for r in value]
        if len(events) != len(set(events)):
            raise ValueError("one rule per event type")
        return value
