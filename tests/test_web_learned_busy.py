"""The web app says what the busy weeks learned mean, in plain words."""

from agent.storage.learned import LearnedRow
from agent.web.data import _learned_line


def test_busy_weeks_are_told_as_a_spread_of_daily_use() -> None:
    line = _learned_line(LearnedRow("consumable:p/black", "burst_ratio", 4.0, None, 0), "%")
    # A per-day variance of 4x the rate squared: a day strays about 2x a typical day's use.
    assert line == ("Busy weeks", "use in its busy weeks strays about 2.0x a typical day's "
                    "use a day, so it is reordered earlier")
    # A steady office: nothing to tell.
    assert _learned_line(LearnedRow("consumable:p/black", "burst_ratio", 0.0, None, 0),
                         "%") is None
