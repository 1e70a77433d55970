"""storage.wal_index = "process": the wal-index in the agent's heap, no ``-shm`` file
(issue 21: its mapped pages were written back after every commit), and other processes
told why they cannot open the database instead of waiting out the busy timeout."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.ops import doctor
from agent.ops.doctor_report import Level
from agent.storage.connect import use_wal_index, wal_index
from agent.storage.ledger import Ledger
from agent.storage.readonly import connect_readonly
from agent.storage.sources import SourceStore
from agent.storage.store import Store

# Plays the running agent: holds the database in "process" mode until killed.
HOLD = """import sys, time
from agent.storage.connect import use_wal_index
from agent.storage.store import Store
use_wal_index("process")
store = Store(sys.argv[1]); store.conn.execute("SELECT 1").fetchall()
print("open", flush=True); time.sleep(60)
"""


@pytest.fixture
def restore_mode() -> Iterator[None]:
    before = wal_index()
    yield
    use_wal_index(before[0], owner=before[1])


def _files_while_open(db: Path) -> set[str]:
    """A write on one connection, read on the others the agent opens (readers, the
    sources' store, the ledger's); the database's files while they are open."""
    with Store(db) as writer:
        writer.conn.execute("CREATE TABLE probe (x)")
        writer.conn.execute("INSERT INTO probe VALUES (1)")
        with SourceStore(db) as sources, Store.open_readonly(db) as reader:
            ledger = Ledger(connect_readonly(db))
            try:
                seen = [int(c.execute("SELECT count(*) FROM probe").fetchone()[0])
                        for c in (writer.conn, sources.conn, reader.conn, ledger.conn)]
                files = {p.name for p in db.parent.iterdir()}
            finally:
                ledger.conn.close()
    assert seen == [1, 1, 1, 1]
    return files


@pytest.mark.usefixtures("restore_mode")
def test_process_mode_keeps_no_shm_file_and_shares_the_index(tmp_path: Path) -> None:
    use_wal_index("process")
    db = tmp_path / "agent.db"
    # Still WAL, the index in the heap.
    assert _files_while_open(db) == {"agent.db", "agent.db-wal"}


@pytest.mark.usefixtures("restore_mode")
def test_shared_mode_maps_the_shm_file(tmp_path: Path) -> None:
    use_wal_index("shared")
    db = tmp_path / "agent.db"
    assert _files_while_open(db) == {"agent.db", "agent.db-wal", "agent.db-shm"}


@pytest.mark.usefixtures("restore_mode")
def test_other_process_is_told_the_agent_holds_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "agent.db"
    Store(db).close()
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[storage]\npath = "{db}"\nwal_index = "process"\n')
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert not (tmp_path / "agent.db-shm").exists()
        assert main(["--config", str(cfg), "status"]) != 0
        err = capsys.readouterr().err
        assert 'storage.wal_index = "process"' in err and "stop it" in err, err
        use_wal_index("process", owner=False)
        result = doctor.check_database(db)
        assert (result.name, result.level) == ("database", Level.WARN)
        assert "storage.wal_index" in result.fix, result
    finally:
        holder.kill()
        holder.wait()
    assert main(["--config", str(cfg), "status"]) == 0
