"""The simulated device base class: timed-action heap, deliveries, habits, seq, backlog.

Concrete devices (:mod:`firmware_sim.devices.appliances`) plan one local day at a time in
``_plan_day``, apply their own actions in ``_apply`` and describe what they publish in
``_report``; everything else (ground truth, closed-loop deliveries, the household's own
shopping, spoilage, irregular reporting with catch-up) lives here. Pure: no clock reads,
no I/O.
"""

from __future__ import annotations

import heapq
import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from agent.domain import DeviceKind, Unit
from agent.wire.device import EventMessage, EventType, StateMessage
from firmware_sim.devices.link import Link, LinkProfile
from firmware_sim.devices.stock import ConsumableTruth, RefillHabit, RefillMode, Stock, Usage

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def make_stock(cid: str, unit: Unit, spec: Mapping[str, Any], *, capacity: float,
               pack_size: float, start: datetime, initial: float | None = None) -> Stock:
    """A :class:`Stock` from a scenario table (keys sku, capacity, pack_size, initial,
    spare_packs, shelf_life_days, refill); arguments are the device's defaults."""
    shelf = spec.get("shelf_life_days")
    stock = Stock(
        id=cid,
        unit=unit,
        capacity=float(spec.get("capacity", capacity)),
        pack_size=float(spec.get("pack_size", pack_size)),
        sku=str(spec.get("sku", f"SIM-{cid.upper()}")),
        shelf_life=timedelta(days=float(shelf)) if shelf is not None else None,
        refill=RefillHabit.from_dict(spec.get("refill")),
    )
    level = float(spec.get("initial", initial if initial is not None else stock.capacity))
    stock.put(min(level, stock.capacity), start)
    stock.spare = float(spec.get("spare_packs", 0)) * stock.pack_size
    return stock


class SimDevice(ABC):
    """Common machinery: the action heap, deliveries, habits, seq, reports and backlog."""

    kind: ClassVar[DeviceKind] = DeviceKind.OTHER
    # Heartbeat when none is given; devices also report right after any measured change.
    DEFAULT_REPORT_EVERY: ClassVar[timedelta] = timedelta(hours=1)
    # Actions that change nothing the device measures (no report-on-change after them).
    _QUIET: ClassVar[frozenset[str]] = frozenset({"trip", "charge", "battery_low"})

    def __init__(self, device_id: str, *, start: datetime, seed: int,
                 usage: Usage | None = None, report_every: timedelta | None = None,
                 report_on_change: bool = True, link: LinkProfile | None = None,
                 put_away_delay: timedelta = HOUR, pauses_when_away: bool = True,
                 fw: str = "sim-1.0") -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.device_id = device_id
        self.start = start
        self.now = start
        self.seed = seed
        self.usage = usage or Usage()
        self.report_every = report_every or self.DEFAULT_REPORT_EVERY
        self.report_on_change = report_on_change
        self._kind = self.kind.value
        self.put_away_delay = put_away_delay
        self.pauses_when_away = pauses_when_away
        self.fw = fw
        root = random.Random(seed)
        self.rng = random.Random(root.getrandbits(64))  # behaviour: drives the truth
        self._noise = random.Random(root.getrandbits(64))  # reporting only
        self._habit_rng = random.Random(root.getrandbits(64))  # household's own shopping
        self._link = Link(link or LinkProfile(), root.getrandbits(32), start)
        self.stocks: dict[str, Stock] = {}
        self.seq = 0
        self._heap: list[tuple[datetime, int, str, Any]] = []
        self._tick = itertools.count()
        self._events: list[EventMessage] = []
        self._backlog: list[dict[str, Any]] = []
        self._out: list[tuple[datetime, dict[str, Any]]] = []
        local = start + self.usage.utc_offset
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        self._next_day = midnight - self.usage.utc_offset
        self._next_beat = start

    # -- time -------------------------------------------------------------------------
    def advance(self, until: datetime) -> list[EventMessage]:
        """Simulate up to ``until``; returns the events emitted since the last call."""
        self._advance_to(until)
        out, self._events = self._events, []
        return out

    def _advance_to(self, until: datetime) -> None:
        # Three clocks: day planning, the action heap, the heartbeat. On a tie, plan the
        # day first and report last, so a heartbeat shows what happened at its instant.
        heap = self._heap
        while True:
            due = heap[0][0] if heap else None
            beat = self._next_beat
            day = self._next_day
            if day <= until and (due is None or day <= due) and day <= beat:
                self._next_day = day + DAY
                self._plan_day(day)
                continue
            if due is not None and due <= until and due <= beat:
                at, _, action, payload = heapq.heappop(heap)
                if at > self.now:
                    self.now = at
                self._apply(action, payload, at)
                if (self.report_on_change and action not in self._QUIET
                        and not (heap and heap[0][0] == at) and at != beat):
                    self._publish(at)  # once per instant, after everything that happened
                continue
            if beat <= until:
                self._next_beat = beat + self.report_every
                if beat > self.now:
                    self.now = beat
                self._publish(beat)
                continue
            break
        if until > self.now:
            self.now = until

    def _schedule(self, at: datetime, action: str, payload: Any = None) -> None:
        heapq.heappush(self._heap, (max(at, self.now), next(self._tick), action, payload))

    def _active(self, t: datetime) -> bool:
        """Whether use happens at ``t`` (not before start, not while the household is away)."""
        return t >= self.start and not (self.pauses_when_away and self.usage.is_away(t))

    # -- actions ----------------------------------------------------------------------
    def _plan_day(self, day: datetime) -> None:
        """Push the day's actions (``day`` is local midnight); also starts shopping trips."""
        for cid, stock in self.stocks.items():
            habit = stock.refill
            if habit.mode is RefillMode.EVERY and day <= self.start < day + DAY:
                first = day + timedelta(hours=habit.hour)
                first += timedelta(days=self._habit_rng.uniform(0, habit.every_days))
                self._schedule(first, "trip", cid)

    def _apply(self, action: str, payload: Any, at: datetime) -> None:
        if action == "use":
            cid, amount = payload
            self._use(cid, amount, at)
        elif action == "put":
            cid, amount, own = payload
            self._put_in(cid, amount, at, own)
        elif action == "spoil":
            if self.stocks[payload].spoil(at):
                self._after_use(payload, at)
        elif action == "trip":
            self._trip(payload, at)
        else:
            raise ValueError(f"unknown action {action}")

    def _use(self, cid: str, amount: float, at: datetime) -> None:
        self.stocks[cid].take(amount, at)
        self._after_use(cid, at)

    def _after_use(self, cid: str, at: datetime) -> None:
        """Move spare stock in if it fits, then let the household's habit react."""
        self._fill(cid, at)
        stock = self.stocks[cid]
        habit = stock.refill
        if stock.self_order_open or habit.mode in (RefillMode.NONE, RefillMode.EVERY):
            return
        low = stock.level <= habit.threshold * stock.capacity and stock.spare <= 0
        if (habit.mode is RefillMode.WHEN_EMPTY and stock.level <= 0) or (
            habit.mode is RefillMode.WHEN_LOW and low
        ):
            stock.self_order_open = True
            home = at + timedelta(days=self._habit_rng.uniform(*habit.delay_days))
            self._schedule(self._put_time(home), "put", (cid, habit.packs * stock.pack_size, True))

    def _trip(self, cid: str, at: datetime) -> None:
        """A routine shopping trip: buy the usual packs (or fill up), unless away."""
        stock = self.stocks[cid]
        habit = stock.refill
        self._schedule(at + timedelta(days=habit.every_days), "trip", cid)
        if self.usage.is_away(at):
            return
        packs = habit.packs
        if habit.fill:
            packs = int((stock.capacity - stock.level - stock.spare) // stock.pack_size)
        if packs > 0:
            self._schedule(self._put_time(at), "put", (cid, packs * stock.pack_size, True))

    def _put_in(self, cid: str, amount: float, at: datetime, own: bool) -> None:
        stock = self.stocks[cid]
        if own:
            stock.self_order_open = False
        stock.spare += amount
        self._fill(cid, at)
        self._after_use(cid, at)

    def _fill(self, cid: str, at: datetime) -> None:
        """Move spare stock into the device while whole packs fit (or it is empty)."""
        stock = self.stocks[cid]
        moved = 0.0
        while stock.spare > 1e-9 and (stock.room() >= stock.pack_size or stock.level <= 0):
            amount = min(stock.pack_size, stock.spare)
            stock.spare -= amount
            stock.put(amount, at)
            moved += amount
            if stock.shelf_life is not None:
                self._schedule(at + stock.shelf_life, "spoil", cid)
        if moved:
            self._emit(EventType.REFILLED, cid, at)

    def _put_time(self, delivered: datetime) -> datetime:
        """When a delivery is put away: after the delay, and only once someone is home."""
        return self.usage.away_until(delivered + self.put_away_delay)

    # -- closed loop ------------------------------------------------------------------
    def deliver(self, consumable_id: str, packs: int, at: datetime) -> None:
        """A vendor delivery of ``packs`` packs at ``at``; put in after ``put_away_delay``."""
        if consumable_id not in self.stocks:
            raise KeyError(consumable_id)
        if packs < 1:
            raise ValueError("packs must be at least 1")
        amount = packs * self.stocks[consumable_id].pack_size
        self._schedule(self._put_time(at), "put", (consumable_id, amount, False))

    # -- ground truth -----------------------------------------------------------------
    def truth(self) -> dict[str, ConsumableTruth]:
        """Detached ground truth of every orderable consumable at the device's clock."""
        return {cid: s.truth(self._rate(cid, self.now)) for cid, s in self.stocks.items()}

    def stock_out(self, consumable_id: str) -> bool:
        """True while the consumable's true level is zero."""
        return self.stocks[consumable_id].level <= 0

    def run_outs(self, consumable_id: str) -> list[datetime]:
        """Every time the consumable ran out."""
        return list(self.stocks[consumable_id].run_outs)

    def stockouts(self, consumable_id: str) -> list[tuple[datetime, datetime | None]]:
        """Intervals without stock (end None while still out)."""
        return list(self.stocks[consumable_id].stockouts)

    @abstractmethod
    def _rate(self, cid: str, t: datetime) -> float:
        """True mean use per day of consumable ``cid`` at ``t``."""

    # -- reporting --------------------------------------------------------------------
    def _publish(self, at: datetime) -> None:
        """Take a reading at ``at`` and send it, or buffer it while the link is down."""
        if not self._powered(at):
            return
        online = self._link.online(at)
        if not online and not self._link.profile.buffer:
            return
        self.seq += 1
        payload = {
            "device_id": self.device_id, "seq": self.seq, "ts": at, "kind": self._kind,
            "fw": self.fw, "consumables": self._report(at),
        }
        if not online:
            self._backlog.append(payload)
            if len(self._backlog) > self._link.profile.buffer_max:
                del self._backlog[0]  # a full buffer loses its oldest readings, like firmware
            return
        if self._backlog:
            self._out.extend((at, p) for p in self._backlog)  # catch-up: original ts and seq
            self._backlog = []
        self._out.append((at, payload))

    def poll(self, now: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        """Advance to ``now``; everything published since the last poll, as
        (received_at, payload dict), in order. Payloads are not validated (cheap, for bulk
        traces); :meth:`readings` gives validated messages."""
        self._advance_to(now)
        out, self._out = self._out, []
        return out

    def readings(self, now: datetime) -> list[StateMessage]:
        """Validated :meth:`poll`: heartbeats, on-change reports and catch-up backlog."""
        return [StateMessage.model_validate(p) for _, p in self.poll(now)]

    def reading(self, now: datetime) -> StateMessage | None:
        """An extra reading taken at ``now`` (None while offline: it is buffered instead).

        Applies the reporting profile; ``seq`` increments per message. It does not drain
        what :meth:`poll` has not collected yet.
        """
        self._advance_to(now)
        before = len(self._out)
        self._publish(now)
        if len(self._out) == before:
            return None
        return StateMessage.model_validate(self._out.pop()[1])

    def connected(self, now: datetime) -> bool:
        """Whether the device can reach the broker at ``now`` (powered, not in a spell)."""
        return self._powered(now) and not self._link.in_spell(now)

    def _powered(self, now: datetime) -> bool:
        return True

    @abstractmethod
    def _report(self, now: datetime) -> list[dict[str, Any]]:
        """The consumables part of a state payload at ``now``, profile applied."""

    def _emit(self, kind: EventType, cid: str | None, at: datetime) -> None:
        self.seq += 1
        self._events.append(EventMessage(
            device_id=self.device_id, seq=self.seq, ts=at, type=kind, consumable_id=cid,
        ))


