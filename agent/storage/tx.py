"""The one way the agent writes to SQLite: a ``BEGIN IMMEDIATE`` transaction.

Taking the write lock up front (instead of upgrading a read lock mid-transaction) means a
busy database makes the writer wait for ``timeout`` rather than fail with SQLITE_BUSY,
and any exception, ours or SQLite's, rolls back everything the block wrote.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Commit the block's writes on success, roll them back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # On SQLITE_FULL (and IOERR, NOMEM) SQLite has already rolled the transaction
        # back itself: a second ROLLBACK would fail with "no transaction is active" and
        # hide the real error, which is the one to raise.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
