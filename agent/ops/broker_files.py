"""The household broker's templates and helper scripts: finding, rendering, running them.

The templates and CA scripts live in ``broker_config/`` (a source checkout) or, after
``make install``, in the release venv's ``share/replenish-agent/broker_config``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from agent.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_PID_FILE = Path("/run/mosquitto/mosquitto.pid")
DEFAULT_AGENT_USER = "agent"
DEFAULT_HOUSEHOLD_USER = "household"
_BROKER_CONFIG_ENV = "REPLENISH_BROKER_CONFIG_DIR"


def broker_config_candidates() -> list[Path]:
    """Where the mosquitto templates and CA scripts may be, in the order looked at."""
    override = os.environ.get(_BROKER_CONFIG_ENV)
    if override:
        return [Path(override)]
    return [
        # A source checkout: broker_config/ next to the agent package.
        Path(__file__).resolve().parents[2] / "broker_config",
        # `make install`: shipped inside the release venv, so it upgrades and rolls
        # back together with the code that renders it.
        Path(sys.prefix) / "share" / "replenish-agent" / "broker_config",
        Path("/usr/share/replenish-agent/broker_config"),
    ]


def broker_config_dir() -> Path:
    """Directory holding the mosquitto templates and CA scripts.

    ``$REPLENISH_BROKER_CONFIG_DIR`` wins; then the source checkout; then the installed
    copies. A missing directory names every place looked at and how to fix it, rather
    than blaming the environment variable nobody set.
    """
    candidates = broker_config_candidates()
    for path in candidates:
        if (path / "mosquitto.conf.template").is_file():
            return path
    if os.environ.get(_BROKER_CONFIG_ENV):
        raise ConfigError(
            f"environment {_BROKER_CONFIG_ENV}", str(candidates[0]),
            "no mosquitto.conf.template there; point it at a broker_config/ directory",
        )
    looked = ", ".join(str(p) for p in candidates)
    raise ConfigError(
        "installation", "broker_config",
        f"mosquitto templates not found (looked in {looked}); "
        "reinstall with `sudo make install` from the source tree",
    )


def render(template_name: str, values: Mapping[str, object]) -> str:
    """Fill ``${NAME}`` placeholders of a template in :func:`broker_config_dir`."""
    text = (broker_config_dir() / template_name).read_text()
    try:
        return Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as err:
        raise ConfigError(template_name, str(err), "template value missing") from err


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
    log.info("provision.broker_reloaded pid=%d", pid)


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
