from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.clock import cli_now
from agent.errors import ConfigError


def test_real_time_by_default() -> None:
    assert abs((cli_now({}) - datetime.now(UTC)).total_seconds()) < 5


def test_simulated_instant() -> None:
    assert cli_now({"REPLENISH_NOW": "2026-01-05T06:00:00+00:00"}) == datetime(
        2026, 1, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", "2026-01-05T06:00:00"])
def test_bad_values_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError):
        cli_now({"REPLENISH_NOW": raw})
