"""The gateway-to-vendor Mosquitto bridge: orders and health out, never telemetry.

:func:`render_bridge_conf` fills ``broker_config/bridge.conf.template``. The allow list
is fixed here rather than configurable per topic so a typo in a household's settings
can never widen it: only the fleet topics under ``replenish/v1/fleet/`` cross, and
only outwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from agent.ops.provisioning import render

FLEET_ROOT = "replenish/v1/fleet/"
# Pattern (below FLEET_ROOT) -> what it is. Orders and health only.
ALLOWED_TOPICS: dict[str, str] = {
    "orders/#": "purchase orders and their vendor states",
    "health": "agent health: version, ready, problems (no readings)",
}
_GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


@dataclass(slots=True, frozen=True, kw_only=True)
class BridgeSettings:
    """Where the vendor's broker is and the files that identify this gateway to it."""

    gateway_id: str
    vendor_host: str
    vendor_port: int = 8883
    vendor_ca_file: Path
    cert_file: Path
    key_file: Path
    restart_min_s: int = 5
    restart_max_s: int = 300


def allow_list(gateway_id: str) -> str:
    """The bridge's ``topic`` lines: each allowed pattern, out only, QoS 1."""
    remote = f"gateways/{gateway_id}/"
    return "\n".join(
        f"topic {pattern} out 1 {FLEET_ROOT} {remote}" for pattern in ALLOWED_TOPICS
    )


def render_bridge_conf(settings: BridgeSettings) -> str:
    """The bridge section for the household broker's configuration."""
    if not _GATEWAY_ID.fullmatch(settings.gateway_id):
        raise ConfigError("bridge", "gateway_id", "letters, digits, '-' and '_' only")
    if not _HOST.fullmatch(settings.vendor_host):
        raise ConfigError("bridge", "vendor_host", "a host name or address")
    if not 0 < settings.vendor_port < 65536:
        raise ConfigError("bridge", "vendor_port", "a TCP port")
    return render(
        "bridge.conf.template",
        {
            "GATEWAY_ID": settings.gateway_id,
            "VENDOR_HOST": settings.vendor_host,
            "VENDOR_PORT": settings.vendor_port,
            "VENDOR_CA_FILE": settings.vendor_ca_file,
            "GATEWAY_CERT_FILE": settings.cert_file,
            "GATEWAY_KEY_FILE": settings.key_file,
            "RESTART_MIN_S": settings.restart_min_s,
            "RESTART_MAX_S": settings.restart_max_s,
            "ALLOW_LIST": allow_list(settings.gateway_id),
        },
    )
