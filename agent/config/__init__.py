"""One settings tree: a TOML file, ``REPLENISH_`` environment overrides, secrets from files.

Precedence: environment (``REPLENISH_MQTT__PORT=1884``) over the TOML file over defaults.
Secrets (MQTT password, vendor token) are never settings values: the TOML names a file,
and a relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first (systemd
``LoadCredential=``). Every problem is reported as file, key and reason (exit code 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# Reading the inputs (TOML, environment, secret files) lives in agent.config.io; the
# names callers use are re-exported here.
# The alert sections live in agent.config.alerts; the names callers use are re-exported.
from agent.config.alerts import AlertContact as AlertContact
from agent.config.alerts import AlertRule as AlertRule
from agent.config.alerts import AlertSettings as AlertSettings
from agent.config.io import ENV_PREFIX as ENV_PREFIX
from agent.config.io import ENVIRON, SECTION, MappingEnvSource, env_name, read_toml
from agent.config.io import plain_reason as plain_reason
from agent.config.io import read_secret as read_secret
from agent.config.io import resolve_secret_path as resolve_secret_path
from agent.config.sources import BatterySkuSettings as BatterySkuSettings
from agent.config.sources import ButtonSettings as ButtonSettings
from agent.config.sources import CalendarSettings as CalendarSettings
from agent.config.sources import MappingSettings as MappingSettings
from agent.config.sources import NightscoutSettings as NightscoutSettings
from agent.config.sources import SourcesSettings as SourcesSettings
from agent.config.sources import ValetudoSettings as ValetudoSettings
from agent.config.sources import Zigbee2MqttSettings as Zigbee2MqttSettings
from agent.domain import JsonObject
from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/replenish-agent/agent.toml")
DEFAULT_DB_PATH = Path("/var/lib/replenish-agent/agent.db")
DEFAULT_CLIENT_ID = "replenish-agent"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600



class MqttSettings(BaseModel):
    model_config = SECTION

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

    model_config = SECTION

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
    model_config = SECTION

    path: Path = DEFAULT_DB_PATH
    # Where SQLite keeps the WAL's index: "shared" (the mapped ``agent.db-shm`` file, so
    # the web service and the CLI can read while the agent runs) or "process" (in the
    # agent's memory: no ``-shm`` writes, but no other process can open the database
    # while the agent runs; agent.storage.connect, docs/operations.md).
    wal_index: Literal["shared", "process"] = "shared"


class IngestSettings(BaseModel):
    model_config = SECTION

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
    # SD-card wear (issue 21): at low rates the writer commits what arrived within this
    # window in one transaction (acknowledging only after it); 0 commits at once.
    # A commit at household load costs ~47 KB on the reference machine whatever it holds
    # (WAL pages under fsync, the wal-index pages the kernel writes back 30 s later), so
    # the window sets the bytes per message (bench/README.md, "Write volume"). News
    # does not wait for it (agent.mqtt.news: events, a device's first message, a changed
    # state): level ticks do, by up to the window.
    commit_window_s: float = Field(default=120.0, ge=0, le=300)
    # The recent readings tier is folded into the keyed table this often, or sooner
    # once it holds this many readings; a WAL checkpoint follows a fold.
    fold_interval_s: float = Field(default=3_600.0, ge=1)
    # 10,000: at household load (7,500 readings an hour) the hourly interval governs; a
    # fold costs ~13 page writes per consumable whatever its rows (bench/README.md).
    fold_rows: int = Field(default=10_000, ge=100)
    # The least time between two checkpoints (at fast rates folds come every ~80 s).
    checkpoint_interval_s: float = Field(default=300.0, ge=1)
    # Devices' "last seen" and consumables' "last" values are rewritten at most this
    # often while messages keep coming (and when the stream goes quiet for
    # idle_wakeup_s); 0 rewrites them with every commit. Silence detection works in
    # hours, so minutes of delay cost nothing there.
    last_values_interval_s: float = Field(default=300.0, ge=0)


class VendorSettings(BaseModel):
    model_config = SECTION

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
    model_config = SECTION

    uri: str = Field(pattern=r"^ipps?://")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    poll_interval_s: int = Field(default=300, ge=10)


class ForecastSettings(BaseModel):
    model_config = SECTION

    # P(no run-out before the delivery) per order: the level bench/forecast.py validates.
    service_level: float = Field(default=0.98, gt=0.5, lt=1.0)
    review_interval_h: float = Field(default=24.0, gt=0)
    interval_s: int = Field(default=900, ge=10)


class RetentionSettings(BaseModel):
    model_config = SECTION

    # Five-minute readings are kept this long, hourly ones after: the forecast reads hourly
    # at most, so finer history only serves support looking at a recent incident.
    raw_days: int = Field(default=14, ge=1)


class HouseholdSettings(BaseModel):
    """MQTT notifications for phone apps and Home Assistant."""

    model_config = SECTION

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


class WebSettings(BaseModel):
    """``replenish web``: the household's pages (agent/web). No default password: the
    server refuses to start until ``replenish web set-password`` has written one."""

    model_config = SECTION

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
        return (MappingEnvSource(settings_cls), init_settings)

    def redacted(self) -> JsonObject:
        """The settings as plain data, safe to log or ship in a support bundle.

        Secrets never live in the tree, only their file names, so nothing needs masking
        here beyond leaving the secret files unread.
        """
        return self.model_dump(mode="json")


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML at ``path`` (None: defaults only) and apply environment overrides."""
    env = os.environ if env is None else env
    source = str(path) if path else "<defaults>"
    data = read_toml(path, source)
    token = ENVIRON.set(env)
    try:
        return Settings(**data, source=source)  # type: ignore[arg-type]  # validated here
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "-"
        name = env_name(first["loc"])
        where = f"environment {name}" if name in env else source
        raise ConfigError(where, key, plain_reason(first)) from None
    finally:
        ENVIRON.reset(token)
