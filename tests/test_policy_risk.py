"""The planner's stockout risk (``policy._stockout_risk``, asked ~20 times per plan) is
the definition it inlines: the lead-time nodes' weighted :meth:`Forecast.prob_empty_within`,
float for float, whatever the curve, level, lead time or horizon (and asked twice)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.forecast import Confidence, Forecast
from agent.forecast.project import build_curve
from agent.policy import LeadTime, _stockout_risk

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def by_definition(fc: Forecast, extra: float, horizon: float, lead: LeadTime) -> float:
    return sum(w * (fc.prob_empty_within(horizon + lt, extra) or 0.0)
               for lt, w in lead.points()) if fc.curve is not None else 0.0


leads = st.one_of(
    st.builds(LeadTime, st.floats(0.0, 10.0), st.floats(0.0, 4.0)),
    st.builds(LeadTime, st.floats(0.0, 10.0), st.floats(0.0, 4.0),
              st.lists(st.floats(0.0, 20.0), max_size=8).map(tuple)))


@settings(max_examples=500, deadline=None)
@given(level=st.floats(0.0, 3000.0), level_sd=st.floats(0.0, 100.0),
       rate=st.floats(0.0, 500.0), rel_sd=st.floats(0.0, 0.5), daily=st.floats(0.0, 200.0),
       weekday=st.booleans(), usable=st.one_of(st.none(), st.floats(0.0, 1.0)),
       extra=st.floats(0.0, 4000.0), lead=leads,
       horizons=st.lists(st.floats(-2.0, 500.0), min_size=1, max_size=6))
def test_risk_is_the_weighted_probability_of_running_out(
        level: float, level_sd: float, rate: float, rel_sd: float, daily: float,
        weekday: bool, usable: float | None, extra: float, lead: LeadTime,
        horizons: list[float]) -> None:
    curve = build_curve(now=20_000.0, level=level, level_sd=level_sd, rate=rate,
                        rate_sd=rate * rel_sd, daily_sd=daily,
                        weekday=(0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3) if weekday else None,
                        away=[])
    fc = Forecast(now=NOW, level=level, level_sd=level_sd, rate_per_day=rate,
                  rate_sd=rate * rel_sd, time_to_empty_days=(None, None, None),
                  confidence=Confidence.MEDIUM, score=0.5, basis="test", low_signal=False,
                  curve=curve, usable_level=None if usable is None else level * usable)
    risk = _stockout_risk(fc, extra, lead)
    for h in [*horizons, *horizons]:
        assert risk(h) == by_definition(fc, extra, h, lead)


def test_no_curve_no_risk() -> None:
    fc = Forecast(now=NOW, level=None, level_sd=0.0, rate_per_day=None, rate_sd=0.0,
                  time_to_empty_days=(None, None, None),
                  confidence=Confidence.INSUFFICIENT_DATA, score=0.0, basis="", low_signal=False)
    assert _stockout_risk(fc, 0.0, LeadTime(2.0))(3.0) == 0.0
