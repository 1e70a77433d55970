"""The writer's inbound queue is bounded by bytes, and never stalls paho's thread for
longer than its wait (agent.mqtt.inbox)."""

from __future__ import annotations

import queue
import threading

import pytest

from agent.mqtt.inbox import Inbox
from agent.mqtt.judge import Inbound


def _msg(mid: int, size: int = 1_000) -> Inbound:
    return Inbound(mid, 1, "replenish/v1/dev-1/state", b"x" * size, 0.0)


def test_a_put_waits_while_the_bytes_are_queued_and_resumes_on_a_get() -> None:
    inbox = Inbox(max_bytes=3_000, max_wait_s=60.0)
    inbox.put(_msg(1))
    inbox.put(_msg(2))
    blocked = threading.Thread(target=inbox.put, args=(_msg(3),))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive() and inbox.qsize() == 2  # over the bound: waiting
    got = inbox.get(timeout=1.0)
    blocked.join(10.0)
    assert not blocked.is_alive()
    assert got is not None and got.mid == 1
    assert [m.mid for m in (inbox.get_nowait(), inbox.get_nowait()) if m] == [2, 3]
    assert inbox.bytes == 0 and inbox.empty()


def test_a_put_past_its_wait_queues_anyway_and_one_message_always_fits() -> None:
    inbox = Inbox(max_bytes=500, max_wait_s=0.0)
    inbox.put(_msg(1, size=5_000))  # larger than the bound, into an empty queue
    inbox.put(_msg(2))  # over the bound, and no wait left: queued, not dropped
    inbox.put(None)
    assert [inbox.get_nowait(), inbox.get_nowait()] == [_msg(1, size=5_000), _msg(2)]
    assert inbox.get_nowait() is None
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)
