"""``replenish doctor``: read-only health checks that name the fix.

Each check returns a :class:`CheckResult` (OK, WARN or FAIL, a one-line summary, the fix
and optional detail lines); :func:`run_checks` runs them all and :func:`exit_code` maps the
worst level to 0 (all OK), 1 (a warning) or 3 (a failure). Nothing here writes: the
database is opened with ``mode=ro`` (not through :class:`agent.storage.store.Store`, which
migrates on open), the broker sees a throw-away client id with a clean session, and the
vendor sees one order lookup. Clocks, disk usage and transports are injectable for tests.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AlertSettings, MqttSettings, Settings, VendorSettings
from agent.errors import ConfigError, VendorError, VendorFinal
from agent.logs import register_secret
from agent.ops.systemd import (
    clock_synchronized,
    credentials_env,
    read_service_secret,
    service_status_text,
)
from agent.storage.migrations import LATEST_VERSION
from agent.vendor.client import VendorClient

log = logging.getLogger(__name__)

# The clock can be no earlier than this release; a Pi without RTC or network often boots
# in 1970 or at the last shutdown time. Raise it with each release.
RELEASE_NOT_BEFORE = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
# A clock this far behind a time the agent itself recorded has gone backwards.
CLOCK_BACKWARDS_TOLERANCE_S = 300.0
DEVICE_SILENT_WARN_S = 48 * 3600.0
DISK_FAIL_BYTES = 50 * 1024 * 1024
DISK_WARN_BYTES = 200 * 1024 * 1024
PROBE_KEY = "replenish-doctor-probe"


class Level(IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(slots=True, frozen=True)
class CheckResult:
    """One check's verdict; ``fix`` is empty when there is nothing to do."""

    name: str
    level: Level
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level.name,
            "summary": self.summary,
            "fix": self.fix,
            "details": list(self.details),
        }


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every check is OK, 1 with a warning, 3 with a failure."""
    worst = max((r.level for r in results), default=Level.OK)
    return {Level.OK: 0, Level.WARN: 1, Level.FAIL: 3}[worst]


def _disk_usage(path: Path) -> DiskUsage:
    return DiskUsage(*shutil.disk_usage(path))


@dataclass(slots=True)
class Probes:
    """The outside world as the checks see it; tests replace single pieces."""

    clock: Callable[[], float] = time.time
    # None: ask the kernel (agent.ops.systemd.clock_synchronized) at check time.
    synchronized: Callable[[], bool | None] | None = None
    disk_usage: Callable[[Path], DiskUsage] = _disk_usage
    vendor_transport: httpx.BaseTransport | None = None
    timeout_s: float = 5.0
    not_before: float = RELEASE_NOT_BEFORE
    # The running service's STATUS= line; None when it is not running under systemd.
    service_status: Callable[[], str | None] = service_status_text


# ---- config --------------------------------------------------------------------------


@dataclass(slots=True)
class LoadedConfig:
    settings: Settings | None
    mqtt_password: str | None = None
    vendor_token: str | None = None


def check_config(
    loader: Callable[[], Settings], env: Mapping[str, str] | None = None
) -> tuple[CheckResult, LoadedConfig]:
    """Settings parse and validate, and the secret files they name are readable."""
    try:
        settings = loader()
    except ConfigError as err:
        return (
            CheckResult("config", Level.FAIL, str(err), "correct the named key, then run "
                        "`replenish check-config`"),
            LoadedConfig(None),
        )
    creds = credentials_env(env)
    loaded = LoadedConfig(settings)
    problems = []
    for key, path, attr in (
        ("mqtt.password_file", settings.mqtt.password_file, "mqtt_password"),
        ("vendor.token_file", settings.vendor.token_file, "vendor_token"),
    ):
        try:
            value = read_service_secret(path, key, creds)
        except ConfigError as err:
            problems.append(str(err))
            continue
        register_secret(value)
        setattr(loaded, attr, value)
    if problems:
        return (
            CheckResult(
                "config", Level.FAIL, f"{settings.source}: secret files missing",
                "write them to /etc/credstore/replenish-agent-<name> (docs/operations.md, "
                "Secrets) and restart the service", tuple(problems),
            ),
            loaded,
        )
    return CheckResult("config", Level.OK, f"{settings.source}: valid, secrets readable"), loaded


# ---- broker --------------------------------------------------------------------------

_AUTH_REFUSED = {4, 5, 134, 135}


def check_broker(cfg: MqttSettings, password: str | None, timeout_s: float) -> CheckResult:
    """Connect with the agent's account (clean session, throw-away client id)."""
    where = f"{cfg.host}:{cfg.port}"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"replenish-doctor-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv5,
    )
    client.connect_timeout = timeout_s
    client.username_pw_set(cfg.username, password)
    answer: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    try:
        if cfg.tls_ca_file is not None:
            client.tls_set(ca_certs=str(cfg.tls_ca_file))
        client.connect(cfg.host, cfg.port, keepalive=max(5, int(timeout_s) * 2))
        deadline = time.monotonic() + timeout_s
        while not answer and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS and not answer:
                break
    except ssl.SSLError as err:
        return CheckResult(
            "broker", Level.FAIL, f"{where}: TLS handshake failed ({err.reason or 'ssl'})",
            "check mqtt.tls_ca_file is the household CA and the broker certificate names "
            "mqtt.host",
        )
    except (OSError, ValueError) as err:
        return CheckResult(
            "broker", Level.FAIL, f"{where}: unreachable ({type(err).__name__})",
            "start the broker (systemctl status mosquitto) or correct mqtt.host/mqtt.port",
        )
    finally:
        client.disconnect()
        client.loop(timeout=0.1)
    if not answer:
        return CheckResult(
            "broker", Level.FAIL, f"{where}: no MQTT answer within {timeout_s:g} s",
            "is this port an MQTT listener? TLS listeners need mqtt.tls_ca_file",
        )
    reason = answer[0]
    if not reason.is_failure:
        return CheckResult("broker", Level.OK, f"{where}: connected as {cfg.username}")
    if reason.value in _AUTH_REFUSED:
        return CheckResult(
            "broker", Level.FAIL, f"{where}: authentication refused for {cfg.username} "
            f"({reason})",
            "the password in the credential store differs from the broker's password "
            "file: set both again (docs/operations.md, Secrets)",
        )
    return CheckResult(
        "broker", Level.FAIL, f"{where}: connection refused ({reason})",
        "read the broker's log: journalctl -u mosquitto",
    )


def explain_broker_wait(result: CheckResult, probes: Probes) -> CheckResult:
    """A broker that is down while the service waits for it: say the agent is fine."""
    if result.level is Level.OK:
        return result
    status = probes.service_status()
    if not status or not status.startswith("waiting for MQTT broker"):
        return result
    return replace(result, details=(
        *result.details, f"the agent service is alive and {status}",
        "it connects by itself once the broker answers: no restart needed"))


# ---- vendor --------------------------------------------------------------------------


def check_vendor(
    cfg: VendorSettings,
    token: str | None,
    timeout_s: float,
    transport: httpx.BaseTransport | None = None,
) -> CheckResult:
    """Look up a probe idempotency key: proves reachability and that the token works."""
    mode = " (test mode)" if cfg.test_mode else ""
    if token is None:
        return CheckResult(
            "vendor", Level.WARN, "no vendor.token_file configured: ordering is off",
            "set vendor.token_file if this household should order",
        )
    try:
        with VendorClient(
            cfg.base_url, token, transport=transport,
            timeout=min(timeout_s, cfg.timeout_s), deadline_s=timeout_s,
        ) as client:
            client.find_by_key(PROBE_KEY)
    except ConfigError as err:
        return CheckResult("vendor", Level.FAIL, str(err), "correct vendor.base_url")
    except VendorFinal as err:
        if err.status in (401, 403):
            return CheckResult(
                "vendor", Level.FAIL, f"{cfg.base_url}: token refused (HTTP {err.status})",
                "the vendor token is expired or revoked: write a new one to the credential "
                "store and restart",
            )
        return CheckResult(
            "vendor", Level.FAIL, f"{cfg.base_url}: unexpected answer (HTTP {err.status})",
            "check vendor.base_url points at the vendor API root",
        )
    except VendorError as err:
        if err.status == 429:
            return CheckResult(
                "vendor", Level.WARN, f"{cfg.base_url}: rate limited (HTTP 429)",
                "wait and run doctor again",
            )
        if err.status is not None:
            return CheckResult(
                "vendor", Level.FAIL, f"{cfg.base_url}: vendor error (HTTP {err.status})",
                "the vendor is having trouble; orders wait and retry with the same key",
            )
        return CheckResult(
            "vendor", Level.FAIL, f"{cfg.base_url}: unreachable ({err})",
            "check the gateway's internet access and vendor.base_url",
        )
    return CheckResult("vendor", Level.OK, f"{cfg.base_url}: reachable, token accepted{mode}")


# ---- database, clock, disk, devices ---------------------------------------------------


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that never creates the file or changes the schema."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _exists(path: Path) -> bool | None:
    """Whether ``path`` exists; None when this user may not even look (run as root)."""
    try:
        return path.exists()
    except PermissionError:
        return None


_NOT_ROOT = CheckResult(
    "database", Level.WARN, "permission denied for this user",
    "run doctor as root: sudo replenish doctor",
)


def check_database(path: Path) -> CheckResult:
    """``PRAGMA integrity_check`` and the schema version."""
    exists = _exists(path)
    if exists is None:
        return _NOT_ROOT
    if not exists:
        return CheckResult(
            "database", Level.WARN, f"{path}: does not exist yet",
            "the agent creates it on first start; check storage.path if it has run before",
        )
    try:
        with closing(open_readonly(path)) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as err:
        # A WAL database opened read-only still needs its -shm file: without write access
        # to the directory that fails with "unable to open", which is not corruption.
        if not os.access(path, os.R_OK) or not os.access(path.parent, os.W_OK):
            return _NOT_ROOT
        return CheckResult(
            "database", Level.FAIL, f"{path}: unreadable ({err})",
            "stop the agent and restore the last backup (docs/operations.md)",
        )
    if rows != ["ok"]:
        return CheckResult(
            "database", Level.FAIL, f"{path}: integrity_check found {len(rows)} problem(s)",
            "stop the agent and restore the last backup (docs/operations.md)", tuple(rows),
        )
    if version > LATEST_VERSION:
        return CheckResult(
            "database", Level.FAIL, f"{path}: schema {version} is newer than this agent",
            "upgrade the agent, or restore the backup taken before the downgrade",
        )
    if version < LATEST_VERSION:
        return CheckResult(
            "database", Level.WARN, f"{path}: schema {version}, agent expects {LATEST_VERSION}",
            "restart the service to migrate",
        )
    return CheckResult("database", Level.OK, f"{path}: integrity ok, schema {version}")


def _query(path: Path, sql: str) -> list[tuple[Any, ...]] | None:
    if not _exists(path):
        return None
    try:
        with closing(open_readonly(path)) as conn:
            return list(conn.execute(sql).fetchall())
    except sqlite3.Error:
        return None


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} d"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_clock(db_path: Path | None, probes: Probes) -> CheckResult:
    """The wall clock is plausible and synchronised: a wrong clock must never order."""
    now = probes.clock()
    if now < probes.not_before:
        return CheckResult(
            "clock", Level.FAIL,
            f"system time {_iso(now)} is before this release was built ({_iso(probes.not_before)})",
            "the gateway booted without network time: the agent must not order until NTP "
            "has set the clock (timedatectl; systemctl status systemd-timesyncd)",
        )
    rows = _query(db_path, "SELECT MAX(last_seen) FROM devices") if db_path else None
    newest = rows[0][0] if rows and rows[0][0] is not None else None
    if newest is not None and now < float(newest) - CLOCK_BACKWARDS_TOLERANCE_S:
        return CheckResult(
            "clock", Level.FAIL,
            f"system time {_iso(now)} is before the newest stored reading ({_iso(newest)})",
            "the clock went backwards: fix time sync before the agent orders",
        )
    synced = (probes.synchronized or clock_synchronized)()
    held = _query(db_path, "SELECT COUNT(*) FROM pending") if db_path else None
    pending = f"; {held[0][0]} readings held until it is" if held and held[0][0] else ""
    if synced is False:
        return CheckResult(
            "clock", Level.WARN, f"system time {_iso(now)} is not synchronised{pending}",
            "enable time sync (timedatectl set-ntp true) and check network access; "
            "do not trust orders until it is",
        )
    if synced is None:
        return CheckResult(
            "clock", Level.WARN, f"system time {_iso(now)}; synchronisation unknown",
            "check timedatectl shows 'System clock synchronized: yes'",
        )
    return CheckResult("clock", Level.OK, f"system time {_iso(now)}, synchronised")


def check_disk(db_path: Path, probes: Probes) -> CheckResult:
    """Free space where the database lives (the nearest existing parent directory)."""
    where = db_path.parent
    while not _exists(where) and where != where.parent:
        where = where.parent
    try:
        usage = probes.disk_usage(where)
    except OSError as err:
        return CheckResult("disk", Level.WARN, f"{where}: cannot stat ({err.strerror})")
    free_mb = usage.free / 1024 / 1024
    share = usage.free / usage.total if usage.total else 0.0
    summary = f"{where}: {free_mb:.0f} MB free ({share:.0%})"
    fix = "free space on the SD card (journalctl --vacuum-size=50M, apt clean)"
    if usage.free < DISK_FAIL_BYTES:
        return CheckResult("disk", Level.FAIL, summary, fix)
    if usage.free < DISK_WARN_BYTES or share < 0.05:
        return CheckResult("disk", Level.WARN, summary, fix)
    return CheckResult("disk", Level.OK, summary)


# The running agent's STATUS= while a write fails (agent.app.storage_faults.Fault.status).
STORAGE_FAULT_STATUS = "storage fault"


def check_storage(probes: Probes) -> CheckResult:
    """Whether the running agent can write its database (its ``STATUS=`` line says so
    while it cannot: a fault it retries by itself, so no restart is needed)."""
    status = probes.service_status()
    if status is None:
        return CheckResult("storage", Level.OK, "no storage fault reported (agent service "
                           "not running under systemd, or no status)")
    if not status.startswith(STORAGE_FAULT_STATUS):
        return CheckResult("storage", Level.OK, "the running agent writes its database")
    fix = ("free space on the SD card (journalctl --vacuum-size=50M, apt clean); the agent "
           "resumes by itself" if "disk_full" in status
           else "see `journalctl -u replenish-agent | grep store.write_failed`")
    return CheckResult("storage", Level.FAIL, status, fix)


def check_devices(db_path: Path, probes: Probes) -> CheckResult:
    """When each device last reported (from the ``devices`` table)."""
    rows = _query(db_path, "SELECT device_id, last_seen FROM devices ORDER BY device_id")
    if rows is None:
        return CheckResult(
            "devices", Level.WARN, "no device table to read",
            "start the agent once; see the database check above (run doctor as root)",
        )
    if not rows:
        return CheckResult(
            "devices", Level.WARN, "no device has reported yet",
            "check the devices' broker accounts and that they publish to the gateway",
        )
    now = probes.clock()
    details = []
    silent = []
    for device_id, last_seen in rows:
        age = max(0.0, now - float(last_seen))
        details.append(f"{device_id}: last reading {_fmt_age(age)} ago ({_iso(last_seen)})")
        if age > DEVICE_SILENT_WARN_S:
            silent.append(str(device_id))
    if silent:
        return CheckResult(
            "devices", Level.WARN,
            f"{len(rows)} device(s); silent for over {_fmt_age(DEVICE_SILENT_WARN_S)}: "
            + ", ".join(silent),
            "check the silent devices are powered, online and still have their credentials",
            tuple(details),
        )
    return CheckResult(
        "devices", Level.OK, f"{len(rows)} device(s) reporting", details=tuple(details)
    )


def check_alerts(settings: AlertSettings, db_path: Path, probes: Probes) -> CheckResult:
    """Urgent alerts: a rule for every urgent event devices send, channels that work."""
    since = probes.clock() - 86_400
    failed = _query(db_path, "SELECT contact, count(*) FROM alert_sends WHERE ok=0 AND at >= "
                    f"{since:.0f} GROUP BY contact") or []
    open_rows = _query(db_path, "SELECT count(*) FROM alerts WHERE acked_at IS NULL") or [(0,)]
    seen = {r[0] for r in _query(db_path, "SELECT DISTINCT type FROM events WHERE type IN "
                                 "('fall_alert', 'sensor_failed', 'low_battery')") or []}
    missing = []
    for contact in settings.contacts:
        try:
            read_service_secret(contact.url_file, f"alerts.contacts {contact.name}")
        except ConfigError:
            missing.append(contact.name)
    uncovered = sorted(seen - {r.event for r in settings.rules})
    details = tuple(f"{c}: {n} failed send(s) in the last 24 h" for c, n in failed)
    summary = f"{len(settings.rules)} rule(s), {open_rows[0][0]} open alert(s)"
    if missing:
        return CheckResult("alerts", Level.FAIL, f"{summary}; unreadable channel file for "
                           + ", ".join(missing), "check alerts.contacts url_file", details)
    if failed:
        return CheckResult("alerts", Level.WARN, f"{summary}; channels failing",
                           "check the contact's Apprise URL and the network; "
                           "`replenish alerts test` sends a test alert", details)
    if uncovered:
        return CheckResult("alerts", Level.WARN,
                           f"devices sent {', '.join(uncovered)} but no rule tells anyone",
                           "add an [[alerts.rules]] for it (docs/alerts.md)", details)
    return CheckResult("alerts", Level.OK, summary, details=details)
def check_orders(db_path: Path) -> CheckResult:
    """Orders nobody can vouch for (state ``lost``): the household has to answer them."""
    rows = _query(db_path, "SELECT id, consumable, order_id, reason FROM intents "
                           "WHERE state='lost' ORDER BY id")
    if not rows:  # no table yet (see the database check) or nothing lost
        return CheckResult("orders", Level.OK, "no lost orders")
    details = tuple(f"order {i} ({c}, vendor id {o or '-'}): {r}" for i, c, o, r in rows)
    return CheckResult(
        "orders", Level.WARN, f"{len(rows)} lost order(s): the vendor no longer knows them or "
        "never answered", "ask the vendor whether each was placed; then `replenish orders "
        "cancel ID` lets the agent order again", details)
def check_sources(db_path: Path, probes: Probes) -> CheckResult:
    """Foreign sources (issue 19): payloads that did not parse and polls that failed in
    the last day, per source and reason (``source_rejects``)."""
    rows = _query(db_path, "SELECT source, reason, count, last_at FROM source_rejects "
                           "ORDER BY source, reason")
    if rows is None:
        return CheckResult("sources", Level.OK, "no foreign source faults recorded")
    recent = [r for r in rows if probes.clock() - float(r[3]) < 86_400]
    details = tuple(f"{src}: {reason} x{count} (last {_iso(last)})"
                    for src, reason, count, last in rows)
    if recent:
        return CheckResult(
            "sources", Level.WARN,
            f"{len(recent)} foreign source fault(s) in the last day: "
            + ", ".join(sorted({f"{r[0]} {r[1]}" for r in recent}))[:200],
            "see docs/sources.md: check the token or URL of a polled source, or the "
            "value_template of an adopted entity ('replenish sources list')", details)
    return CheckResult("sources", Level.OK, "no foreign source faults in the last day",
                       details=details)


# ---- all together -----------------------------------------------------------------------


def run_checks(
    loader: Callable[[], Settings],
    probes: Probes | None = None,
    env: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Every check in order; later checks are skipped only when settings are unusable."""
    probes = probes or Probes()
    config, loaded = check_config(loader, env)
    results = [config]
    settings = loaded.settings
    if settings is None:
        results.append(check_clock(None, probes))
        return results
    results.append(explain_broker_wait(
        check_broker(settings.mqtt, loaded.mqtt_password, probes.timeout_s), probes))
    results.append(
        check_vendor(settings.vendor, loaded.vendor_token, probes.timeout_s,
                     probes.vendor_transport)
    )
    db = settings.storage.path
    results.append(check_database(db))
    results.append(check_clock(db, probes))
    results.append(check_disk(db, probes))
    results.append(check_storage(probes))
    results.append(check_devices(db, probes))
    results.append(check_alerts(settings.alerts, db, probes))
    results.append(check_orders(db))
    results.append(check_sources(db, probes))
    return results


def render_text(results: Sequence[CheckResult]) -> str:
    """The human report: one line per check, then its details and fix indented."""
    lines = []
    for r in results:
        lines.append(f"{r.level.name:<5} {r.name:<9} {r.summary}")
        lines.extend(f"{'':16}{d}" for d in r.details)
        if r.fix and r.level is not Level.OK:
            lines.append(f"{'':16}fix: {r.fix}")
    code = exit_code(results)
    lines.append({0: "all checks OK", 1: "warnings (exit 1)", 3: "failures (exit 3)"}[code])
    return "\n".join(lines)


def as_json(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The machine report (``--json``)."""
    code = exit_code(results)
    return {
        "result": {0: "ok", 1: "warn", 3: "fail"}[code],
        "exit_code": code,
        "checks": [r.as_dict() for r in results],
    }
