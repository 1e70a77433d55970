"""The pure retry helpers of agent.vendor.client: jittered backoff and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.vendor.client import BACKOFF_CAP_S, RETRY_AFTER_CAP_S, backoff_delay, parse_retry_after


@given(
    attempt=st.integers(min_value=0, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False),
)
def test_backoff_is_jittered_exponential_capped_and_honours_retry_after(
    attempt: int, seed: int, retry_after: float | None
) -> None:
    delay = backoff_delay(attempt, random.Random(seed), retry_after)
    ceiling = min(BACKOFF_CAP_S, 2.0**attempt)
    assert delay >= ceiling / 2
    if retry_after:
        assert delay >= min(retry_after, RETRY_AFTER_CAP_S)
        assert delay <= max(ceiling, min(retry_after, RETRY_AFTER_CAP_S))
    else:
        assert delay <= ceiling
    assert backoff_delay(attempt, random.Random(seed), retry_after) == delay


def test_backoff_grows_then_caps() -> None:
    rng = random.Random(1)
    means = [sum(backoff_delay(a, rng) for _ in range(200)) / 200 for a in range(12)]
    assert means[0] < means[3] < means[6]
    assert means[11] <= BACKOFF_CAP_S
    assert means[11] == pytest.approx(means[10], rel=0.1)  # both at the cap
    with pytest.raises(ValueError):
        backoff_delay(-1, rng)


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 5 ") == 5.0
    assert parse_retry_after("Mon, 05 Jan 2026 08:01:00 GMT", now) == 60.0
    assert parse_retry_after("Mon, 05 Jan 2026 07:00:00 GMT", now) == 0.0
    assert parse_retry_after("99999999999") == RETRY_AFTER_CAP_S
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None
