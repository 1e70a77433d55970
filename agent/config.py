"""One settings tree: a TOML file, ``REPLENISH_`` environment overrides, secrets from files.

Precedence: environment (``REPLENISH_MQTT__PORT=1884``) over the TOML file over defaults.
Secrets (MQTT password, vendor token) are never settings values: the TOML names a file,
and a relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first (systemd
``LoadCredential=``). Every problem is reported as file, key and reason (exit code 2).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from agent.errors import ConfigError
from agent.logs import register_secret

DEFAULT_CONFIG_PATH = Path("/etc/replenish-agent/agent.toml")
DEFAULT_DB_PATH = Path("/var/lib/replenish-agent/agent.db")
DEFAULT_CLIENT_ID = "replenish-agent"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
ENV_PREFIX = "REPLENISH_"

# Keys that would put a secret into the TOML itself: refused with a pointer to the file key.
_SECRET_KEYS = {"password": "password_file", "token": "token_file", "secret": "*_file"}

_SECTION = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(BaseModel):
    model_config = _SECTION

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = "agent"
    password_file: Path | None = None
    tls_ca_file: Path | None = None
    client_id: str = Field(default=DEFAULT_CLIENT_ID, min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=DEFAULT_SESSION_EXPIRY_S, ge=0)


class BrokerSettings(BaseModel):
    """The gateway's Mosquitto files, for ``replenish device`` (None: Debian defaults,
    see :mod:`agent.ops.provisioning`)."""

    model_config = _SECTION

    password_file: Path | None = None
    acl_file: Path | None = None
    registry_file: Path | None = None
    ca_dir: Path | None = None
    pid_file: Path | None = None
    reload_command: str | None = None
    household_user: str | None = None
    advertise_host: str | None = None
    tls_port: int | None = Field(default=None, ge=1, le=65535)
    cert_port: int | None = Field(default=None, ge=1, le=65535)


class StorageSettings(BaseModel):
    model_config = _SECTION

    path: Path = DEFAULT_DB_PATH


class IngestSettings(BaseModel):
    model_config = _SECTION

    # Group commit: the writer takes whatever has queued up, at most this many at once.
    batch_size: int = Field(default=1_000, ge=1, le=10_000)
    # Unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 Receive
    # Maximum); the writer acknowledges only after commit, so this bounds throughput.
    receive_maximum: int = Field(default=2_000, ge=1, le=65_535)
    max_payload_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    # Token bucket per device: a device catching up after days offline sends a burst,
    # a broken or hostile one sends forever.
    per_device_rate: float = Field(default=50.0, gt=0)
    per_device_burst: int = Field(default=5_000, ge=1)
    rejects_kept: int = Field(default=1_000, ge=10)
    max_clock_skew_s: int = Field(default=86_400, ge=60)
    # When the gateway's clock counts as right: "synchronized" once NTP says so
    # (systemd-timesyncd / adjtimex); "always" for a gateway with a battery-backed RTC.
    # Until then, readings that look skewed are kept as pending, not rejected.
    # "flag": once ``clock_flag_file`` exists (systemd-timesyncd's own flag by default;
    # another NTP client, a GPS or an RTC hat can touch a file of its own when it has
    # set the clock), without asking the kernel or timedated.
    trust_clock: Literal["synchronized", "always", "flag"] = "synchronized"
    clock_flag_file: Path = Path("/run/systemd/timesync/synchronized")
    # Rejected messages are logged as one summary line per device per interval.
    reject_log_interval_s: float = Field(default=60.0, ge=0)
    # How often an idle writer wakes up to judge pending readings again.
    idle_wakeup_s: float = Field(default=5.0, gt=0, le=60)


class VendorSettings(BaseModel):
    model_config = _SECTION

    # Orders, the ledger and the audit log name the vendor they went to.
    name: str = Field(default="sandbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    base_url: str = "http://127.0.0.1:8080"
    token_file: Path | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    deadline_s: float = Field(default=15.0, gt=0)
    test_mode: bool = False
    # How often the outbox sends due orders and follows placed ones.
    dispatch_interval_s: float = Field(default=30.0, ge=0.2)
    # An automatic order is announced this long before it is sent (time to cancel).
    pre_notice_h: float = Field(default=6.0, ge=0)
    # Consumables of the same vendor due within this window join an order going out.
    consolidate_window_days: float = Field(default=3.0, ge=0)
    # ... and those due within this slack join when together they reach free shipping.
    free_shipping_slack_days: float = Field(default=7.0, ge=0)
    # How often a placed order's status is fetched until it is delivered.
    poll_interval_min: float = Field(default=60.0, ge=1)
    # A resend waits this long after the last attempt, so a lookup by key sees its result;
    # an unknown outcome is looked up again after it, the gap doubling to poll_interval_min.
    settle_s: float = Field(default=30.0, ge=0)
    # An unknown outcome that may not be resent becomes 'lost' (the household is asked)
    # this long after the last attempt; never "not ordered", never re-ordered on its own.
    unknown_give_up_h: float = Field(default=48.0, gt=0)
    # After the household cancels a placed order the consumable is held this long (or
    # until consent is set again); then the forecast decides again.
    cancel_hold_days: float = Field(default=7.0, ge=0)
    # A Raspberry Pi has no RTC: decide and order only once NTP has set the clock.
    # Turn off only where time is known good without NTP (containers, simulations).
    require_synced_clock: bool = True


class PrinterSettings(BaseModel):
    model_config = _SECTION

    uri: str = Field(pattern=r"^ipps?://")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    poll_interval_s: int = Field(default=300, ge=10)


class ForecastSettings(BaseModel):
    model_config = _SECTION

    # P(no run-out before the delivery) per order: the level bench/forecast.py validates.
    service_level: float = Field(default=0.98, gt=0.5, lt=1.0)
    review_interval_h: float = Field(default=24.0, gt=0)
    interval_s: int = Field(default=900, ge=10)


class RetentionSettings(BaseModel):
    model_config = _SECTION

    # Five-minute readings are kept this long, hourly ones after: the forecast reads hourly
    # at most, so finer history only serves support looking at a recent incident.
    raw_days: int = Field(default=14, ge=1)


class HouseholdSettings(BaseModel):
    """MQTT notifications for phone apps and Home Assistant."""

    model_config = _SECTION

    enabled: bool = True
    homeassistant: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    proposal_ttl_h: float = Field(default=48.0, gt=0)
    sync_interval_s: float = Field(default=5.0, ge=0.2)
    # Levels, days left, availability and discovery: a dashboard needs them every minute,
    # not every few seconds (a flood of readings would become a flood of publishes).
    state_interval_s: float = Field(default=60.0, ge=0.2)
    # A device not heard from this long is announced as a problem (once per silence).
    silent_after_h: float = Field(default=24.0, gt=0)


class AlertContact(BaseModel):
    """A caregiver: a name and a secret file with their Apprise URL(s), one per line."""

    model_config = _SECTION

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
    url_file: Path


class AlertRule(BaseModel):
    """Who is told about one device event type, and how it escalates."""

    model_config = _SECTION

    event: Literal["fall_alert", "sensor_failed", "low_battery"]
    contacts: list[str] = Field(min_length=1)
    renotify_after_min: float = Field(default=5.0, gt=0)
    escalate_after_min: float = Field(default=10.0, gt=0)
    # Events of one device within this window fold into the open alert (a flood of falls
    # from one wearable is one escalating alert, not a hundred messages).
    fold_window_min: float = Field(default=30.0, gt=0)


class AlertSettings(BaseModel):
    """Urgent device events sent to caregivers (docs/alerts.md); off until rules exist."""

    model_config = _SECTION

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
class WebSettings(BaseModel):
    """``replenish web``: the household's pages (agent/web). No default password: the
    server refuses to start until ``replenish web set-password`` has written one."""

    model_config = _SECTION

    host: str = "0.0.0.0"
    port: int = Field(default=8470, ge=1, le=65535)
    # None: ``web-password`` and ``web-session-key`` next to the database (the state dir).
    password_file: Path | None = None
    session_key_file: Path | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    # Failed logins per client address within ``login_window_s`` before it must wait.
    login_attempts: int = Field(default=5, ge=1, le=100)
    login_window_s: float = Field(default=300.0, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
class CalendarSettings(BaseModel):
    """Calendar subscriptions (``replenish away subscribe``): how often and what is away."""

    model_config = _SECTION

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


class Zigbee2MqttSettings(BaseModel):
    model_config = _SECTION

    enabled: bool = True
    prefix: str = Field(default="zigbee2mqtt", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Friendly name or IEEE address -> battery type, for models not in the bundled table.
    battery_types: dict[str, str] = {}


class MappingSettings(BaseModel):
    """A device without discovery: a topic, where the number is, and what it measures."""

    model_config = _SECTION

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    topic: str = Field(min_length=1, max_length=256)
    # value_template subset, e.g. "{{ value_json.weight | float }}" (None: the raw payload)
    value_template: str | None = None
    unit: Literal["%", "g", "kg", "ml", "l", "count", "min", "h", "d"] = "%"
    consumable_id: str = Field(default="level", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    sku: str | None = None
    capacity: float | None = Field(default=None, gt=0)


class NightscoutSettings(BaseModel):
    """A Nightscout site (CGM wearer): polled over HTTPS, read-only."""

    model_config = _SECTION

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

    model_config = _SECTION

    topic: str = Field(min_length=1, max_length=256)
    # Where the press is in the payload, e.g. "{{ value_json.action }}" (None: raw payload).
    value_template: str | None = None
    press: str = Field(min_length=1, max_length=64)  # the value that means "pressed"
    order_now: str = Field(pattern=_CONSUMABLE_KEY)  # DEVICE/CONSUMABLE
    quantity: int | None = Field(default=None, ge=1, le=99)


class SourcesSettings(BaseModel):
    """Foreign devices on the household broker, read-only (docs/sources.md)."""

    model_config = _SECTION

    discovery: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    zigbee2mqtt: Zigbee2MqttSettings = Zigbee2MqttSettings()
    mappings: list[MappingSettings] = []
    buttons: list[ButtonSettings] = []
    nightscout: NightscoutSettings | None = None
    drain_interval_s: float = Field(default=2.0, ge=0.1)


class Settings(BaseSettings):
    """The whole configuration of one agent."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mqtt: MqttSettings = MqttSettings()
    broker: BrokerSettings = BrokerSettings()
    storage: StorageSettings = StorageSettings()
    ingest: IngestSettings = IngestSettings()
    vendor: VendorSettings = VendorSettings()
    printers: list[PrinterSettings] = []
    forecast: ForecastSettings = ForecastSettings()
    retention: RetentionSettings = RetentionSettings()
    household: HouseholdSettings = HouseholdSettings()
    alerts: AlertSettings = AlertSettings()
    web: WebSettings = WebSettings()
    calendar: CalendarSettings = CalendarSettings()
    sources: SourcesSettings = SourcesSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The household's IANA time zone ("Europe/Berlin") for dates it types and times it
    # is shown; None: the gateway's local zone (agent.clock.household_zone).
    time_zone: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+/-]{1,64}$")

    # Where this tree came from, for messages; not a setting.
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (an IANA name)") from None
        return value

    @field_validator("printers")
    @classmethod
    def _unique_printer_names(cls, value: list[PrinterSettings]) -> list[PrinterSettings]:
        names = [p.name for p in value if p.name]
        if len(names) != len(set(names)):
            raise ValueError("printer names must be unique")
        return value

    @model_validator(mode="after")
    def _alert_contacts_known(self) -> Settings:
        names = {c.name for c in self.alerts.contacts}
        for rule in self.alerts.rules:
            unknown = [c for c in rule.contacts if c not in names]
            if unknown:
                raise ValueError(f"alerts.rules {rule.event}: unknown contact {unknown[0]!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML arrives as init kwargs; the environment must win over it.
        return (_MappingEnvSource(settings_cls), init_settings)

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data, safe to log or ship in a support bundle.

        Secrets never live in the tree, only their file names, so nothing needs masking
        here beyond leaving the secret files unread.
        """
        return self.model_dump(mode="json")


def _reject_inline_secrets(data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _reject_inline_secrets(value, source, f"{path}.")
        elif key in _SECRET_KEYS:
            raise ConfigError(
                source, path, f"secrets are not allowed inline; use {_SECRET_KEYS[key]}"
            )


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(p) for p in loc if not isinstance(p, int)).upper()


# The environment load_settings() was given (None: the process's own), for the source below.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("replenish_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping ``load_settings`` got."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _ENVIRON.get()
        if env is None:
            return super()._load_env_vars()
        return parse_env_vars(env, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


# What a pattern-checked field must look like, in words (pydantic would print the regex).
_PATTERN_HINTS = {
    "uri": "must start with ipp:// or ipps:// (e.g. ipp://printer.local:631/ipp/print)",
    "name": "may hold letters, digits, '_' and '-' (at most 64, starting with a letter "
            "or digit)",
    "time_zone": "must be an IANA time zone name such as Europe/Berlin",
    "discovery_prefix": "may hold letters, digits, '_' and '-' (at most 64)",
}


def plain_reason(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence a household can act on (no regexes, no jargon)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    field = next((str(p) for p in reversed(error.get("loc", ())) if isinstance(p, str)), "")
    bounds = {"greater_than_equal": "must be at least {ge}", "greater_than": "must be more "
              "than {gt}", "less_than_equal": "must be at most {le}", "less_than": "must be "
              "less than {lt}", "string_too_short": "must have at least {min_length} "
              "characters", "string_too_long": "must have at most {max_length} characters"}
    if kind in bounds:
        return bounds[kind].format(**ctx)
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(field, "has a form that is not allowed here")
    simple = {"int_parsing": "must be a whole number", "int_from_float": "must be a whole "
              "number", "float_parsing": "must be a number", "bool_parsing": "must be true "
              "or false", "extra_forbidden": "is not a known setting (check the spelling "
              "and the section)", "missing": "is required", "string_type": "must be text "
              "in quotes", "path_type": "must be a file path", "int_type": "must be a "
              "whole number", "list_type": "must be a list ([[...]] blocks)",
              "model_type": "must be a [section]"}
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML at ``path`` (None: defaults only) and apply environment overrides."""
    env = os.environ if env is None else env
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, "-", "file not found") from None
        except PermissionError:
            raise ConfigError(source, "-", "permission denied") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(source, "-", f"not valid TOML ({err})") from None
    _reject_inline_secrets(data, source)
    token = _ENVIRON.set(env)
    try:
        return Settings(**data, source=source)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "-"
        env_name = _env_name(first["loc"])
        where = f"environment {env_name}" if env_name in env else source
        raise ConfigError(where, key, plain_reason(first)) from None
    finally:
        _ENVIRON.reset(token)


def resolve_secret_path(path: Path, env: Mapping[str, str] | None = None) -> Path:
    """Find a secret file: a bare name is looked up in systemd's credentials directory."""
    env = os.environ if env is None else env
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and not path.is_absolute():
        candidate = Path(creds) / path
        if candidate.exists():
            return candidate
    return path


def read_secret(path: Path | None, key: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read a secret file named by setting ``key``; errors name the key, never the content."""
    if path is None:
        return None
    resolved = resolve_secret_path(path, env)
    try:
        value = resolved.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(str(resolved), key, "secret file not found") from None
    except PermissionError:
        raise ConfigError(str(resolved), key, "secret file not readable") from None
    except UnicodeDecodeError:
        raise ConfigError(str(resolved), key, "secret file is not UTF-8 text") from None
    if not value:
        raise ConfigError(str(resolved), key, "secret file is empty")
    # Last line of defence: any log record that ever contains it gets it masked.
    register_secret(value)
    return value
