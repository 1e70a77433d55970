"""Wall-clock time for CLI commands, with one override for simulations.

The service takes ``now`` from an injected clock. Household commands run as separate
processes, so a simulation (``make demo``, a vendor's test rig running the agent on a
compressed clock) sets ``REPLENISH_NOW`` to the simulated instant, making approvals,
cancellations and away periods line up with the agent's simulated time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

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
