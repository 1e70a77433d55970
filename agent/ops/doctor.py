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
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import AlertSettings, Settings
from agent.errors import ConfigError
from agent.ops import broker_log_acl
from agent.ops.doctor_remote import (
    PROBE_KEY,
    LoadedConfig,
    check_broker,
    check_config,
    check_vendor,
    explain_broker_wait,
)
from agent.ops.doctor_report import (
    RELEASE_NOT_BEFORE,
    CheckJson,
    CheckResult,
    DiskUsage,
    Level,
    Probes,
    ReportJson,
    as_json,
    exit_code,
    render_text,
)
from agent.ops.systemd import clock_synchronized, read_service_secret
from agent.storage.connect import connect, held_elsewhere
from agent.storage.migrations import LATEST_VERSION

# The checks live in three modules (report types, remote checks, the local ones here);
# callers and tests import every name from here.
__all__ = [
    "PROBE_KEY", "RELEASE_NOT_BEFORE", "CheckJson", "CheckResult", "DiskUsage", "Level",
    "LoadedConfig", "Probes", "ReportJson", "as_json", "check_alerts", "check_broker",
    "check_clock", "check_config", "check_database", "check_devices", "check_disk",
    "check_orders", "check_sources", "check_vendor", "exit_code", "explain_broker_wait",
    "open_readonly", "render_text", "run_checks",
]

log = logging.getLogger(__name__)

# A clock this far behind a time the agent itself recorded has gone backwards.
CLOCK_BACKWARDS_TOLERANCE_S = 300.0
DEVICE_SILENT_WARN_S = 48 * 3600.0
DISK_FAIL_BYTES = 50 * 1024 * 1024
DISK_WARN_BYTES = 200 * 1024 * 1024


# ---- database, clock, disk, devices ---------------------------------------------------


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that never creates the file or changes the schema."""
    conn = connect(path, readonly=True, timeout=5)
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
        if (held := held_elsewhere(err)) is not None:
            return CheckResult("database", Level.WARN, f"{path}: not checked", str(held))
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


def check_progress(probes: Probes) -> CheckResult:
    """What the running agent did since it started: passes per job, ingest commits and
    failed writes (its progress file; information, never a failure)."""
    seen = probes.progress()
    if seen is None:
        return CheckResult("progress", Level.OK, "no progress file (agent service not "
                           "running under systemd, or not started yet)")
    passes = ", ".join(f"{job} {n}" for job, n in sorted(seen.passes.items())) or "none yet"
    return CheckResult("progress", Level.OK, f"agent pid {seen.pid}, passes: {passes}",
                       details=(f"ingest: {seen.ingest_batches} commits, "
                                f"{seen.ingest_write_failures} failed writes",))


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
    acl = broker_log_acl.doctor_check(settings)
    if acl is not None:
        results.append(acl)
    results.append(
        check_vendor(settings.vendor, loaded.vendor_token, probes.timeout_s,
                     probes.vendor_transport)
    )
    db = settings.storage.path
    results.append(check_database(db))
    results.append(check_clock(db, probes))
    results.append(check_disk(db, probes))
    results.append(check_storage(probes))
    results.append(check_progress(probes))
    results.append(check_devices(db, probes))
    results.append(check_alerts(settings.alerts, db, probes))
    results.append(check_orders(db))
    results.append(check_sources(db, probes))
    return results
