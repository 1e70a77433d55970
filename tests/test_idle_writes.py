"""SD-card wear (issue 21): once the writer's scheduled upkeep (fold, checkpoint) has
run after the last message, an idle writer writes nothing at all, however often it
wakes up (its timers act only after something was written)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.config import IngestSettings
from agent.mqtt.ingest import Writer
from agent.storage.store import Store
from tests.test_commit_window import inbound
from tests.waiting import wait_until


def _footprint(db: Path) -> tuple[int, ...]:
    wal = db.with_name(db.name + "-wal")
    stats = [p.stat() for p in (db, wal) if p.exists()]
    return tuple(v for s in stats for v in (s.st_size, s.st_mtime_ns))


def test_an_idle_writer_writes_nothing_after_its_upkeep(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    acked: list[int] = []
    settings = IngestSettings(commit_window_s=0.0, idle_wakeup_s=0.1, fold_interval_s=1,
                              checkpoint_interval_s=1)
    writer = Writer(lambda: Store(db), settings, lambda m: acked.append(m.mid))
    writer.start()
    watcher = sqlite3.connect(db)
    try:
        writer.queue.put(inbound(1))
        wait_until(lambda: acked == [1], what="the first message acknowledged")

        def folded() -> bool:
            return watcher.execute(
                "SELECT (SELECT COUNT(*) FROM readings_recent) = 0 AND "
                "(SELECT COALESCE(SUM(json_array_length(rows)), 0) FROM readings_main) = 1"
            ).fetchone()[0] == 1

        # Positive markers: the scheduled fold ran, then the checkpoint that follows it.
        wait_until(folded, what="the scheduled fold of the recent tier")
        st = writer.stats
        wait_until(lambda: st.last_checkpoint_pass >= st.last_fold_pass > 0,
                   what=lambda: f"a checkpoint after the fold: {st}")
        version = watcher.execute("PRAGMA data_version").fetchone()[0]
        before = _footprint(db)
        # Then twenty idle wake-ups spanning two fold and checkpoint intervals, as the
        # writer counts them (a writer that does not wake cannot pass by doing nothing).
        passes, since = st.upkeep_passes, time.monotonic()
        wait_until(lambda: st.upkeep_passes >= passes + 20
                   and time.monotonic() - since >= 2 * settings.fold_interval_s,
                   what=lambda: f"twenty idle upkeep passes after {passes}: {st}")
        assert writer.alive
        assert st.last_fold_pass <= passes and st.last_checkpoint_pass <= passes  # none since
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
        assert _footprint(db) == before
    finally:
        watcher.close()
        writer.stop()


def test_the_checkpoint_waits_for_the_fold(tmp_path: Path) -> None:
    """A checkpoint between two folds copied the same pages again at the next one (the
    recent tier's last leaf, held "last" values): it follows the fold instead."""
    db = tmp_path / "a.db"
    acked: list[int] = []
    settings = IngestSettings(commit_window_s=0.0, idle_wakeup_s=0.05, fold_interval_s=4,
                              checkpoint_interval_s=1)
    writer = Writer(lambda: Store(db), settings, lambda m: acked.append(m.mid))
    writer.start()
    try:
        st, started = writer.stats, time.monotonic()
        seq = 0
        # Messages keep coming past three checkpoint intervals, short of the fold.
        while time.monotonic() - started < 3.0:
            seq += 1
            writer.queue.put(inbound(seq))
            wait_until(lambda n=seq: len(acked) == n, what=f"message {seq} acknowledged")
            time.sleep(0.05)
        assert st.batches >= 10 and st.upkeep_passes >= 10  # the writer did wake up
        assert st.last_fold_pass == 0 and st.last_checkpoint_pass == 0, st
        wait_until(lambda: st.last_fold_pass > 0, timeout=10.0, what="the scheduled fold")
        wait_until(lambda: st.last_checkpoint_pass >= st.last_fold_pass,
                   what=lambda: f"the checkpoint after the fold: {st}")
    finally:
        writer.stop()
