"""Poll a Nightscout site: faults are counted and reported, never raised to the scheduler.

Like a vendor fault: a timeout, a refused token (401/403), a server error or an answer
that is not Nightscout's JSON is counted per reason (``source_rejects``, shown by
``replenish sources rejects`` and ``doctor``), logged once per poll, and the next poll
tries again. The token lives in a secret file, is registered with the log redactor and
travels in the query string as Nightscout expects (httpx's logger stays at WARNING).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.config import NightscoutSettings, read_secret
from agent.domain import DeviceKind
from agent.sources.nightscout.mapping import NightscoutDataError, levels
from agent.wire.device import Consumable, StateMessage

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SOURCE = "nightscout"
TREATMENTS = "/api/v1/treatments.json"
DEVICESTATUS = "/api/v1/devicestatus.json"
MAX_BYTES = 4 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class PollResult:
    states: list[StateMessage]
    fault: str | None = None


class NightscoutSource:
    """One Nightscout site as the wearable device ``ns-<name>``."""

    def __init__(self, settings: NightscoutSettings,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx
        self.settings = settings
        self.device_id = f"ns-{settings.name}"
        token = read_secret(settings.token_file, "sources.nightscout.token_file")
        secret = read_secret(settings.api_secret_file, "sources.nightscout.api_secret_file")
        self._params = {"token": token} if token else {}
        headers = {"Accept": "application/json"}
        if secret:
            headers["API-SECRET"] = hashlib.sha1(secret.encode()).hexdigest()  # noqa: S324 - Nightscout's scheme
        self.client = httpx.Client(base_url=settings.url.rstrip("/"), headers=headers,
                                   timeout=settings.timeout_s, transport=transport)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, count: int) -> Any:
        import httpx
        try:
            resp = self.client.get(path, params={**self._params, "count": count})
        except httpx.TimeoutException:
            raise _Fault("timeout") from None
        except httpx.HTTPError as err:
            raise _Fault(type(err).__name__) from None
        if resp.status_code in (401, 403):
            raise _Fault(f"HTTP {resp.status_code} (token refused)")
        if resp.status_code != 200:
            raise _Fault(f"HTTP {resp.status_code}")
        if len(resp.content) > MAX_BYTES:
            raise _Fault("answer too large")
        try:
            return resp.json()
        except ValueError:
            raise _Fault("malformed JSON") from None

    def poll(self, now: datetime, seq: Callable[[datetime], int] | None = None) -> PollResult:
        """Fetch treatments and device status; readings, or the fault's reason."""
        s = self.settings
        try:
            treatments = self._get(TREATMENTS, 100)
            statuses = self._get(DEVICESTATUS, 20)
            found = levels(treatments, statuses, now, sensor_life_days=s.sensor_life_days,
                           site_life_days=s.site_life_days, reservoir_u=s.reservoir_units)
        except _Fault as fault:
            log.warning("nightscout.poll name=%s fault=%s", s.name, fault.reason)
            return PollResult([], fault.reason)
        except NightscoutDataError:
            log.warning("nightscout.poll name=%s fault=unexpected JSON shape", s.name)
            return PollResult([], "unexpected JSON shape")
        states = []
        for lv in found:
            at = lv.at.astimezone(UTC)
            states.append(StateMessage(
                device_id=self.device_id, seq=(seq or _ms)(at), ts=at, kind=DeviceKind.WEARABLE,
                consumables=[Consumable(id=lv.consumable_id, level=round(lv.level, 4),
                                        unit=lv.unit, capacity=lv.capacity,
                                        sku=s.skus.get(lv.consumable_id))]))
        log.info("nightscout.poll name=%s readings=%d", s.name, len(states))
        return PollResult(states)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class _Fault(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
