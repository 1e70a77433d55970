"""When to call the vendor again: exponential backoff with jitter, and ``Retry-After``."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
RETRY_AFTER_CAP_S = 86_400.0


def backoff_delay(attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential from :data:`BACKOFF_BASE_S`, capped at :data:`BACKOFF_CAP_S`, with "equal
    jitter" (a random point in the upper half) so many agents do not retry in step. A
    vendor's ``Retry-After`` is a floor, itself capped at :data:`RETRY_AFTER_CAP_S`.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, 32))
    delay = rng.uniform(ceiling / 2, ceiling)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delay-seconds or HTTP-date); None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)
