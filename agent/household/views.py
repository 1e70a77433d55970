"""The one dashboard view: what every interface shows per consumable.

``replenish status``, the household topics over MQTT (and Home Assistant through them) and
the web app's home page all start from :func:`consumable_views`: the stored last reading,
the forecast's days left, the household's consent mode and the next order. Each interface
only renders it (a table, a retained JSON message, an HTML row), so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.forecast import Confidence
from agent.household.discovery import DeviceInfo
from agent.storage.ledger import OPEN, Intent, Ledger, State
from agent.storage.rows import ConsumableRow, DeviceRow
from agent.wire.household import ConsumableState


class ForecastSummary(Protocol):
    """What a dashboard reads of a forecast: the agent's own (``agent.forecast.Forecast``)
    or the one its last decision pass stored (``agent.storage.forecasts.StoredForecast``,
    which the web app reads instead of forecasting again)."""

    @property
    def confidence(self) -> Confidence: ...
    @property
    def low_signal(self) -> bool: ...
    @property
    def time_to_empty_days(self) -> tuple[float | None, float | None, float | None]: ...


@dataclass(slots=True, frozen=True, kw_only=True)
class ConsumableView:
    """One consumable as a dashboard shows it."""

    key: str  # device_id/consumable_id, the ledger's name
    cid: int
    device_id: str
    consumable_id: str
    level: float | None
    unit: str
    state: str | None
    last_ts: float | None  # epoch seconds of the newest reading
    readings: int | None  # None when the rows were read without counts
    forecast: ForecastSummary | None
    mode: str  # consent mode; "monitor" until the household chose one
    next_order_at: datetime | None  # the earliest queued intent's send time
    open_order: Intent | None  # the oldest open intent (proposed, queued, placed, ...)
    online: bool | None  # the device's last status; None if it never sent one

    @property
    def days_left(self) -> tuple[float | None, float | None, float | None]:
        """Days to run-out as p10, p50, p90 (all None without a forecast)."""
        return self.forecast.time_to_empty_days if self.forecast else (None, None, None)

    @property
    def updated_at(self) -> datetime | None:
        return None if self.last_ts is None else datetime.fromtimestamp(self.last_ts, UTC)


def consumable_views(devices: Sequence[DeviceRow], consumables: Sequence[ConsumableRow],
                     ledger: Ledger, forecasts: Mapping[str, ForecastSummary],
                     ) -> list[ConsumableView]:
    """Every stored consumable with its forecast, mode and orders, in the store's order."""
    modes = {c.consumable: c.mode.value for c in ledger.consents()}
    online = {d.device_id: d.online for d in devices}
    next_order: dict[str, datetime] = {}
    open_order: dict[str, Intent] = {}
    for it in ledger.intents(OPEN):
        open_order.setdefault(it.consumable, it)
        if it.state is State.QUEUED and it.send_after is not None:
            prev = next_order.get(it.consumable, it.send_after)
            next_order[it.consumable] = min(prev, it.send_after)
    views = []
    for c in consumables:
        key = str(c.key)
        views.append(ConsumableView(
            key=key, cid=c.cid, device_id=c.device_id, consumable_id=c.consumable_id,
            level=c.last_level, unit=c.unit, state=c.last_state, last_ts=c.last_ts,
            readings=c.readings, forecast=forecasts.get(key),
            mode=modes.get(key, "monitor"), next_order_at=next_order.get(key),
            open_order=open_order.get(key), online=online.get(c.device_id)))
    return views


def device_views(devices: Sequence[DeviceRow], consumables: Sequence[ConsumableRow],
                 ) -> tuple[list[DeviceInfo], dict[str, bool]]:
    """Devices with their consumables (for discovery) and their online flags."""
    by_device: dict[str, list[tuple[str, str]]] = {}
    for c in consumables:
        by_device.setdefault(c.device_id, []).append((c.consumable_id, c.unit))
    infos = []
    availability: dict[str, bool] = {}
    for d in devices:
        infos.append(DeviceInfo(d.device_id, d.kind.value,
                                tuple(by_device.get(d.device_id, []))))
        if d.online is not None:
            availability[d.device_id] = d.online
    return infos, availability


def consumable_states(views: Sequence[ConsumableView]) -> list[ConsumableState]:
    """The retained household message per consumable that has a reading."""
    states = []
    for v in views:
        if v.updated_at is None:
            continue
        p10, p50, _ = v.days_left
        states.append(ConsumableState(
            device_id=v.device_id, consumable_id=v.consumable_id, level=v.level, unit=v.unit,
            state=v.state, days_left=p50, days_left_p10=p10,
            confidence=v.forecast.confidence.value if v.forecast else "none", mode=v.mode,
            next_order_at=v.next_order_at, updated_at=v.updated_at))
    return states
