"""The one way a test waits for something: poll a predicate until it holds.

A test that checks that nothing happened waits first, with this, for a positive marker
that something later did happen (a later message stored, a later log line), so a slow
agent cannot make the check pass by not having got there yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 15.0,
               what: str | Callable[[], object] = "", every: float = 0.05) -> T:
    """Return ``predicate()``'s first truthy value; fail the test after ``timeout`` s.

    ``what`` names the awaited thing in the failure, or is called then to show the state
    that was seen instead (a log tail, a store snapshot)."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            seen = what() if callable(what) else f"{what or 'condition'} (last: {last!r})"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {seen}")
        time.sleep(every)
        last = predicate()
    return last
