"""The doctor's checks of what lies outside the gateway: the settings and the secrets they
name, the MQTT broker (one throw-away clean-session client) and the vendor API (one order
lookup with a probe key). Nothing here writes."""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttSettings, Settings, VendorSettings
from agent.errors import ConfigError, VendorError, VendorFinal
from agent.logs import register_secret
from agent.ops.doctor_report import CheckResult, Level, Probes
from agent.ops.systemd import credentials_env, read_service_secret
from agent.vendor.client import VendorClient

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

PROBE_KEY = "replenish-doctor-probe"


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
    answer: list[ReasonCode] = []
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
