"""Broker-side files for the household gateway: password file, ACL, mosquitto.conf.

Everything here is file handling plus one reload signal; the templates live in
``broker_config/``. Mosquitto 2.0 password hashes (``$7$``: PBKDF2-SHA512) are made in
Python so passwords never appear on a command line (``mosquitto_passwd -b`` would put
them in ``ps`` output).

Device identity is the MQTT username: ``broker_config/acl.template`` uses ``%u``
patterns, so adding a device only adds a password-file line (or a client certificate
whose CN is the device id). The only per-device ACL lines deny removed ids, which
cuts off a certificate device's live session (the CRL only stops reconnects).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from agent.errors import BrokerError, ConfigError
from agent.wire.device import ID_PATTERN

log = logging.getLogger(__name__)

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/replenish.passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/replenish.acl")
DEFAULT_PID_FILE = Path("/run/mosquitto/mosquitto.pid")
DEFAULT_CA_DIR = Path("/etc/mosquitto/replenish-ca")
DEFAULT_AGENT_USER = "agent"
DEFAULT_HOUSEHOLD_USER = "household"
# Names with a fixed role in the ACL; a device must never get one of them.
RESERVED_USERS = frozenset({DEFAULT_AGENT_USER, DEFAULT_HOUSEHOLD_USER, "admin", "root"})

HASH_ITERATIONS = 101  # mosquitto_passwd's default for $7$ hashes in 2.0
_SALT_BYTES = 12
_BROKER_CONFIG_ENV = "REPLENISH_BROKER_CONFIG_DIR"


def broker_config_dir() -> Path:
    """Directory holding the mosquitto templates and CA scripts.

    ``$REPLENISH_BROKER_CONFIG_DIR`` wins; then the source checkout (``broker_config/``
    next to the ``agent`` package); then the packaged location.
    """
    override = os.environ.get(_BROKER_CONFIG_ENV)
    candidates = [Path(override)] if override else []
    candidates += [
        Path(__file__).resolve().parents[2] / "broker_config",
        Path("/usr/share/replenish-agent/broker_config"),
    ]
    for path in candidates:
        if (path / "mosquitto.conf.template").is_file():
            return path
    raise ConfigError(_BROKER_CONFIG_ENV, "broker_config", "mosquitto templates not found")


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is usable as MQTT username and topic level."""
    if not re.fullmatch(ID_PATTERN, device_id):
        raise ConfigError("device", "id", "must match " + ID_PATTERN)
    if device_id in RESERVED_USERS:
        raise ConfigError("device", "id", f"{device_id!r} is reserved")
    return device_id


def new_password() -> str:
    """A random device password (128 bits, URL-safe, easy to paste into a device UI)."""
    return secrets.token_urlsafe(16)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2.0 ``$7$`` hash: PBKDF2-HMAC-SHA512, as written by mosquitto_passwd."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${HASH_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash line value."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3])
        expected = base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def read_password_file(path: Path) -> dict[str, str]:
    """Username -> hash, in file order. A missing file is an empty mapping."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(str(path), "password_file", "cannot read") from err
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, value = line.partition(":")
        if not sep:
            raise ConfigError(str(path), "password_file", "line without ':'")
        entries[user] = value
    return entries


def write_password_file(path: Path, entries: Mapping[str, str]) -> None:
    """Atomically replace the password file (mode 0640, group readable by mosquitto)."""
    body = "".join(f"{user}:{value}\n" for user, value in entries.items())
    write_private_file(path, body)


def write_private_file(
    path: Path, body: str, mode: int = 0o640, *, broker_readable: bool = True
) -> None:
    """Write ``body`` via a temp file + rename so mosquitto never reads half a file.

    With ``broker_readable`` and run as root, the file's group becomes ``mosquitto``
    (if that group exists): the broker drops root before it rereads files on SIGHUP.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if broker_readable:
            _chgrp_mosquitto(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigError(str(path), "file", f"cannot write: {err.strerror}") from err


def _chgrp_mosquitto(path: Path) -> None:
    if os.geteuid() != 0:
        return
    import grp

    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return
    os.chown(path, 0, gid)


def render(template_name: str, values: Mapping[str, object]) -> str:
    """Fill ``${NAME}`` placeholders of a template in :func:`broker_config_dir`."""
    text = (broker_config_dir() / template_name).read_text()
    try:
        return Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as err:
        raise ConfigError(template_name, str(err), "template value missing") from err


# What the agent may read of other systems (issue 19): HA discovery configs, Zigbee2MQTT,
# Valetudo and ESPHome nodes whose topic_prefix is esphome/<node>. Other state topics
# (explicit mappings, other discovery devices) need their own read line (docs/sources.md).
DEFAULT_FOREIGN_READ = ("homeassistant/+/+/config", "homeassistant/+/+/+/config",
                        "zigbee2mqtt/#", "valetudo/#", "esphome/#")


def render_acl(
    agent_user: str = DEFAULT_AGENT_USER,
    household_user: str = DEFAULT_HOUSEHOLD_USER,
    revoked: Iterable[str] = (),
    foreign_read: Iterable[str] = DEFAULT_FOREIGN_READ,
) -> str:
    """The ACL text: ``%u`` patterns for devices, fixed roles, and removed device ids."""
    denied = "".join(f"user {name}\ntopic deny #\n" for name in sorted(set(revoked)))
    foreign = "".join(f"topic read {t}\n" for t in foreign_read)
    return render(
        "acl.template",
        {"AGENT_USER": agent_user, "HOUSEHOLD_USER": household_user, "REVOKED": denied,
         "AGENT_FOREIGN_READ": foreign},
    )


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Server-side TLS material for the LAN listeners."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    port: int = 8883
    bind: str = "0.0.0.0"
    cert_port: int | None = None  # mutual-TLS listener (client certificates)
    crl_file: Path | None = None


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """Process-level settings a standalone broker needs (Debian's main conf has its own)."""

    persistence_dir: Path
    pid_file: Path
    log_file: Path | None = None  # None: syslog / journald
    run_user: str = "mosquitto"


def render_mosquitto_conf(
    *,
    local_port: int,
    password_file: Path,
    acl_file: Path,
    tls: TlsFiles | None = None,
    process: ProcessSettings | None = None,
    extra_conf: str = "",
) -> str:
    """The mosquitto.conf text: a full standalone file with ``process``, else a conf.d part."""
    listeners = ""
    if tls is not None:
        common = {
            "TLS_BIND": tls.bind,
            "CA_FILE": tls.ca_file,
            "CERT_FILE": tls.cert_file,
            "KEY_FILE": tls.key_file,
        }
        listeners = render("tls-listener.conf.template", {**common, "TLS_PORT": tls.port})
        if tls.cert_port is not None:
            crl = f"crlfile {tls.crl_file}" if tls.crl_file is not None else ""
            listeners += render(
                "cert-listener.conf.template",
                {**common, "CERT_PORT": tls.cert_port, "CRL_LINE": crl},
            )
    head = ""
    if process is not None:
        log_dest = (
            f"log_dest file {process.log_file}"
            if process.log_file is not None
            else "log_dest syslog"
        )
        head = render(
            "process.conf.template",
            {
                "PERSISTENCE_DIR": process.persistence_dir,
                "PID_FILE": process.pid_file,
                "RUN_USER": process.run_user,
                "LOG_DEST": log_dest,
            },
        )
    body = render(
        "mosquitto.conf.template",
        {
            "PASSWORD_FILE": password_file,
            "ACL_FILE": acl_file,
            "LOCAL_PORT": local_port,
            "TLS_LISTENERS": listeners,
            "EXTRA_CONF": extra_conf,
        },
    )
    return head + "\n" + body if head else body


def reload_broker(pid_file: Path | None = None, reload_command: str | None = None) -> None:
    """Make mosquitto reread the password file and ACL.

    ``reload_command`` (e.g. ``systemctl reload mosquitto``) wins; otherwise SIGHUP goes
    to the pid in ``pid_file``.
    """
    if reload_command:
        try:
            subprocess.run(reload_command.split(), check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as err:
            raise BrokerError(f"broker reload command failed: {reload_command}") from err
        return
    path = pid_file or DEFAULT_PID_FILE
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as err:
        raise BrokerError(f"cannot signal mosquitto via pid file {path}") from err
    log.info("sent SIGHUP to mosquitto pid %d", pid)


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


@dataclass(slots=True)
class Registry:
    """The registry file: provisioned devices and ids removed since (denied in the ACL)."""

    devices: dict[str, DeviceRecord]
    revoked: set[str]


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
    except (KeyError, TypeError, AttributeError) as err:
        raise ConfigError(str(path), "registry_file", "unexpected structure") from err
    return Registry(devices, revoked)


def save_registry(path: Path, registry: Registry) -> None:
    """Write the registry (sorted; it holds no secrets)."""
    items = [asdict(registry.devices[key]) for key in sorted(registry.devices)]
    body = {"devices": items, "revoked": sorted(registry.revoked)}
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


def add_device(
    paths: BrokerPaths, device_id: str, kind: str, *, now: datetime, use_cert: bool = False
) -> DeviceCredentials:
    """Create credentials for a new device and make sure the ACL is in place.

    The broker still needs :func:`reload_broker` afterwards. A device that exists is
    refused: remove it first, so old credentials never stay valid by accident.
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
    if use_cert:
        if not paths.ca_file.is_file():
            raise ConfigError(str(paths.ca_dir), "ca_dir", "no household CA; run device init")
        out = paths.ca_dir / "clients"
        run_script("make-client-cert.sh", str(paths.ca_dir), device_id, str(out))
        creds = DeviceCredentials(
            record, cert_file=out / f"{device_id}.crt", key_file=out / f"{device_id}.key"
        )
    else:
        password = new_password()
        passwords[device_id] = hash_password(password)
        write_password_file(paths.password_file, passwords)
        creds = DeviceCredentials(record, password=password)
    registry.devices[device_id] = record
    registry.revoked.discard(device_id)
    save_registry(paths.registry_file, registry)
    ensure_acl(paths)
    log.info("device added: %s (%s, %s)", device_id, kind, record.auth)
    return creds


def remove_device(paths: BrokerPaths, device_id: str) -> DeviceRecord:
    """Revoke a device: drop its password, revoke its certificate, deny its id in the ACL.

    Reload afterwards: mosquitto then disconnects a password device at once; a live
    certificate session stays open but may no longer publish or receive anything.
    """
    registry = load_registry(paths.registry_file)
    passwords = read_password_file(paths.password_file)
    if device_id in paths.reserved:
        raise ConfigError("device", "id", f"{device_id!r} is not a device")
    record = registry.devices.pop(device_id, None)
    if record is None and device_id not in passwords:
        raise ConfigError("device", "id", f"no device {device_id!r}")
    if device_id in passwords:
        del passwords[device_id]
        write_password_file(paths.password_file, passwords)
    if record is not None and record.auth == AUTH_CERT:
        run_script("revoke-client-cert.sh", str(paths.ca_dir), device_id)
        for suffix in (".crt", ".key"):
            (paths.ca_dir / "clients" / f"{device_id}{suffix}").unlink(missing_ok=True)
    registry.revoked.add(device_id)
    save_registry(paths.registry_file, registry)
    ensure_acl(paths)
    log.info("device removed: %s", device_id)
    return record or DeviceRecord(device_id, "unknown", AUTH_PASSWORD, "")


def list_devices(paths: BrokerPaths) -> list[DeviceRecord]:
    """Registered devices plus password-file accounts made by hand (kind ``unknown``)."""
    devices = dict(load_registry(paths.registry_file).devices)
    for user in read_password_file(paths.password_file):
        if user not in devices and user not in paths.reserved:
            devices[user] = DeviceRecord(user, "unknown", AUTH_PASSWORD, "")
    return [devices[key] for key in sorted(devices)]


def run_script(name: str, *args: str) -> None:
    """Run one of the ``broker_config/*.sh`` helpers; failures become ConfigError."""
    script = broker_config_dir() / name
    try:
        result = subprocess.run(
            ["/bin/sh", str(script), *args], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise ConfigError(str(script), name, "could not run") from err
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1][:200]
        raise ConfigError(str(script), name, reason)
