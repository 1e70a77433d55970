"""Read-only access for commands that only look (status, orders list, audit, consent show).

:class:`agent.storage.store.Store` creates the file and migrates it on open: right for
the agent, wrong for ``replenish status`` on a gateway where the agent never ran (it
left a fresh ``/var/lib/replenish-agent/agent.db`` behind, owned by root). Here a
missing database is an error that says so, and nothing is ever written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.errors import StoreError
from agent.storage.connect import connect, held_elsewhere
from agent.storage.migrations import LATEST_VERSION


def connect_readonly(path: Path | str) -> sqlite3.Connection:
    """A connection that never creates the file, changes the schema or writes."""
    db = Path(path)
    try:
        exists = db.is_file()
    except PermissionError:
        exists = True  # let sqlite say "unable to open" below
    if not exists:
        raise StoreError(
            f"no database at {db} yet: the agent creates it when it first starts "
            "(sudo systemctl start replenish-agent); check storage.path if it has run before"
        )
    try:
        conn = connect(db, readonly=True)
        conn.execute("PRAGMA query_only=ON")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as err:
        raise held_elsewhere(err) or StoreError(f"cannot read database {db}: {err}") from err
    if version != LATEST_VERSION:
        conn.close()
        newer = "newer than this agent: upgrade it" if version > LATEST_VERSION else (
            "older than this agent: start the agent once to upgrade it")
        raise StoreError(f"database {db} has schema {version}, {newer}")
    return conn
