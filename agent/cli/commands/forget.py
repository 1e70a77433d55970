"""``replenish forget --all``: delete everything the agent recorded about the household.

Readings, devices, events, rejects, consent, purchase intents (orders), reminders and the
audit chain all go; the schema stays, so the agent starts again as freshly installed.
``secure_delete``, ``VACUUM`` and a truncating WAL checkpoint make sure the deleted rows
do not linger in free pages or the ``-wal`` file. Orders already placed stay with the
vendor. The audit table refuses deletes through triggers; they are dropped and re-created
inside the same transaction, so a failure leaves both the data and the triggers intact.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from agent.config import Settings
from agent.errors import StoreError
from agent.ops import running
from agent.storage.connect import connect
from agent.storage.tx import immediate

CONFIRM_WORD = "forget"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "forget",
        help="delete every reading, order and audit record (asks for confirmation)",
        description="Delete everything the agent has recorded. Stop the service first.",
    )
    parser.add_argument(
        "--all", action="store_true", required=True, help="required: everything is deleted"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    parser.add_argument("--stop-service", action="store_true",
                        help="stop replenish-agent first (refused while it runs otherwise)")
    parser.set_defaults(func=run)


def forget_all(path: Path) -> dict[str, int]:
    """Delete every row of every table in the database at ``path``; rows deleted per table."""
    try:
        conn = connect(path, mode="rw")
        with closing(conn):
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA secure_delete=ON")
            with immediate(conn):
                triggers = conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type='trigger'"
                ).fetchall()
                tables = [
                    r[0] for r in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type='table' "
                        "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                    )
                ]
                for name, _ in triggers:
                    conn.execute(f'DROP TRIGGER "{name}"')
                counts = {t: conn.execute(f'DELETE FROM "{t}"').rowcount for t in tables}
                if conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'"
                ).fetchone():
                    conn.execute("DELETE FROM sqlite_sequence")
                for _, sql in triggers:
                    conn.execute(sql)
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as err:
        raise StoreError(f"forget failed on {path}: {err}") from err
    return counts


def _confirmed(path: Path) -> bool:
    print(
        f"This deletes every reading, device, consent, order and audit record in {path}.\n"
        "Orders already placed stay with the vendor. Stop the service first:\n"
        "  sudo systemctl stop replenish-agent"
    )
    try:
        answer = input(f"Type '{CONFIRM_WORD}' to delete everything: ")
    except EOFError:
        return False
    return answer.strip() == CONFIRM_WORD


def _still_running(path: Path, *, stop: bool) -> str | None:
    """Why forgetting now is unsafe (the agent would keep writing), or None.

    A running agent holds the database open and would go on recording into it (and its
    in-memory state would no longer match): deleting under it forgets nothing for good.
    """
    if running.unit_active():
        if not stop:
            return (f"{running.UNIT} is running; stop it first "
                    "(sudo systemctl stop replenish-agent) or add --stop-service")
        if (why := running.stop_unit()) is not None:
            return f"could not stop {running.UNIT}: {why}"
    if users := running.holders(path):
        pids = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in users)
        return f"{path} is in use by {pids}; stop it first"
    return None


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    path = settings_loader().storage.path
    if not path.exists():
        print(f"{path}: no database, nothing to forget")
        return 0
    if (busy := _still_running(path, stop=args.stop_service)) is not None:
        print(f"replenish forget: refused: {busy}", file=sys.stderr)
        return 2
    if not args.yes and not _confirmed(path):
        print("aborted; nothing was deleted", file=sys.stderr)
        return 1
    counts = forget_all(path)
    total = sum(counts.values())
    detail = " ".join(f"{t}={n}" for t, n in counts.items() if n)
    print(f"deleted {total} rows{': ' + detail if detail else ''}")
    print(f"{path}: compacted to {path.stat().st_size // 1024} KB")
    return 0
