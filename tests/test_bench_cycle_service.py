"""The decisions bench's cycle-service metric on a hand-computed case."""

from bench.decisions import cycle_served


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
