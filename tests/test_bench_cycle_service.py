"""The decisions bench's cycle-service metric on a hand-computed case."""

from bench.common import cycle_served


def test_a_stockout_counts_against_the_one_cycle_it_falls_in() -> None:
    # Deliveries at days 10, 20, 30, 40; one stockout from day 18 to day 20 (ended by
    # the delivery at 20). Overlapping orders placed on days 15 and 17 both had the
    # stockout in their windows; by cycle, only the cycle 10-20 failed: 3 of 4 served.
    stockouts = [(18.0, 20.0)]
    arrivals = [10.0, 20.0, 30.0, 40.0]
    served = []
    start = 0.0
    for arrival in arrivals:
        served.append(cycle_served(stockouts, None, start, arrival))
        start = arrival
    assert served == [True, False, True, True]


def test_an_ongoing_stockout_fails_the_cycle() -> None:
    assert not cycle_served([], 25.0, 20.0, 30.0)
    assert cycle_served([], 35.0, 20.0, 30.0)  # began after this arrival


def test_first_family_cycles_run_from_one_arrival_to_the_next() -> None:
    from bench.forecast_report import _cycle_bounds

    # (ordered, arrived), overlapping and listed out of arrival order.
    bounds = _cycle_bounds([(15.0, 30.0), (5.0, 10.0), (17.0, 20.0)])
    assert bounds == [(float("-inf"), 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert [cycle_served([(18.0, 20.0)], None, s, a) for s, a in bounds] == [
        True, False, True]


def test_first_family_judges_cycles_on_time_at_home() -> None:
    # The fridge empties on day 10 while the household is away (days 9-15) and stays
    # empty until day 16: only day 15-16 is a stockout, as the stockout days count it.
    from bench.forecast_sim import at_home

    assert at_home(10.0, 16.0, [(9.0, 15.0)]) == [(15.0, 16.0)]
    assert at_home(10.0, 14.0, [(9.0, 15.0)]) == []
    assert at_home(5.0, 20.0, [(9.0, 15.0), (17.0, 18.0)]) == [(5.0, 9.0), (15.0, 17.0),
                                                               (18.0, 20.0)]
    served = [cycle_served(at_home(10.0, 14.0, [(9.0, 15.0)]), None, 8.0, 16.0),
              cycle_served(at_home(10.0, 16.0, [(9.0, 15.0)]), None, 8.0, 17.0)]
    assert served == [True, False]
