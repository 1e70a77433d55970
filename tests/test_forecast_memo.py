"""A memo kept across passes (``FitMemo``) also keeps the readings as sorted and the
steady demand curve: each pass's forecast equals a fresh one, curve and all, whether the
readings are the same objects again, come shuffled, gain one or are copies."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

from agent.domain import Unit
from agent.forecast import ConsumableSpec, FitMemo, Forecast, Observation, forecast

T0 = datetime(2026, 5, 1, tzinfo=UTC)
MILK = ConsumableSpec(unit=Unit.GRAMS, capacity=2000.0, pack_size=2000.0)
TONER = ConsumableSpec(unit=Unit.PERCENT, capacity=100.0, pack_size=100.0,
                       yield_per_pack=3000.0)


def full(fc: Forecast) -> str:
    return repr(fc) + repr(fc.curve)


def test_each_pass_with_a_memo_is_a_fresh_forecast() -> None:
    milk = [Observation(T0 + timedelta(hours=k), 2000.0 - (7.5 * k) % 1800) for k in
            range(30 * 24)]
    toner = [Observation(T0 + timedelta(hours=k), 100.0 - 0.05 * k, counter=k // 2)
             for k in range(30 * 24)]
    rng = random.Random(4)
    for obs, spec in ((milk, MILK), (toner, TONER)):
        memo = FitMemo()
        shuffled = rng.sample(obs, len(obs))
        copies = [dataclasses.replace(o) for o in obs]
        more = [*obs, Observation(obs[-1].ts + timedelta(minutes=30), obs[-1].level,
                                  counter=obs[-1].counter)]
        halved = [*obs[:-1], dataclasses.replace(obs[-1], level=(obs[-1].level or 0.0) / 2)]
        end = obs[-1].ts
        for k, given in enumerate([obs, list(obs), shuffled, obs, copies, more, more, halved,
                                   obs]):
            now = end + timedelta(minutes=40 + 5 * k)
            assert full(forecast(given, spec, now, memo=memo)) == full(
                forecast(given, spec, now)), k
        assert memo.obs == obs and memo.curve.curve is not None
