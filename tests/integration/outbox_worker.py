"""Dispatcher processes for the SIGKILL test: each drains the outbox of one database.

``python -m tests.integration.outbox_worker DB URL TOKEN_FILE [--control]`` starts a
fork server: importing httpx and pydantic takes over a second on a loaded machine, so it
imports once and, for every ``run`` line on stdin, forks a fresh dispatcher process,
prints its pid, and prints ``exit <status>`` when it ends (killed or done: 0 once no
intent is queued or being sent). The fork server itself is single-threaded, so forking
is safe; each child opens its own database connection.
``--control`` mints a new idempotency key per attempt and never looks orders up: the
broken client the test must catch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.app.dispatcher import Dispatcher
from agent.storage.ledger import Intent, Ledger, State
from agent.vendor.client import Order, VendorClient


class KeyPerAttempt(Dispatcher):
    """The anti-pattern: every attempt is a new request as far as the vendor knows."""

    def _key(self, it: Intent) -> str:
        return str(uuid.uuid4())

    def _lookup(self, it: Intent) -> Order | None:
        return None


def drain(args: argparse.Namespace, client: VendorClient) -> int:
    """One dispatcher process: run passes until nothing is queued or being sent."""
    ledger = Ledger.open(args.db)
    cls = KeyPerAttempt if args.control else Dispatcher
    dispatcher = cls(ledger, client, vendor_name="sandbox", settle=timedelta(seconds=0.2),
                     backoff=lambda attempt, after: min(after or 0.05, 0.2))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dispatcher.run_once(datetime.now(UTC))
        if not ledger.intents([State.QUEUED, State.SENDING]):
            return 0
        time.sleep(0.01)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("url")
    parser.add_argument("token_file", type=Path)
    parser.add_argument("--control", action="store_true")
    args = parser.parse_args(argv)
    # Built before forking (loading TLS roots alone takes ~0.3 s) but used only in the
    # children; no request has been made, so no connection or thread is inherited.
    client = VendorClient(args.url, args.token_file.read_text().strip(), timeout=2.0,
                          deadline_s=3.0)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = drain(args, client)
            finally:
                os._exit(code)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"exit {status}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
