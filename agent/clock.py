"""Wall-clock time for CLI commands, with one override for simulations.

The service takes ``now`` from an injected clock. Household commands run as separate
processes, so a simulation (``make demo``, a vendor's test rig running the agent on a
compressed clock) sets ``REPLENISH_NOW`` to the simulated instant, making approvals,
cancellations and away periods line up with the agent's simulated time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError

NOW_ENV = "REPLENISH_NOW"


def cli_now(env: Mapping[str, str] | None = None) -> datetime:
    """The current instant, or ``$REPLENISH_NOW`` (ISO 8601 with a zone) when set."""
    env = os.environ if env is None else env
    raw = env.get(NOW_ENV)
    if not raw:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"environment {NOW_ENV}", NOW_ENV, "not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ConfigError(f"environment {NOW_ENV}", NOW_ENV, "needs a time zone")
    return value


def household_zone(name: str | None, env: Mapping[str, str] | None = None) -> tzinfo:
    """The household's time zone: the configured IANA name, else the gateway's local zone.

    Dates the household types (``--expires 2027-06-30``, away days) and times shown to it
    are in this zone. The gateway's zone comes from ``$TZ`` or ``/etc/localtime`` as a
    named zone, so a date next summer gets next summer's offset (``astimezone()`` would
    freeze today's).
    """
    env = os.environ if env is None else env
    candidates = [name] if name else [env.get("TZ", "").lstrip(":"), _localtime_key()]
    for key in candidates:
        if not key:
            continue
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            if name:
                raise ConfigError("settings", "time_zone", f"unknown time zone {name!r}") from None
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC


def _localtime_key() -> str:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    _, sep, key = target.partition("zoneinfo/")
    return key if sep else ""
