"""Every connection to the agent's database is opened here, with one wal-index setup a process.

SQLite in WAL mode keeps its wal-index in ``<db>-shm``, a file every process ``mmap``s.
The kernel writes its dirtied pages back every ``dirty_expire_centisecs`` (30 s), and
the next commit dirties them again: 590-900 B per message at household load, half of
what ingest writes, for pages a crash never needs (the index is rebuilt from the WAL;
bench/README.md, "The wal-index"). ``storage.wal_index = "process"``
opens every connection through SQLite's ``unix-excl`` VFS instead: the first
connection takes a process-wide exclusive lock on the file and the wal-index lives in
the heap, shared by all of this process's connections, so no ``-shm`` file exists.
The price: no other process can open the database while this one has a connection
(it gets ``database is locked``); see docs/operations.md.

The choice is process-wide on purpose: the connections of one process to one file share
SQLite's per-file lock state and wal-index, and which set-up that shared state takes
would depend on which connection opened first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.errors import StoreError

WalIndex = Literal["shared", "process"]

_VFS: dict[WalIndex, str | None] = {"shared": None, "process": "unix-excl"}

# Each connection's page cache, KiB (SQLite's default is 2,000, in the process's heap,
# which glibc does not give back). The ingest writer's connection holds it for the life
# of the service: 2 MB of pages (~2.5 MB with their headers at 1 KB pages) that the OS
# page cache holds anyway, for a write path that touches the last pages of two tables
# and a few packed rows per batch (bench/README.md, "Peak RSS").
CACHE_KIB = 1024


@dataclass(frozen=True)
class _Setup:
    mode: WalIndex = "shared"
    # The agent itself waits for a command that holds the file for a moment; a command
    # gives up at once, as the running agent holds it for as long as it runs.
    owner: bool = True


# The process's setting: `replenish` sets it from agent.toml before it opens anything.
_setup: list[_Setup] = [_Setup()]

HELD_HINT = ("the agent holds the database for its own process (storage.wal_index = "
             "\"process\"): stop it (sudo systemctl stop replenish-agent) to use this, "
             "or set storage.wal_index = \"shared\"")


def use_wal_index(mode: WalIndex, *, owner: bool = True) -> None:
    """Set how this process's connections keep the wal-index (before the first one);
    ``owner``: this process is the agent (``replenish run``), which holds the file."""
    _setup[0] = _Setup(mode, owner)


def wal_index() -> tuple[WalIndex, bool]:
    """The mode and ``owner`` of :func:`use_wal_index` (to restore them)."""
    return _setup[0].mode, _setup[0].owner


def connect(path: Path | str, *, readonly: bool = False, mode: str = "rwc",
            timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, :mod:`agent.storage.tx`).

    ``readonly`` opens with ``mode=ro`` (never creates the file); ``mode`` is SQLite's
    URI open mode otherwise (``rw``: the file must exist).
    """
    if str(path) == ":memory:":
        return sqlite3.connect(":memory:", isolation_level=None, timeout=timeout)
    query = [f"mode={'ro' if readonly else mode}"]
    setup = _setup[0]
    if vfs := _VFS[setup.mode]:
        query.append(f"vfs={vfs}")
        timeout = timeout if setup.owner else 0.0
    uri = f"{Path(path).resolve().as_uri()}?{'&'.join(query)}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout)
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def held_elsewhere(err: sqlite3.Error) -> StoreError | None:
    """The error to show when another process holds the database for itself, else None."""
    if _setup[0].mode == "process" and "locked" in str(err):
        return StoreError(f"cannot open the database: {err}: {HELD_HINT}")
    return None
