"""Broker-side files for the household gateway: password file, ACL, mosquitto.conf.

Everything here is file handling plus one reload; templates and scripts are found and
run by :mod:`agent.ops.broker_files`, hashes made by :mod:`agent.ops.passwd`. Every
command changes its files all-or-nothing (:mod:`agent.ops.filetx`).

Device identity is the MQTT username: ``broker_config/acl.template`` uses ``%u``
patterns, so adding a device only adds a password-file line (or a client certificate
whose CN is the device id). The only per-device ACL lines deny removed ids, which
cuts off a certificate device's live session (the CRL only stops reconnects).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import ConfigError
from agent.ops.broker_files import (  # re-exported: callers and tests use provisioning.*
    DEFAULT_AGENT_USER,
    DEFAULT_HOUSEHOLD_USER,
    DEFAULT_PID_FILE,
    ProcessSettings,
    TlsFiles,
    broker_config_candidates,
    broker_config_dir,
    reload_broker,
    render,
    render_acl,
    render_mosquitto_conf,
    run_script,
)
from agent.ops.filetx import FileTransaction
from agent.ops.passwd import (  # re-exported: callers and tests use provisioning.*
    HASH_ITERATIONS,
    hash_password,
    new_password,
    read_password_file,
    verify_password,
    write_password_file,
    write_private_file,
)
from agent.wire.device import ID_PATTERN

__all__ = [  # the re-exports (names defined here are public anyway)
    "DEFAULT_AGENT_USER", "DEFAULT_HOUSEHOLD_USER", "DEFAULT_PID_FILE", "ProcessSettings",
    "TlsFiles", "broker_config_candidates",
    "broker_config_dir", "reload_broker", "render", "render_acl", "render_mosquitto_conf",
    "run_script",
    "HASH_ITERATIONS", "hash_password", "new_password", "read_password_file",
    "verify_password", "write_password_file", "write_private_file",
]

log = logging.getLogger(__name__)

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/replenish.passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/replenish.acl")
DEFAULT_CA_DIR = Path("/etc/mosquitto/replenish-ca")
# Names with a fixed role in the ACL; a device must never get one of them.
RESERVED_USERS = frozenset({DEFAULT_AGENT_USER, DEFAULT_HOUSEHOLD_USER, "admin", "root"})

def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is usable as MQTT username and topic level."""
    if not re.fullmatch(ID_PATTERN, device_id):
        raise ConfigError("device", "id", "must match " + ID_PATTERN)
    if device_id in RESERVED_USERS:
        raise ConfigError("device", "id", f"{device_id!r} is reserved")
    return device_id


# -- device registry ---------------------------------------------------------------

DEFAULT_REGISTRY_FILE = Path("/etc/mosquitto/replenish-devices.json")
DEFAULT_CONF_FILE = Path("/etc/mosquitto/conf.d/replenish.conf")
DEFAULT_TLS_PORT = 8883
DEFAULT_CERT_PORT = 8884
AUTH_PASSWORD = "password"
AUTH_CERT = "cert"


@dataclass(frozen=True, slots=True)
class BrokerPaths:
    """Where the gateway's broker files live (Debian defaults; see ``[broker]`` settings)."""

    password_file: Path = DEFAULT_PASSWORD_FILE
    acl_file: Path = DEFAULT_ACL_FILE
    registry_file: Path = DEFAULT_REGISTRY_FILE
    ca_dir: Path = DEFAULT_CA_DIR
    pid_file: Path = DEFAULT_PID_FILE
    reload_command: str | None = None
    agent_user: str = DEFAULT_AGENT_USER
    household_user: str = DEFAULT_HOUSEHOLD_USER

    @property
    def ca_file(self) -> Path:
        """The household CA certificate devices and the agent trust."""
        return self.ca_dir / "ca.crt"

    @property
    def reserved(self) -> frozenset[str]:
        """Usernames a device may never take."""
        return RESERVED_USERS | {self.agent_user, self.household_user}


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One provisioned device as listed by ``replenish device list``."""

    device_id: str
    kind: str
    auth: str  # AUTH_PASSWORD or AUTH_CERT
    added: str  # ISO 8601 UTC, or "" for accounts made outside this tool


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What ``device add`` hands to the person setting up the device (shown once)."""

    record: DeviceRecord
    password: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where devices reach the broker, as ``device init`` set it up (told by ``device add``)."""

    host: str
    tls_port: int
    cert_port: int


@dataclass(slots=True)
class Registry:
    """The registry file: provisioned devices and ids removed since (denied in the ACL)."""

    devices: dict[str, DeviceRecord]
    revoked: set[str]
    endpoint: Endpoint | None = None


def load_registry(path: Path) -> Registry:
    """Read the registry JSON (a missing file is an empty registry)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Registry({}, set())
    except (OSError, ValueError) as err:
        raise ConfigError(str(path), "registry_file", "unreadable or not JSON") from err
    try:
        devices = {item["device_id"]: DeviceRecord(**item) for item in raw["devices"]}
        revoked = {str(name) for name in raw.get("revoked", [])}
        point = raw.get("endpoint")
        endpoint = None if point is None else Endpoint(
            str(point["host"]), int(point["tls_port"]), int(point["cert_port"]))
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise ConfigError(str(path), "registry_file", "unexpected structure") from err
    return Registry(devices, revoked, endpoint)


def save_registry(path: Path, registry: Registry) -> None:
    """Write the registry (sorted; it holds no secrets)."""
    items = [asdict(registry.devices[key]) for key in sorted(registry.devices)]
    body: dict[str, object] = {"devices": items, "revoked": sorted(registry.revoked)}
    if registry.endpoint is not None:
        body["endpoint"] = asdict(registry.endpoint)
    write_private_file(path, json.dumps(body, indent=2) + "\n")


def ensure_acl(paths: BrokerPaths) -> bool:
    """Write the ACL when it is missing or differs from the template; True if written."""
    revoked = load_registry(paths.registry_file).revoked
    text = render_acl(paths.agent_user, paths.household_user, revoked)
    try:
        if paths.acl_file.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    except OSError as err:
        raise ConfigError(str(paths.acl_file), "acl_file", "cannot read") from err
    write_private_file(paths.acl_file, text)
    return True


def set_password(paths: BrokerPaths, username: str, password: str) -> None:
    """Add or replace one account in the password file (agent, household or a device)."""
    entries = read_password_file(paths.password_file)
    entries[username] = hash_password(password)
    write_password_file(paths.password_file, entries)


def _ca_database(paths: BrokerPaths) -> list[Path]:
    """The openssl ca files a certificate issue or revocation rewrites."""
    names = ("index.txt", "index.txt.attr", "index.txt.old", "index.txt.attr.old",
             "serial", "serial.old", "crlnumber", "crlnumber.old", "crl.pem")
    files = [paths.ca_dir / name for name in names]
    try:  # the certificate about to be issued gets the current serial as its file name
        serial = (paths.ca_dir / "serial").read_text().strip()
        files.append(paths.ca_dir / "issued" / f"{serial}.pem")
    except OSError:
        pass
    return files


def add_device(
    paths: BrokerPaths, device_id: str, kind: str, *, now: datetime, use_cert: bool = False,
    apply: Callable[[], None] | None = None,
) -> DeviceCredentials:
    """Create credentials for a new device and make sure the ACL is in place.

    ``apply`` (the broker reload) runs last; if it or anything before it fails, every
    file is put back as it was, so the device is not half-registered and a retry works.
    A device that exists is refused: remove it first, so old credentials never stay
    valid by accident.
    """
    validate_device_id(device_id)
    if device_id in paths.reserved:
        raise ConfigError("device", "id", f"{device_id!r} is reserved")
    registry = load_registry(paths.registry_file)
    passwords = read_password_file(paths.password_file)
    if device_id in registry.devices or device_id in passwords:
        raise ConfigError("device", "id", f"{device_id!r} exists; remove it first")
    record = DeviceRecord(
        device_id=device_id,
        kind=kind,
        auth=AUTH_CERT if use_cert else AUTH_PASSWORD,
        added=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    registry.devices[device_id] = record
    registry.revoked.discard(device_id)
    # Rendered before anything is written: a missing template fails with nothing changed.
    acl = render_acl(paths.agent_user, paths.household_user, registry.revoked)
    with FileTransaction() as tx:
        tx.track(paths.password_file, paths.registry_file, paths.acl_file)
        if use_cert:
            if not paths.ca_file.is_file():
                raise ConfigError(str(paths.ca_dir), "ca_dir", "no household CA; run device init")
            out = paths.ca_dir / "clients"
            cert, key = out / f"{device_id}.crt", out / f"{device_id}.key"
            tx.track(cert, key, *_ca_database(paths))
            run_script("make-client-cert.sh", str(paths.ca_dir), device_id, str(out))
            creds = DeviceCredentials(record, cert_file=cert, key_file=key)
        else:
            password = new_password()
            passwords[device_id] = hash_password(password)
            write_password_file(paths.password_file, passwords)
            creds = DeviceCredentials(record, password=password)
        save_registry(paths.registry_file, registry)
        write_private_file(paths.acl_file, acl)
        if apply is not None:
            apply()
    log.info("provision.device_added device=%s kind=%s auth=%s", device_id, kind, record.auth)
    return creds


def remove_device(
    paths: BrokerPaths, device_id: str, *, apply: Callable[[], None] | None = None
) -> DeviceRecord:
    """Revoke a device: drop its password, revoke its certificate, deny its id in the ACL.

    ``apply`` (the reload) runs last; a failure anywhere puts every file back. After the
    reload mosquitto disconnects a password device at once; a live certificate session
    stays open but may no longer publish or receive anything.
    """
    registry = load_registry(paths.registry_file)
    passwords = read_password_file(paths.password_file)
    if device_id in paths.reserved:
        raise ConfigError("device", "id", f"{device_id!r} is not a device")
    record = registry.devices.pop(device_id, None)
    if record is None and device_id not in passwords:
        raise ConfigError("device", "id", f"no device {device_id!r}")
    registry.revoked.add(device_id)
    acl = render_acl(paths.agent_user, paths.household_user, registry.revoked)
    with FileTransaction() as tx:
        tx.track(paths.password_file, paths.registry_file, paths.acl_file)
        if device_id in passwords:
            del passwords[device_id]
            write_password_file(paths.password_file, passwords)
        if record is not None and record.auth == AUTH_CERT:
            client = [paths.ca_dir / "clients" / f"{device_id}{s}" for s in (".crt", ".key")]
            tx.track(*client, *_ca_database(paths))
            run_script("revoke-client-cert.sh", str(paths.ca_dir), device_id)
            for path in client:
                path.unlink(missing_ok=True)
        save_registry(paths.registry_file, registry)
        write_private_file(paths.acl_file, acl)
        if apply is not None:
            apply()
    log.info("provision.device_removed device=%s", device_id)
    return record or DeviceRecord(device_id, "unknown", AUTH_PASSWORD, "")


def list_devices(paths: BrokerPaths) -> list[DeviceRecord]:
    """Registered devices plus password-file accounts made by hand (kind ``unknown``)."""
    devices = dict(load_registry(paths.registry_file).devices)
    for user in read_password_file(paths.password_file):
        if user not in devices and user not in paths.reserved:
            devices[user] = DeviceRecord(user, "unknown", AUTH_PASSWORD, "")
    return [devices[key] for key in sorted(devices)]


