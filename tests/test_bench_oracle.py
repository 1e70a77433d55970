"""The decisions bench's oracle knows the true rate and spread of each weekday: how
often busy weeks come, not when; no closure."""

import random

import pytest

from bench.decisions_world import World, _toner


def _printer() -> World:
    w = _toner(random.Random(1), "low_only")
    w.rate, w.true_yield, w.closures = 40.0, 2000.0, [(14.0, 21.0)]
    return w


def test_expected_use_is_the_weekday_mean_over_busy_and_quiet_weeks() -> None:
    w = _printer()
    # Day 0 is a Monday; from 06:00, the ten office hours print half the time Exp(1) x
    # 2 x 40 / 10 pages: 40 pages, 2 % of a 2,000-page cartridge, three times that in
    # one week of nine: mean 2 % x 11 / 9.
    mean, var = w.expected_use(0.25)
    m = 40.0 / 2000.0 * 100.0
    assert mean == pytest.approx(m * 11 / 9)
    # Within a week: ten hours of c^2 - (c / 2)^2, c = 0.4 % (x 3 when busy); between
    # the weeks: the mixture's spread of the day's mean.
    within = 10 * 0.75 * 0.4**2 * (8 + 9) / 9
    between = (8 * (m - mean) ** 2 + (3 * m - mean) ** 2) / 9
    assert var == pytest.approx(within + between)
    assert w.expected_use(5.25) == (0.0, 0.0)  # Saturday
    assert w.expected_use(15.25) == (mean, var)  # a closure is news to the oracle too


def test_the_draws_average_to_the_expected_use() -> None:
    w = _printer()
    w.closures = []
    days = 7 * 9 * 20  # twenty whole cycles of busy weeks: the sum's spread is ~2.5 %
    drawn = sum(w.usage_now(h / 24.0) for h in range(days * 24)) / w.true_yield * 100.0
    expected = sum(w.expected_use(d)[0] for d in range(days))
    assert drawn == pytest.approx(expected, rel=0.08)
