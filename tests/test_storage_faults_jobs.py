"""Storage faults outside ingest: a full database in the decision pass, the ledger or a
household command is one line, a retry with backoff and one household problem event,
never an exception out of a scheduled job (the real full tmpfs is in
tests/integration/test_disk_full.py)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.app.storage_faults import CLEARED_PROBLEM, INGEST, Fault, StorageFaults
from agent.errors import StoreError
from agent.household.link import HouseholdLink
from agent.ops import doctor
from agent.storage.ledger import Ledger
from agent.wire.household import Outgoing

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


def fill_up(ledger: Ledger) -> None:
    """A deterministic SQLITE_FULL: the file may not grow past its current pages."""
    pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
    ledger.conn.execute(f"PRAGMA max_page_count = {pages}")


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[Fault | None, Fault | None]] = []
        self.retries: list[tuple[str, float]] = []

    def faults(self) -> StorageFaults:
        return StorageFaults(lambda a, b: self.changes.append((a, b)),
                             lambda job, s: self.retries.append((job, s)))


def test_a_full_ledger_in_a_job_is_recorded_retried_and_cleared(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    faults = rec.faults()
    fill_up(ledger)

    def decide() -> None:
        ledger.record("note", None, {"blob": "x" * 20_000}, NOW)

    job = faults.guard("decision", decide, "decide")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            job()  # never raises: APScheduler would print a traceback every pass
    assert faults.current == Fault("disk_full", ("decision",))
    assert [s for _, s in rec.retries] == [15.0, 30.0, 60.0]  # backoff, capped later
    assert {j for j, _ in rec.retries} == {"decide"}
    failed = [r.getMessage() for r in caplog.records if "store.write_failed" in r.getMessage()]
    assert len(failed) == 1 and "where=decision reason=disk_full" in failed[0]
    assert rec.changes == [(None, Fault("disk_full", ("decision",)))]

    ledger.conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    with caplog.at_level(logging.INFO):
        job()
    assert faults.current is None
    assert rec.changes[-1] == (Fault("disk_full", ("decision",)), None)
    assert any("store.write_recovered where=decision reason=disk_full failures=3"
               in r.getMessage() for r in caplog.records)
    assert len(ledger.audit_records()) == 1


def test_backoff_is_capped() -> None:
    faults = Recorder().faults()
    delays = [faults.failed("outbox", "disk_full") for _ in range(8)]
    assert delays[0] == 15.0 and max(delays) == 120.0 and delays[-1] == 120.0


def test_writers_join_into_one_fault_cleared_writer_by_writer() -> None:
    rec = Recorder()
    faults = rec.faults()
    faults.observe(INGEST, "disk_full")
    faults.failed("household", "disk_full")
    faults.observe(INGEST, "disk_full")  # unchanged: nothing new
    assert faults.current == Fault("disk_full", (INGEST, "household"))
    faults.observe(INGEST, None)
    assert faults.current == Fault("disk_full", ("household",))  # still failing there
    faults.succeeded("household")
    assert faults.current is None
    assert [(a is None, b is None) for a, b in rec.changes] == [
        (True, False), (False, False), (False, False), (False, True)]


def test_status_and_problem_texts() -> None:
    fault = Fault("disk_full", (INGEST, "decision"))
    assert fault.status.startswith(doctor.STORAGE_FAULT_STATUS)
    assert "disk_full in ingest,decision" in fault.status
    assert "free space" in fault.problem
    assert "doctor" in Fault("io_error", ("outbox",)).problem


class FullOnce:
    """A ledger whose first write fails as on a full disk (the seam under test is the
    link's hand-off, not SQLite)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.full = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)

    def record(self, *args: Any, **kwargs: Any) -> int:
        if self.full:
            raise StoreError("ledger write failed: database or disk is full",
                             reason="disk_full")
        return self.ledger.record(*args, **kwargs)


def test_a_household_command_that_cannot_be_recorded_is_kept(ledger: Ledger) -> None:
    link = HouseholdLink(lambda m: None)
    topic = "replenish/v1/household/commands/approve"
    link.deliver(topic, json.dumps({"ref": "p999-00000000"}).encode())
    link.deliver(topic, b"not json")
    full = FullOnce(ledger)
    with pytest.raises(StoreError):
        link.handle_commands(full, None, NOW)  # type: ignore[arg-type]
    assert link.stats.commands == 0
    assert len(ledger.audit_records()) == 0
    full.full = False  # space is back
    link.handle_commands(full, None, NOW)  # type: ignore[arg-type]
    assert link.stats.commands == 2  # the held one first, then the one queued behind it
    refused = [r for r in ledger.audit_records() if r.kind == "household_command_refused"]
    assert len(refused) == 1


def test_doctor_fails_the_storage_check_while_the_agent_reports_a_fault() -> None:
    status = Fault("disk_full", (INGEST,)).status
    probes = doctor.Probes(service_status=lambda: status)
    result = doctor.check_storage(probes)
    assert result.level is doctor.Level.FAIL and "free space" in result.fix
    ok = doctor.check_storage(doctor.Probes(service_status=lambda: "running: MQTT ..."))
    assert ok.level is doctor.Level.OK
    assert doctor.check_storage(doctor.Probes(service_status=lambda: None)).level \
        is doctor.Level.OK


def test_the_service_announces_a_fault_and_its_clearing(tmp_path: Any) -> None:
    sent: list[Outgoing] = []
    link = HouseholdLink(sent.append)
    faults = StorageFaults(lambda before, now: announce(link, before, now))
    faults.observe(INGEST, "disk_full")
    faults.failed("decision", "disk_full")  # same fault, more writers: no second event
    faults.observe(INGEST, None)
    faults.succeeded("decision")
    events = [json.loads(m.payload) for m in sent]
    assert [(e["kind"], e["ref"]) for e in events] == [("problem", "storage")] * 2
    assert events[0]["message"].startswith("storage fault disk_full")
    assert events[1]["message"] == CLEARED_PROBLEM


def announce(link: HouseholdLink, before: Fault | None, now: Fault | None) -> None:
    # The same rule as AgentService._storage_changed, without a broker.
    if before and now and before.reason == now.reason:
        return
    link.problem(now.problem if now else CLEARED_PROBLEM, NOW, ref="storage")
