"""storage.wal_index = "process" keeps the crash property: the wal-index lives in the
killed agent's heap, and the next start rebuilds it from the WAL, so every reading the
broker accepted is stored exactly once across SIGKILLs (the shared-index twin is
``test_ingest.test_sigkill_while_publishing_loses_nothing_duplicates_nothing``).

While the agent runs no other process can open the database, so the test watches the
agent's progress file (its ingest commits) and counts the rows only while it is stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.ops.progress import FILE_NAME, RUNTIME_ENV
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import (
    AgentProcess,
    committed_since_start,
    db_count,
    publish_through_kills,
    write_agent_config,
)

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_sigkill_with_the_wal_index_in_the_process(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", broker, extra='wal_index = "process"\n')
    db = tmp_path / "agent" / "agent.db"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    progress = run_dir / FILE_NAME
    agent = AgentProcess(config, env={RUNTIME_ENV: str(run_dir)}).start()
    total = 3000

    def committed() -> bool:
        assert not db.with_name("agent.db-shm").exists()
        return committed_since_start(agent, progress)

    def all_stored() -> bool:
        # A clean stop commits what the agent holds; then the file is ours to count.
        agent.stop()
        stored = db_count(db, "printer-1")
        if stored < total:
            agent.start()
        return stored == total

    seqs, count = publish_through_kills(agent, broker, db, committed=committed,
                                        all_stored=all_stored, total=total)
    assert seqs == list(range(1, total + 1))
    assert count == total
