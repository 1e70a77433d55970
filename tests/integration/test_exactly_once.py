"""Exactly once: SIGKILL the dispatcher at random moments while it places orders against
the real vendor sandbox over HTTP; the sandbox must hold exactly one order per intent.

The same harness with a client that mints a new key per attempt must show duplicates,
so the test can fail.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agent.consent import Mandate, Mode, Proposal
from agent.storage.ledger import Ledger, State
from firmware_sim.vendor import VendorSandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "kill-test-token"
CID = "printer-1/black"


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=TOKEN) as running:
        # Latency keeps each call open long enough for kills to land mid-request.
        running.faults.latency = 0.04
        yield running


def _prepare(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "agent.db"
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with closing(Ledger.open(db)) as ledger:
        ledger.set_consent(CID, Mode.AUTO, Mandate(skus=("TN-2420",),
                                                   max_unit_price=Decimal("100")),
                           datetime.now(UTC))
    return db, token


def _add_intents(db: Path, count: int) -> None:
    with closing(Ledger.open(db)) as ledger:
        now = datetime.now(UTC)
        for _ in range(count):
            prop = Proposal(CID, "sandbox", "TN-2420", 1, 1, Decimal("64.90"))
            ledger.create_intent(prop, Mode.AUTO, State.QUEUED, now, send_after=now)


class Workers:
    """The fork server of :mod:`tests.integration.outbox_worker` and its children."""

    def __init__(self, db: Path, url: str, token: Path, control: bool) -> None:
        cmd = [sys.executable, "-m", "tests.integration.outbox_worker", str(db), url,
               str(token)]
        if control:
            cmd.append("--control")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})

    def start(self) -> int:
        """Fork one dispatcher process; returns its pid."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        """The wait status of the last child, once it has ended."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("exit "), line
        return int(line.split()[1])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def run_with_kills(tmp_path: Path, sandbox: VendorSandbox, *, intents: int, kills: int,
                   control: bool, seed: int) -> tuple[Counter[str], int, int]:
    """Kill a dispatcher ``kills`` times, then let one finish; ``intents`` more intents
    are queued whenever a dispatcher drains the outbox before its kill.

    Returns orders per intent, kills done, and kills that left an order attempt with an
    unknown outcome (committed as sending, no answer recorded): the kills that matter.
    """
    rng = random.Random(seed)
    db, token = _prepare(tmp_path)
    _add_intents(db, intents)
    workers = Workers(db, sandbox.url, token, control)
    done = mid_order = 0
    try:
        while done < kills:
            pid = workers.start()
            # Each order takes a catalog call and a POST of ~40 ms each: kills land
            # inside requests and between an attempt's commit and its answer.
            time.sleep(rng.uniform(0.0, 0.2))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = workers.wait()
            if os.WIFEXITED(status):
                _add_intents(db, intents)  # it drained the outbox before the kill
                continue
            done += 1
            with closing(Ledger.open(db)) as ledger:
                mid_order += bool(ledger.intents([State.SENDING]))
        workers.start()
        assert workers.wait() == 0
    finally:
        workers.close()
    ledger = Ledger.open(db)
    states = Counter(i.state for i in ledger.intents())
    ledger.close()
    assert set(states) == {State.PLACED}
    per_intent = Counter(o.client_ref or "?" for o in sandbox.orders())
    assert len(per_intent) == sum(states.values()), "every intent has its order"
    return per_intent, done, mid_order


@pytest.mark.timeout(120)
def test_one_order_per_intent_across_sigkills(tmp_path: Path, sandbox: VendorSandbox) -> None:
    per_intent, kills, interrupted = run_with_kills(
        tmp_path, sandbox, intents=30, kills=50, control=False, seed=5
    )
    assert kills >= 50
    assert interrupted >= 5, "kills must land while orders are in flight"
    assert len(per_intent) >= 30
    assert set(per_intent.values()) == {1}, per_intent
    keys = Counter(o.idempotency_key for o in sandbox.orders())
    assert set(keys.values()) == {1}


@pytest.mark.timeout(120)
def test_control_minting_a_key_per_attempt_duplicates(
    tmp_path: Path, sandbox: VendorSandbox
) -> None:
    per_intent, _, _ = run_with_kills(tmp_path, sandbox, intents=30, kills=20, control=True, seed=5)
    assert len(per_intent) >= 30
    assert max(per_intent.values()) > 1, "the harness must be able to see duplicates"
