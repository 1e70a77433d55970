"""Realised service with a :class:`~agent.forecast.service.ServiceMemo` kept across calls
(the weekly judgement over a history that grew, was thinned or changed in between) is
the plain judgement of every cycle against its context, call after call."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import CoarseState, Unit
from agent.forecast import ConsumableSpec, Delivery, Observation
from agent.forecast.service import ServiceMemo, realised_service
from tests.test_realised_service_fast import T0, histories, ref_realised_service


def _thin(obs: list[Observation], upto: int, every: int) -> list[Observation]:
    """Keep one reading in ``every`` of the first ``upto`` (a store's compaction)."""
    return [o for k, o in enumerate(obs[:upto]) if k % every == 0] + obs[upto:]


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_each_call_with_a_memo_is_the_plain_judgement(
        hist: tuple[list[Observation], ConsumableSpec], data: st.DataObject) -> None:
    full, spec = hist
    span = (full[-1].ts - T0) / timedelta(hours=1)
    hours = sorted(data.draw(st.lists(st.floats(0.0, span + 5.0), min_size=1, max_size=12)))
    dels = [Delivery(T0 + timedelta(hours=h)) for h in hours]
    sent = [d.ts - timedelta(hours=data.draw(st.floats(0.0, 120.0))) for d in dels]
    memo = ServiceMemo()
    obs = full[:data.draw(st.integers(1, len(full)))]
    for _ in range(data.draw(st.integers(1, 4))):
        got = realised_service(obs, spec, dels, sent, memo=memo)
        assert got == realised_service(obs, spec, dels, sent)
        assert got == ref_realised_service(obs, spec, dels, sent, [])
        # What comes between two weekly calls: more readings, older ones thinned, one
        # reading read again with another level.
        obs = full[:len(obs) + data.draw(st.integers(0, 60))]
        what = data.draw(st.sampled_from(["grow", "thin", "change"]))
        if what == "thin":
            obs = _thin(obs, data.draw(st.integers(0, len(obs))), data.draw(st.integers(2, 6)))
        elif what == "change":
            k = data.draw(st.integers(0, len(obs) - 1))
            level = data.draw(st.sampled_from([0.0, 0.5 * spec.capacity, None]))
            obs = [*obs[:k], Observation(obs[k].ts, level), *obs[k + 1:]]


def test_a_reading_read_again_is_judged_again() -> None:
    # Two cycles; a reading of the second is read again as EMPTY (a late batch): that
    # cycle is judged again and missed, the first keeps its verdict. A memo keyed on the
    # cycles' dates alone would keep both.
    spec = ConsumableSpec(Unit.MILLILITRES, 1000.0, 500.0)
    obs = [Observation(T0 + timedelta(hours=h), 900.0 - 5.0 * h) for h in range(90)]
    first, second = T0 + timedelta(hours=40), T0 + timedelta(hours=91)
    dels, sent = [Delivery(first), Delivery(second)], [first, second]
    memo = ServiceMemo()
    before = realised_service(obs, spec, dels, sent, memo=memo)
    changed = [*obs[:60], Observation(obs[60].ts, None, CoarseState.EMPTY), *obs[61:]]
    after = realised_service(changed, spec, dels, sent, memo=memo)
    assert (before, after) == ((2, 2), (1, 2))
    assert after == realised_service(changed, spec, dels, sent)
    assert memo.judged == 3  # the first call's two cycles, then the changed one
