"""The writer's commit window: messages trickling in share one commit, acknowledged only
after it; a clean stop commits what the window holds; a fast stream does not wait, nor
does its tail; news (an event, a device's first message, a changed state) commits at
once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from agent.config import IngestSettings
from agent.mqtt import news as news_module
from agent.mqtt import writer as writer_module
from agent.mqtt.ingest import Inbound, Writer
from agent.storage.store import BatchResult, Item, Store
from tests.waiting import wait_until

NOW = 1_793_000_000.0
TOPIC = "replenish/v1/devices/printer-1/state"


def inbound(seq: int, state: str | None = None, at: float = NOW) -> Inbound:
    black: dict[str, object] = {"id": "black", "level": 50}
    if state is not None:
        black["state"] = state
    body = {"device_id": "printer-1", "seq": seq, "ts": "2026-10-26T00:00:00Z",
            "kind": "printer", "consumables": [black]}
    return Inbound(seq, 1, TOPIC, json.dumps(body).encode(), at)


def seen(writer: Writer, acked: list[int]) -> None:
    """The device's first message is news and commits alone: get it out of the way."""
    writer.queue.put(inbound(0))
    wait_until(lambda: acked == [0], timeout=10.0, what="the first message's own commit")
    acked.clear()


def writer_for(path: Path, acked: list[int], **settings: float) -> Writer:
    return Writer(lambda: Store(path), IngestSettings(**settings),
                  lambda m: acked.append(m.mid))


def test_messages_within_the_window_share_one_commit(tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=1.0)
    writer.start()
    try:
        seen(writer, acked)
        for seq in range(1, 6):  # a trickle: 5 messages in ~0.25 s
            writer.queue.put(inbound(seq))
            time.sleep(0.05)
        # Positive marker: the writer took all five into its open batch; then none may
        # be acknowledged before that batch's commit.
        wait_until(lambda: writer.held == 5 or acked, what="five messages in one batch")
        assert acked == []
        wait_until(lambda: len(acked) >= 5, timeout=10.0, what="the window's commit")
        assert acked == [1, 2, 3, 4, 5]
        assert writer.stats.batches == 2
    finally:
        writer.stop()


def test_a_clean_stop_commits_what_the_window_holds(tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=60.0)
    writer.start()
    for seq in range(1, 4):
        writer.queue.put(inbound(seq))
    started = time.monotonic()
    writer.stop()
    assert time.monotonic() - started < 5  # not the 60 s window
    assert acked == [1, 2, 3] and not writer.alive
    with Store(tmp_path / "a.db") as store:
        assert store.seqs("printer-1") == [1, 2, 3]


def test_a_fast_stream_does_not_wait_for_the_window(tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=30.0, batch_size=10_000)
    writer.start()
    try:
        for seq in range(1, 2_001):  # far more than 10,000 per 30 s
            writer.queue.put(inbound(seq))
        # Well before the 30 s window ran out.
        wait_until(lambda: len(acked) == 2_000, timeout=20.0, what=lambda: f"{len(acked)} acked")
    finally:
        writer.stop()


def test_the_recent_tier_is_folded_once_it_holds_fold_rows(tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=0.0, fold_rows=100)
    writer.start()
    try:
        for first, last in ((1, 100), (101, 120)):
            for seq in range(first, last + 1):
                writer.queue.put(inbound(seq))
            wait_until(lambda n=last: len(acked) >= n, timeout=20.0)
    finally:
        writer.stop()
    with Store(tmp_path / "a.db") as store:
        assert store.reading_count() == 120
        main = store.conn.execute("SELECT COALESCE(SUM(json_array_length(rows)), 0) "
                                  "FROM readings_main").fetchone()[0]
        assert main == 100  # folded at 100; the rest waits (a clean stop does not fold)
        assert store.recent_count() == 20


def test_a_device_event_commits_at_once_whatever_the_window(tmp_path: Path) -> None:
    # An urgent event (fall_alert) must not wait out the window: its alert budget is
    # seconds (bench/alerts.py), the window is set for SD-card wear.
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=60.0)
    writer.start()
    try:
        seen(writer, acked)
        writer.queue.put(inbound(1))
        wait_until(lambda: writer.held == 1, what="the reading in the open batch")
        body = {"device_id": "printer-1", "seq": 2, "ts": "2026-10-26T00:00:00Z",
                "type": "fall_alert"}
        writer.queue.put(Inbound(2, 1, TOPIC.replace("/state", "/events"),
                                 json.dumps(body).encode(), NOW))
        wait_until(lambda: len(acked) == 2, timeout=10.0, what="the event's commit")
        assert acked == [1, 2] and writer.stats.batches == 2 and writer.stats.rejected == 0
    finally:
        writer.stop()


def test_a_first_message_and_a_changed_state_commit_at_once_level_ticks_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(news_module, "STATE_NEWS_EVERY_S", 0.0)  # flapping: the next test
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=60.0)
    writer.start()
    try:
        writer.queue.put(inbound(1))  # a device just added: shown at once
        wait_until(lambda: acked == [1], timeout=10.0, what="the first message's commit")
        writer.queue.put(inbound(2))  # a level tick waits for the window
        wait_until(lambda: writer.held == 1, what="the tick in the open batch")
        writer.queue.put(inbound(3, state="low"))  # LOW: the batch goes now
        wait_until(lambda: len(acked) == 3, timeout=10.0, what="the LOW's commit")
        writer.queue.put(inbound(4, state="low"))  # still LOW: no news
        wait_until(lambda: writer.held == 1, what="the repeated LOW in the open batch")
        writer.queue.put(inbound(5))  # the state is gone (replaced): news again
        wait_until(lambda: len(acked) == 5, timeout=10.0, what="the replacement's commit")
        assert acked == [1, 2, 3, 4, 5] and writer.stats.batches == 3
    finally:
        writer.stop()


def test_a_flapping_state_commits_early_once_then_waits_for_the_window(
        tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=60.0)
    writer.start()
    try:
        seen(writer, acked)
        writer.queue.put(inbound(1, state="low"))  # news: commits at once
        wait_until(lambda: acked == [1], timeout=10.0, what="the LOW's commit")
        writer.queue.put(inbound(2))  # OK again a moment later: a flap, not news
        wait_until(lambda: writer.held == 1, what="the flap in the open batch")
        writer.queue.put(inbound(3, state="low"))
        wait_until(lambda: writer.held == 2, what="the second flap in the open batch")
        assert acked == [1]  # held, not committed: waits for the window like a tick
    finally:
        writer.stop()
    assert acked == [1, 2, 3]  # the clean stop commits them


@pytest.mark.parametrize(("count", "spacing_s", "batch_size", "first_commit"), [
    (30, 2.0, 1_000, 0),  # a backlog that queued while the writer was busy
    (60, 0.5, 50, 50),  # batch_size messages gathered over 30 s, then the rest
])
def test_messages_that_arrived_at_household_pace_wait_for_the_window(
        tmp_path: Path, count: int, spacing_s: float, batch_size: int,
        first_commit: int) -> None:
    # Messages that arrived seconds apart are no fast stream, however the writer took
    # them: either case started 5 s of 50 ms commits (the 1 msg/s card figure's many
    # commits).
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=60.0,
                        batch_size=batch_size)
    writer.start()
    try:
        seen(writer, acked)
        for seq in range(1, count + 1):
            writer.queue.put(inbound(seq, at=NOW + spacing_s * seq))
        if first_commit:
            wait_until(lambda: len(acked) == first_commit, timeout=10.0,
                       what="the full batch's commit")
        rest = count - first_commit
        wait_until(lambda: writer.held == rest, what="the rest in the open batch")
        time.sleep(0.3)  # six fast windows
        assert len(acked) == first_commit and writer.held == rest
    finally:
        writer.stop()
    assert acked == list(range(1, count + 1))


def test_the_tail_of_a_fast_stream_does_not_wait_for_the_window(tmp_path: Path) -> None:
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=30.0, batch_size=10_000)
    writer.start()
    try:
        seen(writer, acked)
        for seq in range(1, 2_001):
            writer.queue.put(inbound(seq))
        wait_until(lambda: len(acked) == 2_000, timeout=20.0, what=lambda: f"{len(acked)} acked")
        # A few stragglers right behind the burst: too few to measure a rate on their
        # own, yet the stream was fast a moment ago; they must not wait 30 s.
        for seq in range(2_001, 2_004):
            writer.queue.put(inbound(seq))
        wait_until(lambda: len(acked) == 2_003, timeout=10.0, what="the tail's commit")
    finally:
        writer.stop()


def test_a_trickle_after_a_burst_goes_back_to_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The short window after a burst must run out even while messages keep coming
    # at household pace; each of them renewing it would commit every message alone.
    monkeypatch.setattr(writer_module, "FAST_HOLD_S", 0.5)
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=30.0, batch_size=10_000)
    writer.start()
    try:
        seen(writer, acked)
        for seq in range(1, 501):
            writer.queue.put(inbound(seq))
        wait_until(lambda: len(acked) == 500, timeout=20.0, what="the burst's commit")
        for seq in range(501, 521):  # one every 0.2 s for 4 s
            writer.queue.put(inbound(seq))
            time.sleep(0.2)
            if writer.held >= 5:
                break
        assert writer.held >= 5, f"{writer.stats.batches} batches: the trickle never gathered"
    finally:
        writer.stop()


def test_a_message_queued_behind_a_commit_waits_the_window_from_its_arrival(
        tmp_path: Path) -> None:
    # While the writer commits, messages queue; the window it then holds their batch for
    # runs from the first one's arrival, not from when it was taken (waiting the whole
    # window again on top doubled the latency at half the maximum rate).
    acked: list[int] = []
    committing = threading.Event()

    class SlowStore(Store):
        def write_batch(self, items: Iterable[Item], received_at: float,
                        resolved: Sequence[int] = ()) -> BatchResult:
            result = super().write_batch(items, received_at, resolved)
            if not committing.is_set() and result.stored:
                committing.set()
                time.sleep(0.8)  # a slow commit (a fold, an SD card's fsync)
            return result

    writer = Writer(lambda: SlowStore(tmp_path / "a.db"), IngestSettings(commit_window_s=1.0),
                    lambda m: acked.append(m.mid))
    writer.start()
    try:
        writer.queue.put(inbound(0))  # a first message: news, committed at once, slowly
        assert committing.wait(10.0)
        queued_at = time.monotonic()
        writer.queue.put(inbound(1))
        wait_until(lambda: 1 in acked, timeout=10.0, what="the queued message's commit")
        # From its arrival: the window (1 s) and a commit; not 0.8 s more.
        assert time.monotonic() - queued_at < 1.5
    finally:
        writer.stop()


def test_a_fast_stream_folds_at_fast_fold_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fold holds everything queued behind it: in a fast stream the recent tier is folded
    # in smaller steps than fold_rows.
    monkeypatch.setattr(writer_module, "FAST_FOLD_ROWS", 50, raising=False)
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=30.0, fold_rows=1_000)
    writer.start()
    try:
        for seq in range(1, 81):  # at once: a fast stream
            writer.queue.put(inbound(seq))
        wait_until(lambda: len(acked) == 80, timeout=20.0, what=lambda: f"{len(acked)} acked")
        wait_until(lambda: writer.stats.last_fold_pass > 0, timeout=5.0, what="a fold")
    finally:
        writer.stop()
    with Store(tmp_path / "a.db") as store:
        assert store.reading_count() == 80
        assert store.recent_count() < 80


def test_a_household_pace_stream_folds_at_fold_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "FAST_FOLD_ROWS", 50, raising=False)
    acked: list[int] = []
    writer = writer_for(tmp_path / "a.db", acked, commit_window_s=0.0, fold_rows=100)
    writer.start()
    try:
        for seq in range(1, 61):  # one at a time, each committed before the next
            writer.queue.put(inbound(seq))
            wait_until(lambda n=seq: len(acked) == n, timeout=10.0)
    finally:
        writer.stop()
    assert writer.stats.last_fold_pass == 0
