"""The hand-off from paho's network thread to the ingest writer, bounded by bytes.

The broker's Receive Maximum should bound what waits unacknowledged, but draining a
stored session Mosquitto 2.0 sent the whole backlog: the queue held 50,000 messages
(peak RSS 67 -> 117 MB in the 50,000-message burst, bench/README.md). While the queue
holds ``max_bytes`` paho's thread waits in ``put``, so the socket is not read and TCP
holds the rest at the broker. The wait is at most ``max_wait_s`` per message: a writer
stuck on failing storage (which retries, acknowledging nothing) must not stall paho's
loop past the watchdog, so the message is then queued anyway.

1 MiB holds more than one full batch (``ingest.batch_size`` 1,000 of the benchmark's
~500-byte payloads, ~750 KB with the overhead): the writer never waits for paho while
the broker has more. At 2 MiB the queue was full through the 50,000-message live run,
~1 MB of the peak RSS (bench/README.md, "Ingest: p99 and RSS").
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

from agent.mqtt.judge import Inbound

# What a queued message costs beyond its payload and topic (the Inbound, the bytes and
# str headers), so that many small messages count too.
_OVERHEAD_B = 250
MAX_BYTES = 1024 * 1024
MAX_WAIT_S = 1.0


def _size(item: Inbound) -> int:
    return len(item.payload) + len(item.topic) + _OVERHEAD_B


class Inbox:
    """A FIFO of inbound messages (None: stop) with the ``queue.Queue`` calls the
    writer uses; ``put`` waits while ``max_bytes`` are queued."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_bytes = max_bytes
        self.max_wait_s = max_wait_s
        self._items: deque[Inbound | None] = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, item: Inbound | None) -> None:
        with self._cond:
            if item is not None:
                size = _size(item)
                deadline = time.monotonic() + self.max_wait_s
                # One message always fits, however large (else it would wait forever).
                while self._bytes and self._bytes + size > self.max_bytes:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._bytes += size
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Inbound | None:
        """The oldest item; raises ``queue.Empty`` after ``timeout`` seconds."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items),
                                                            timeout):
                raise queue.Empty
            item = self._items.popleft()
            if item is not None:
                self._bytes -= _size(item)
            self._cond.notify_all()
            return item

    def get_nowait(self) -> Inbound | None:
        return self.get(timeout=0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
