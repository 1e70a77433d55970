"""The ingest writer: validates, commits in group batches, and only then acknowledges.

Group commit has a size and a time window (``ingest.commit_window_s``). At household
rates the writer holds the first message of a batch up to the window and commits what
came in meanwhile in one transaction: one commit per window instead of one per message
(each fsync'd commit writes whole 4 KB pages of the WAL, see :mod:`agent.storage.recent`).
Once messages arrive at ``FAST_RATE`` or more, a batch waits at most ``FAST_WINDOW_S``
(or until ``batch_size``): at high rates latency stays low and batches big. Nothing is
acknowledged before its commit, so the window costs latency, never an acknowledged
reading; a clean stop commits what it holds. News commits the batch as soon as the
queue is empty (:class:`agent.mqtt.news.News`: a device event such as ``fall_alert``, a
device's first message since the start, a consumable whose reported state changed, at
most once per device per ``STATE_NEWS_EVERY_S``): alerts, a newly added device and a
LOW do not wait for the window; level ticks do. A stream that was fast stays fast for
``FAST_HOLD_S`` after its last commit, so the tail of a backlog commits as soon as it
stops coming instead of waiting a household window.

Devices' "last seen" and consumables' "last" values wait in memory between commits
(``ingest.last_values_interval_s``, see ``Store.lasts_every_s``) and are written when due,
when the stream goes quiet for ``idle_wakeup_s`` and at a clean stop: a commit at
household load then appends readings only, instead of also rewriting the devices' and
consumables' pages.

It also owns the write path's upkeep on a schedule: the fold of the recent readings tier
into the keyed one (``fold_interval_s`` or ``fold_rows``) and the WAL checkpoint after a
fold (at most every ``checkpoint_interval_s``), only after something was written.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.config import IngestSettings
from agent.errors import StoreError
from agent.mqtt.inbox import Inbox
from agent.mqtt.judge import Inbound, RateLimiter, Unlimited, validate
from agent.mqtt.news import News
from agent.storage.store import Item, PendingRow, Rejected, Store
from agent.wire.device import StateMessage

# The ingest log lines keep the logger name they had before the writer moved here.
log = logging.getLogger("agent.mqtt.ingest")

# Messages seen in a batch before its arrival rate counts as measured (fewer are noise).
_RATE_SAMPLE = 16
# From this arrival rate on, a batch waits at most FAST_WINDOW_S from its first message's
# arrival: the commits are big anyway (a 25 ms batch holds 5+ messages, ~57 at half the
# benchmark's maximum rate) and latency stays low under load. 50 ms put p50 at 91-95 ms
# at half rate against 37-51 ms with 25 (bench/README.md, "Ingest: p99 and RSS").
FAST_RATE = 200.0
FAST_WINDOW_S = 0.025
# After a fast batch's commit, batches wait FAST_WINDOW_S this long (a backlog's tail).
FAST_HOLD_S = 5.0
# While the stream is fast, the recent tier is folded once it holds this many readings
# (or ``fold_rows`` if fewer). A fold holds the writer, and everything queued behind it,
# for its whole length: 10,000 readings were 160-210 ms at half the maximum rate (a
# third of the latency run's p99 tail, bench/README.md, "The p99 at half rate"); 2,500
# are a quarter of it plus ~7 ms for the consumables' open parts. At household pace
# ``fold_rows`` and ``fold_interval_s`` govern as configured.
FAST_FOLD_ROWS = 2_500


def _arrived_fast(batch: list[Inbound]) -> bool:
    """Whether the batch's messages arrived at ``FAST_RATE`` or more: their own arrival
    times, not how fast the writer took them (a backlog that piled up at household pace
    while the writer was busy, a fold or a checkpoint, is no fast stream)."""
    span = batch[-1].received_at - batch[0].received_at
    return len(batch) >= _RATE_SAMPLE and len(batch) >= FAST_RATE * span


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    pending: int = 0  # kept for judgement once the clock is trusted
    write_failures: int = 0
    batches: int = 0
    # Upkeep passes (one per wake-up of the writer, idle ones too), and the number of the
    # pass that last folded the recent tier and that last checkpointed the WAL.
    upkeep_passes: int = 0
    last_fold_pass: int = 0
    last_checkpoint_pass: int = 0
    last_commit_monotonic: float = field(default_factory=time.monotonic)


class Writer:
    """Drains the inbound queue into SQLite in group commits, then acknowledges."""

    def __init__(
        self,
        store_factory: Callable[[], Store],
        settings: IngestSettings,
        ack: Callable[[Inbound], None],
        on_stored: Callable[[set[str]], None] | None = None,
        clock_trusted: Callable[[], bool] = lambda: True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.queue = Inbox()  # bounded by bytes (agent.mqtt.inbox)
        self.clock_trusted = clock_trusted
        self.wall = wall
        self._trusted_at = float("-inf")  # monotonic time of the last trusted answer
        self._trusted = False
        self.trust_check_s = 10.0
        # A storage fault (disk full...): None while writes succeed. While set, nothing
        # is acknowledged (the broker keeps the messages) and the batch is retried.
        self.fault: str | None = None
        self.retry_initial_s = 0.5
        self.retry_max_s = 30.0
        self.settings = settings
        self.ack = ack
        self.on_stored = on_stored
        self.stats = IngestStats()
        self.limiter = RateLimiter(settings.per_device_rate, settings.per_device_burst)
        self._store_factory = store_factory
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._stopping = threading.Event()
        self._rejects: dict[str, dict[str, int]] = {}  # not yet logged, per device
        self._reject_logged: dict[str, float] = {}
        self._error: BaseException | None = None
        # The group-commit window; an agent on simulated time sets 0 (a wall-time window
        # would hold readings across simulated hours).
        self.commit_window_s = settings.commit_window_s
        # Likewise 0 on simulated time: a simulation settles on ``idle`` after each step.
        self.last_values_interval_s = settings.last_values_interval_s
        self._held = 0  # messages taken off the queue and not yet committed
        self._news = News()
        self._fast_until = float("-inf")  # monotonic: batches wait FAST_WINDOW_S until then
        self._lasts_held = False  # the store holds device/"last" values not yet written
        # Rejects the broker reported (oversize packets), counted beside our own.
        self.noted: queue.SimpleQueue[Rejected] = queue.SimpleQueue()
        self._folded_at = self._checkpointed_at = time.monotonic()
        # What a previous run left in the recent tier goes with the first due fold.
        self._written_since_fold = True
        self._written_since_checkpoint = False

    def start(self) -> None:
        self._thread.start()

    def _write_noted(self, store: Store, items: list[Rejected]) -> None:
        store.write_batch(list(items), received_at=self.wall())
        self._tally_rejects(list(items))
        self.stats.rejected += len(items)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread (at once if storage is failing:
        the unacknowledged messages stay with the broker)."""
        self._stopping.set()
        self.queue.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def held(self) -> int:
        """Messages taken off the queue into the open batch, not yet committed."""
        return self._held

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing held in an open batch: all handed over is committed
        (or rejected and counted). Simulations wait for this before the next step."""
        return self._held == 0 and not self._lasts_held and self.queue.empty()

    def _take_batch(self) -> tuple[list[Inbound], bool, bool]:
        """The next batch, whether the writer is stopping, and whether the batch came in
        a fast stream (its messages arrived at ``FAST_RATE`` or more)."""
        try:
            # Wake up now and then while idle: pending readings wait for a trusted clock,
            # held "last" values for a quiet stream.
            first = self.queue.get(timeout=self.settings.idle_wakeup_s)
        except queue.Empty:
            return [], False, False
        if first is None:
            return [], True, False
        batch = [first]
        self._held = 1
        size, window = self.settings.batch_size, self.commit_window_s
        # The window runs from the first message's arrival, not from when the writer took
        # it: messages that queued behind a commit or a fold have waited already, and
        # waiting the whole window again on top doubled the latency at half the maximum
        # rate (bench/README.md, "The p99 at half rate").
        start = first.arrived
        # Right after a fast batch the short window holds; only a batch that arrived fast
        # itself extends the hold (a trickle after a burst must not).
        if time.monotonic() < self._fast_until:
            window = min(window, FAST_WINDOW_S)
        # News commits the batch as soon as nothing more is waiting: at household pace
        # that is at once, in a backlog it does not cut the batch short.
        news = self._news.closes(first)
        while len(batch) < size:
            if news:
                window = 0.0
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                now = time.monotonic()
                # A fast stream waits only the short window (see module doc).
                if _arrived_fast(batch):
                    window = min(window, FAST_WINDOW_S)
                left = start + window - now
                if left <= 0 or self._stopping.is_set():
                    break
                try:
                    item = self.queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                return batch, True, False
            batch.append(item)
            news = self._news.closes(item)
            self._held = len(batch)
        # A full batch is fast only by its arrivals: 1,000 messages gathered over 20 s of
        # a 50 msg/s house are not (the 50 ms hold after it committed 100 times in 5 s).
        return batch, False, _arrived_fast(batch)

    def _upkeep(self, store: Store, done: bool) -> None:
        """Fold the recent tier and checkpoint the WAL when due, and only if written."""
        s, now, st = self.settings, time.monotonic(), self.stats
        folded = False
        # Not at a clean stop: the recent tier is durable, and a fold at every restart
        # would only add writes.
        if self._written_since_fold and not done and (
                len(store.recent) >= self._fold_rows(now)
                or now - self._folded_at >= s.fold_interval_s):
            moved, folded = store.fold_recent(), True
            self._folded_at, self._written_since_fold = time.monotonic(), False
            st.last_fold_pass = st.upkeep_passes + 1
            self._written_since_checkpoint = True
            log.debug("ingest.fold rows=%d ms=%.0f", moved, 1000 * (self._folded_at - now))
        # A checkpoint follows a fold (at most every checkpoint_interval_s): the WAL then
        # holds each page once, at its last content. Checkpoints between folds copied the
        # same pages (the tier's last leaf, the held "last" values, parents) again and
        # again: 741 against 124 B per message at household load (bench/README.md).
        if self._written_since_checkpoint and (done or (
                folded and now - self._checkpointed_at >= s.checkpoint_interval_s)):
            started = time.monotonic()
            frames, copied = store.checkpoint()
            self._checkpointed_at, self._written_since_checkpoint = time.monotonic(), False
            log.debug("ingest.checkpoint frames=%d copied=%d ms=%.0f", frames, copied,
                      1000 * (self._checkpointed_at - started))
            st.last_checkpoint_pass = st.upkeep_passes + 1
        st.upkeep_passes += 1

    def _fold_rows(self, now: float) -> int:
        """Readings in the recent tier that make a fold due (see ``FAST_FOLD_ROWS``)."""
        rows = self.settings.fold_rows
        return min(rows, FAST_FOLD_ROWS) if now < self._fast_until else rows

    def _tally_rejects(self, items: list[Item]) -> None:
        """Count rejects per device and reason; log at most one line per device per
        ``reject_log_interval_s`` (a flood must not drown the journal: journald drops
        lines past its own rate limit, other services' lines with them)."""
        now = time.monotonic()
        for item in items:
            if isinstance(item, Rejected):
                tally = self._rejects.setdefault(item.device_id, {})
                tally[item.reason] = tally.get(item.reason, 0) + 1
        self._flush_rejects(now)

    def _flush_rejects(self, now: float, force: bool = False) -> None:
        interval = self.settings.reject_log_interval_s
        for device_id in list(self._rejects):
            if not force and now - self._reject_logged.get(device_id, -interval) < interval:
                continue
            tally = self._rejects.pop(device_id)
            self._reject_logged[device_id] = now
            reasons = ",".join(f"{r}:{n}" for r, n in sorted(tally.items()))
            log.warning("ingest.reject device=%s count=%d reasons=%s", device_id,
                        sum(tally.values()), reasons)

    def _retrying(self, write: Callable[[], None]) -> None:
        """Run ``write`` until it succeeds, backing off while storage fails.

        The process stays up (no crash loop into systemd's start limit): one line when
        the fault starts, one when it clears, and ``fault`` for status and doctor.
        """
        delay = self.retry_initial_s
        while True:
            try:
                write()
            except StoreError as err:
                if self.fault != err.reason:
                    self.fault = err.reason
                    log.error("store.write_failed reason=%s retry=backoff detail=%s",
                              err.reason, err)
                self.stats.write_failures += 1
                if self._stopping.wait(delay):
                    raise
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self.fault is not None:
                log.warning("store.write_recovered reason=%s failures=%d", self.fault,
                            self.stats.write_failures)
                self.fault = None
            return

    def _clock_trusted(self) -> bool:
        # The check may ask timedated over D-Bus: at most every 10 s, and once trusted
        # the answer stands (a synchronised clock does not become untrustworthy).
        now = time.monotonic()
        if not self._trusted and now - self._trusted_at >= self.trust_check_s:
            self._trusted_at = now
            self._trusted = bool(self.clock_trusted())
        return self._trusted

    def _rejudge(self, store: Store) -> None:
        """Judge the pending readings again against the now trusted clock, in batches."""
        s = self.settings
        while rows := store.pending(s.batch_size):
            now = self.wall()
            items = [self._judge_again(r, now) for r in rows]
            store.write_batch(items, received_at=now, resolved=[r.id for r in rows])
            self._written_since_fold = self._written_since_checkpoint = True
            self.stats.pending = max(0, self.stats.pending - len(rows))
            log.info("ingest.pending_judged count=%d remaining=%d", len(rows),
                     self.stats.pending)
            devices = {i.device_id for i in items if isinstance(i, StateMessage)}
            if self.on_stored and devices:
                self.on_stored(devices)
        self.stats.pending = 0

    def _judge_again(self, row: PendingRow, now: float) -> Item:
        s = self.settings
        msg = Inbound(0, 0, row.topic, row.payload, now)
        return validate(msg, Unlimited(), s.max_payload_bytes, s.max_clock_skew_s)

    def _run(self) -> None:
        store = self._store_factory()
        store.lasts_every_s = self.last_values_interval_s
        self.stats.pending = store.pending_count()
        try:
            done = False
            while not done:
                batch, done, fast = self._take_batch()
                if batch:
                    self._retrying(functools.partial(self._commit, store, batch))
                    self._held = 0
                    if fast:
                        self._fast_until = time.monotonic() + FAST_HOLD_S
                # Quiet for idle_wakeup_s (no batch), or stopping: write the held values.
                if store.holds_lasts and (done or not batch) and not (
                        done and self.fault is not None):
                    self._retrying(functools.partial(self._flush_lasts, store))
                self._lasts_held = store.holds_lasts
                if self.stats.pending and self._clock_trusted():
                    self._retrying(functools.partial(self._rejudge, store))
                if not self.noted.empty():
                    noted = [self.noted.get() for _ in range(self.noted.qsize())]
                    self._retrying(functools.partial(self._write_noted, store, noted))
                self._flush_rejects(time.monotonic(), force=done)
                if not (done and self.fault is not None):
                    self._retrying(functools.partial(self._upkeep, store, done))
        except BaseException as err:  # the watchdog sees the dead thread; log why once
            self._error = err
            log.critical("ingest.writer_stopped reason=%s", type(err).__name__)
        finally:
            store.close()

    def _flush_lasts(self, store: Store) -> None:
        store.flush_lasts(self.wall())
        self._written_since_checkpoint = True

    def _commit(self, store: Store, batch: list[Inbound]) -> None:
        s = self.settings
        trusted = self._clock_trusted()
        # Validated one at a time as the store writes them (inside its transaction): 1,000
        # models held at once were ~6 MB of the burst's peak RSS (bench/README.md).
        items = (validate(m, self.limiter, s.max_payload_bytes, s.max_clock_skew_s, trusted)
                 for m in batch)
        result = store.write_batch(items, received_at=batch[-1].received_at)
        self._lasts_held = store.holds_lasts  # before the acks: idle stays False
        self._tally_rejects(list(result.rejects))
        for m in batch:
            self.ack(m)
        st = self.stats
        st.received += len(batch)
        st.stored += result.stored
        st.duplicates += result.duplicates
        st.rejected += result.rejected
        st.pending += result.pending
        st.batches += 1
        st.last_commit_monotonic = time.monotonic()
        self._written_since_fold = self._written_since_checkpoint = True
        if self.on_stored and result.stored:
            self.on_stored(set(result.devices))
