"""Learning from the household's own history: yields, LOW thresholds, service, stored."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.domain import CoarseState, Unit
from agent.forecast import ConsumableSpec, Observation
from agent.forecast.learn import PRIOR_CYCLES, burst_ratio, learn, yield_cv
from agent.forecast.service import miss_rate_bound, service_target
from agent.storage.learned import LearnedRow, as_json, load_learned, save_learned
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, current_version, migrate

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TONER = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, yield_per_pack=3000.0)


def low_only_printer(cycles: int, true_yield: float, low_at: float, per_day: float,
                     ) -> list[Observation]:
    """A LOW-only printer: OK until ``low_at`` of the cartridge is left, then LOW, then
    EMPTY at ``true_yield`` pages, replaced a day later; readings every six hours."""
    out = []
    pages = 0.0
    used = 0.0
    t = T0
    for _ in range(cycles):
        while used < true_yield:
            left = 1.0 - used / true_yield
            state = CoarseState.OK if left > low_at else CoarseState.LOW
            out.append(Observation(t, None, state, int(pages)))
            t += timedelta(hours=6)
            pages += per_day / 4
            used += per_day / 4
        out.append(Observation(t, None, CoarseState.EMPTY, int(pages)))
        t += timedelta(days=1)
        used = 0.0
    out.append(Observation(t, None, CoarseState.OK, int(pages)))
    return out


def test_yield_and_low_threshold_are_learned_from_pages_between_replacements() -> None:
    obs = low_only_printer(4, 2400.0, 0.07, 40.0)
    got = learn(obs, TONER)
    # Three complete cycles (the first cartridge's start is unseen) move the prior
    # (3,000 pages, counted as PRIOR_CYCLES cycles) most of the way to 2,400.
    w = PRIOR_CYCLES
    assert got.yield_cycles == 3
    assert got.yield_per_pack == pytest.approx((3000 * w + 3 * 2400) / (w + 3), rel=0.01)
    assert got.yield_per_pack < 2500
    assert got.pages_to_low == pytest.approx(2400 * 0.93, rel=0.02)
    assert got.low_level == pytest.approx((5.0 * w + 3 * 7.0) / (w + 3), abs=0.4)
    spec = got.apply(TONER)
    assert spec.yield_per_pack == got.yield_per_pack and spec.low_level == got.low_level


def test_a_gauge_shows_the_level_its_low_stands_for() -> None:
    obs = []
    t = T0
    for _ in range(3):
        for level in range(100, -1, -2):
            state = CoarseState.LOW if level <= 12 else CoarseState.OK
            obs.append(Observation(t, float(level), state))
            t += timedelta(hours=12)
    got = learn(obs, ConsumableSpec(Unit.PERCENT, 100.0, 100.0))
    assert got.low_cycles == 3
    # The prior 5 % moved to 12.
    assert got.low_level == pytest.approx((5.0 * PRIOR_CYCLES + 3 * 12.0) / (PRIOR_CYCLES + 3))
    assert got.yield_per_pack is None  # no declared yield: nothing to correct


def test_nothing_learned_without_a_complete_cycle() -> None:
    got = learn([Observation(T0 + timedelta(hours=h), None, CoarseState.OK, 10 * h)
                 for h in range(20)], TONER)
    assert (got.yield_per_pack, got.yield_cycles, got.low_level) == (None, 0, None)
    assert got.apply(TONER) == TONER


def test_service_target_tightens_after_misses_and_relaxes_after_a_clean_record() -> None:
    assert service_target(0.98, 3, 4) == 0.98  # too few cycles to judge
    tighter = service_target(0.98, 16, 20)
    assert 0.98 < tighter <= 0.995
    looser = service_target(0.98, 200, 200)
    assert 0.96 <= looser < 0.98


def test_a_clean_record_too_short_to_tell_does_not_loosen() -> None:
    # 60 cycles without a miss happen one time in three at a 2 % miss rate: no evidence
    # the household is safer than the target (planning at 0.96 on it ran out).
    assert service_target(0.98, 60, 60) == 0.98
    assert service_target(0.98, 59, 60) == 0.98
    assert miss_rate_bound(0, 60) == pytest.approx(1 - 0.1 ** (1 / 60), rel=1e-6)
    assert miss_rate_bound(0, 200) < 0.02 < miss_rate_bound(2, 200)
    # Misses still tighten at once, and more misses tighten more.
    assert 0.98 < service_target(0.98, 57, 60) < service_target(0.98, 55, 60)


def test_learned_rows_are_stored_and_a_previous_database_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    previous = [m for m in MIGRATIONS if m[0] < 5]
    for version, script in previous:  # a database of the version before this one
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO reminders (consumable, ts, kind, message) "
                 "VALUES ('fridge/milk', 1.0, 'reorder', 'kept')")
    assert current_version(conn) == previous[-1][0]
    assert migrate(conn) == LATEST_VERSION
    assert conn.execute("SELECT message FROM reminders").fetchone()[0] == "kept"
    rows = [LearnedRow("consumable:p/black", "yield_per_pack", 2550.0, 3000.0, 3),
            LearnedRow("sku:TN", "lead_time_p90", 6.5, None, 12)]
    save_learned(conn, rows, T0)
    save_learned(conn, [LearnedRow("sku:TN", "lead_time_p90", 7.0, None, 13)], T0)
    got = load_learned(conn)
    assert [r.value for r in got] == [2550.0, 7.0]
    assert as_json(got)["sku:TN"]["lead_time_p90"] == {"value": 7.0, "prior": None,
                                                      "cycles": 13}
    conn.close()


def test_a_rounding_gauge_low_threshold_comes_from_pages_not_its_reading() -> None:
    # The gauge shows 5 % steps rounded down: at LOW (7 % left) it reads 5 %.
    obs = [Observation(o.ts, 0.0 if o.state is CoarseState.EMPTY else
                       5.0 * ((100.0 * (1 - (o.counter or 0) % 2400 / 2400)) // 5),
                       o.state, o.counter)
           for o in low_only_printer(4, 2400.0, 0.07, 40.0)]
    got = learn(obs, TONER)
    assert got.low_level is not None and got.low_level > 6.0


def test_a_gauge_printer_learns_its_yield_within_the_first_cartridge() -> None:
    # A 5 % gauge rounding down and a page counter, 2,100 true pages per cartridge, the
    # first cartridge only half used: no replacement, no LOW yet.
    obs = [Observation(T0 + timedelta(hours=6 * i), 5.0 * ((100.0 - 100.0 * p / 2100) // 5),
                       CoarseState.OK, p) for i, p in enumerate(range(0, 1100, 10))]
    got = learn(obs, TONER)
    assert got.yield_cycles == 1
    assert got.yield_per_pack == pytest.approx((3000 * PRIOR_CYCLES + 2100) / (PRIOR_CYCLES + 1),
                                               rel=0.02)


def test_the_yield_spread_narrows_from_a_datasheet_to_learned_cycles() -> None:
    # A pack's own 5 % plus the mean's, whose prior (a datasheet a quarter off either
    # way) counts as (0.05 / 0.25)^2 = 0.04 cycles.
    assert PRIOR_CYCLES == pytest.approx(0.04)
    assert yield_cv(0) == pytest.approx(math.sqrt(0.05**2 + 0.25**2))  # 0.255
    assert yield_cv(1) == pytest.approx(0.05 * math.sqrt(1 + 1 / 1.04))  # 0.070
    assert yield_cv(3) < yield_cv(1) < yield_cv(0)
    learned = learn(low_only_printer(4, 2400.0, 0.07, 40.0), TONER)
    assert learned.apply(TONER).yield_cv == pytest.approx(yield_cv(3))


def test_busy_weeks_are_learned_relative_to_the_typical_week() -> None:
    # 100 pages a day for 70 days, except one week (days 30-36) at 300 a day. Weekly
    # windows sliding a day at a time overlap the busy week by k = 1..7 days, twice each
    # for k < 7 and once for k = 7: excess 200 k pages over the median week (700), so
    # the semivariance is 2 x 200^2 x (2 x 91 + 49) over 64 windows and 7 days.
    obs = []
    pages = 0
    for d in range(71):
        obs.append(Observation(T0 + timedelta(days=d, hours=12), None, CoarseState.OK, pages))
        pages += 300 if 30 <= d < 37 else 100
    expected = 2 * 200**2 * (2 * 91 + 49) / 64 / 7 / 100**2
    assert burst_ratio(obs) == pytest.approx(expected)
    got = learn(obs, TONER)
    assert got.burst_ratio == pytest.approx(expected)
    assert got.apply(TONER).burst_ratio == pytest.approx(expected)
    # A steady office has no busy weeks; under three weeks of counts tell nothing.
    steady = [Observation(T0 + timedelta(days=d, hours=12), None, CoarseState.OK, 100 * d)
              for d in range(71)]
    assert burst_ratio(steady) == 0.0
    assert burst_ratio(steady[:20]) is None


def test_a_stored_yield_on_more_cycles_is_kept_with_this_pass_busy_weeks() -> None:
    from agent.app.learning import _keep_more_cycles

    new = learn(low_only_printer(2, 2400.0, 0.07, 40.0), TONER)
    new = dataclasses.replace(new, burst_ratio=3.5)
    stored = [LearnedRow("consumable:p/black", "yield_per_pack", 2450.0, 3000.0, 6)]
    kept = _keep_more_cycles(new, stored)
    assert (kept.yield_per_pack, kept.yield_cycles) == (2450.0, 6)
    assert kept.burst_ratio == 3.5 and kept.low_level == new.low_level
