"""``replenish support-bundle``: what support staff need, and nothing a household must keep.

The archive holds the settings (secret *file names* only), versions, recent warnings from
the journal, the doctor report and per-table row counts and sizes. It never holds
readings, payloads, order contents or secrets: every text member is passed through
:func:`agent.logs.redact` with the agent's own secrets registered (raw, base64 and
URL-encoded), and a final scan refuses to write an archive that still contains one.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent import __version__
from agent.config import Settings
from agent.domain import JsonObject
from agent.errors import AgentError
from agent.logs import REDACTED, WARNINGS_FILE, redact, register_secret
from agent.ops import doctor
from agent.ops.systemd import UNIT_NAME

JOURNAL_LINES = 200
PACKAGES = (
    "replenish-agent",
    "paho-mqtt",
    "pydantic",
    "pydantic-settings",
    "apscheduler",
    "httpx",
    "apprise",
)

README = """replenish-agent support bundle

config.json     effective settings; secrets appear only as file names
versions.json   agent, Python, package, SQLite and OS versions
doctor.txt      `replenish doctor` report (doctor.json: the same as JSON)
warnings.log    last {lines} journal lines at priority warning or worse
agent-warnings.log  (off journald) last {lines} lines of the agent's own warnings file
database.json   row counts and sizes per table; no readings, no payloads

Not included, ever: readings, device payloads, order contents, secrets.
Anything that looked like one of the agent's secrets was replaced by {redacted}.
"""


class BundleError(AgentError):
    """The bundle could not be written (or would have contained a secret)."""


def recent_warnings(lines: int = JOURNAL_LINES) -> str:
    """The unit's last ``lines`` journal entries at warning or worse, or why there are none."""
    cmd = [
        "journalctl", "-u", UNIT_NAME, "-p", "warning", "-n", str(lines),
        "--no-pager", "-o", "short-iso",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
    except FileNotFoundError:
        return "journalctl not available on this system\n"
    except subprocess.TimeoutExpired:
        return "journalctl did not answer within 15 s\n"
    if done.returncode != 0:
        return f"journalctl failed ({done.returncode}): {done.stderr.strip()[:500]}\n"
    return done.stdout or "no warnings in the journal\n"


def versions() -> JsonObject:
    """Versions of everything that shapes the agent's behaviour."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    os_release: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key in ("PRETTY_NAME", "ID", "VERSION_ID"):
                os_release[key] = value.strip('"')
    except OSError:
        pass
    return {
        "agent": __version__,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "os": os_release,
        "packages": packages,
    }


def database_stats(path: Path) -> JsonObject:
    """Row counts and sizes per table, from a read-only connection; never row contents."""
    files = {
        suffix or "db": os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(f"{path}{suffix}")
    }
    stats: JsonObject = {"path": str(path), "file_bytes": files}
    try:
        exists = path.exists()
    except PermissionError:
        stats["error"] = "permission denied: run as root"
        return stats
    if not exists:
        stats["error"] = "database does not exist"
        return stats
    try:
        with closing(doctor.open_readonly(path)) as conn:
            stats["schema_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
            stats["page_size"] = conn.execute("PRAGMA page_size").fetchone()[0]
            stats["page_count"] = conn.execute("PRAGMA page_count").fetchone()[0]
            stats["freelist_count"] = conn.execute("PRAGMA freelist_count").fetchone()[0]
            names = [
                r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            sizes = _table_sizes(conn)
            stats["tables"] = {
                name: {
                    # Names come from sqlite_master of this file; quoting keeps odd ones safe.
                    "rows": conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0],
                    "bytes": sizes.get(name),
                }
                for name in names
            }
    except sqlite3.Error as err:
        stats["error"] = f"unreadable: {err}"
    return stats


def _table_sizes(conn: sqlite3.Connection) -> dict[str, int]:
    """Bytes per table including its indexes (dbstat); empty when SQLite lacks dbstat."""
    try:
        rows = conn.execute(
            "SELECT COALESCE(m.tbl_name, s.name), SUM(s.pgsize) FROM dbstat s "
            "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
        ).fetchall()
    except sqlite3.Error:
        return {}
    return {str(name): int(size) for name, size in rows}


def agent_warnings(path: Path, lines: int = JOURNAL_LINES) -> str | None:
    """The last ``lines`` of the agent's own warnings file, None when there is none."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            tail = fh.readlines()[-lines:]
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{path}: cannot read ({type(err).__name__})\n"
    return "".join(tail) or "no warnings in the agent's warnings file\n"


@dataclass(slots=True)
class Sources:
    """Where the bundle's pieces come from; tests replace the journal and the probes."""

    journal: Callable[[], str] = recent_warnings
    probes: doctor.Probes = field(default_factory=doctor.Probes)
    env: Mapping[str, str] | None = None
    clock: Callable[[], float] = time.time


def collect(loader: Callable[[], Settings], sources: Sources) -> dict[str, str]:
    """The bundle's members as ``name -> text``, already redacted."""
    config_result, loaded = doctor.check_config(loader, sources.env)
    secrets_seen = [s for s in (loaded.mqtt_password, loaded.vendor_token) if s]
    for value in secrets_seen:
        register_secret(value)
    if loaded.settings is not None:
        config: JsonObject = loaded.settings.redacted()
        config["_source"] = loaded.settings.source
    else:
        config = {"error": config_result.summary}
    results = doctor.run_checks(loader, sources.probes, sources.env)
    members = {
        "README.txt": README.format(lines=JOURNAL_LINES, redacted=REDACTED),
        "config.json": json.dumps(config, indent=2, sort_keys=True),
        "versions.json": json.dumps(versions(), indent=2, sort_keys=True),
        "doctor.txt": doctor.render_text(results) + "\n",
        "doctor.json": json.dumps(doctor.as_json(results), indent=2),
        "warnings.log": sources.journal(),
    }
    if loaded.settings is not None:
        # An agent off journald writes its warnings next to the database (agent.logs).
        agent_log = agent_warnings(loaded.settings.storage.path.parent / WARNINGS_FILE)
        if agent_log is not None:
            members["agent-warnings.log"] = agent_log
        stats = database_stats(loaded.settings.storage.path)
        members["database.json"] = json.dumps(stats, indent=2, sort_keys=True)
    redacted = {name: redact(text) for name, text in members.items()}
    for name, text in redacted.items():
        if any(secret in text for secret in secrets_seen):
            raise BundleError(f"refusing to write the bundle: {name} still contains a secret")
    return redacted


def write_bundle(
    out: Path, loader: Callable[[], Settings], sources: Sources | None = None
) -> list[str]:
    """Write ``out`` (a .tar.gz readable only by its owner); returns the member names."""
    sources = sources or Sources()
    members = collect(loader, sources)
    now = sources.clock()
    top = "replenish-support-" + datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, text in members.items():
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mtime = int(now)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
    except OSError as err:
        raise BundleError(f"cannot write {out}: {err.strerror}") from err
    return [f"{top}/{name}" for name in members]
