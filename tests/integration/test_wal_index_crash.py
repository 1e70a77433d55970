"""storage.wal_index = "process" keeps the crash property: the wal-index lives in the
killed agent's heap, and the next start rebuilds it from the WAL, so every reading the
broker accepted is stored exactly once across SIGKILLs (the shared-index twin is
``test_ingest.test_sigkill_while_publishing_loses_nothing_duplicates_nothing``).

While the agent runs no other process can open the database, so the test watches the
agent's progress file (its ingest commits) and counts the rows only while it is stopped.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.ops.progress import FILE_NAME, RUNTIME_ENV, read_progress
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.test_ingest import db_count, device_client, payload
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _committed(agent: AgentProcess, progress: Path) -> bool:
    """This agent process has committed an ingest batch since it started."""
    done = read_progress(progress) if progress.exists() else None
    return (done is not None and agent.proc is not None and done.pid == agent.proc.pid
            and done.ingest_batches > 0)


@pytest.mark.slow
def test_sigkill_with_the_wal_index_in_the_process(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", broker, extra='wal_index = "process"\n')
    db = tmp_path / "agent" / "agent.db"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    progress = run_dir / FILE_NAME
    agent = AgentProcess(config, env={RUNTIME_ENV: str(run_dir)}).start()
    total = 3000
    client = device_client(broker, "printer-1")
    published = threading.Event()

    def publish_all() -> None:
        infos = [client.publish("replenish/v1/devices/printer-1/state",
                                payload("printer-1", seq, level=100 - seq / 100), qos=1)
                 for seq in range(1, total + 1)]
        for info in infos:
            info.wait_for_publish(120)
        published.set()

    def all_stored() -> bool:
        # A clean stop commits what the agent holds; then the file is ours to count.
        agent.stop()
        stored = db_count(db, "printer-1")
        if stored < total:
            agent.start()
        return stored == total

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    try:
        for _ in range(3):  # kill mid-stream, restart, repeat
            # (Once everything went out, a restarted agent may have nothing to commit.)
            wait_until(lambda: _committed(agent, progress) or published.is_set(), timeout=30)
            assert not db.with_name("agent.db-shm").exists()
            agent.kill()
            agent.start()
        publisher.join(150)
        assert published.is_set()
        wait_until(all_stored, timeout=120, every=1.0)
    finally:
        agent.stop()
        client.loop_stop()
        client.disconnect()
    with Store(db) as store:
        assert store.seqs("printer-1") == list(range(1, total + 1))
        assert store.reading_count("printer-1") == total
