"""The page-counter estimator: how sure it is of a level it counts from a yield."""

import pytest

from agent.forecast.counter import counter_estimate, weekly_semivariance


def _office(days: int) -> tuple[list[float], list[float]]:
    times = [d * 0.25 for d in range(days * 4 + 1)]
    return times, [100.0 * t for t in times]  # 100 pages a day, read every six hours


def test_counted_use_is_as_uncertain_as_the_yield_it_is_counted_against() -> None:
    times, counters = _office(20)
    per_unit = 100.0 / 3000.0  # a 3,000-page cartridge on a 0-100 gauge
    anchor = (0.0, 100.0, 0.0)  # a fresh cartridge at day 0
    sure = counter_estimate(times, counters, per_unit, 20.0, [], anchor)
    unsure = counter_estimate(times, counters, per_unit, 20.0, [], anchor, yield_cv=0.1)
    assert sure is not None and unsure is not None
    # 2,000 pages counted = 66.7 % of the cartridge; a 10 % yield spread is 6.67 % more.
    assert sure.level == pytest.approx(100.0 - 2000.0 * per_unit)
    assert unsure.level == sure.level
    assert unsure.level_sd - sure.level_sd == pytest.approx(0.1 * 2000.0 * per_unit)


def test_learned_busy_weeks_widen_a_quiet_window() -> None:
    times, counters = _office(30)
    per_unit = 100.0 / 3000.0
    quiet = counter_estimate(times, counters, per_unit, 30.0, [], None)
    busy = counter_estimate(times, counters, per_unit, 30.0, [], None, burst_ratio=4.0)
    assert quiet is not None and busy is not None and quiet.rate is not None
    tau = times
    assert weekly_semivariance(tau, counters, 100.0) == 0.0  # steady: no busy week seen
    # Per-day variance 4 x rate^2: a daily sd of twice the rate.
    assert busy.daily_sd == pytest.approx(2.0 * quiet.rate)
    assert busy.daily_sd > quiet.daily_sd


def test_a_busy_day_sets_the_rate() -> None:
    # Five weeks of an office (100 pages on weekdays, none at weekends), then a Monday
    # of 300 pages: three times a working day, at least twice the median one (100).
    times: list[float] = []
    counters: list[float] = []
    pages = 0.0
    for d in range(36):
        times.append(d + 0.25)
        counters.append(pages)
        pages += 300.0 if d == 35 else (100.0 if d % 7 < 5 else 0.0)
    times.append(36.25)
    counters.append(pages)
    per_unit = 100.0 / 3000.0
    busy = counter_estimate(times, counters, per_unit, 36.25, [], None)
    quiet = counter_estimate(times[:-1], counters[:-1], per_unit, 35.25, [], None)
    assert busy is not None and quiet is not None and quiet.rate is not None
    assert busy.rate == pytest.approx(300.0 * per_unit)
    assert "busy day" in busy.basis
    assert quiet.rate < 100.0 * per_unit  # weekends in: under a working day's 100 pages
    # A day of 190 pages is under twice the median working day: no busy week.
    counters[-1] = counters[-2] + 190.0
    calm = counter_estimate(times, counters, per_unit, 36.25, [], None)
    assert calm is not None and "busy day" not in calm.basis
