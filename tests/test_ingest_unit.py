"""Ingest seams without a broker: validation, rate limiting, the writer's ack-after-commit."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from agent.config import IngestSettings
from agent.mqtt.ingest import Inbound, RateLimiter, Writer, validate
from agent.storage.store import Rejected, StatusUpdate, Store
from agent.wire.device import EventMessage, StateMessage

NOW = 1_793_000_000.0  # 2026-10-26


def inbound(topic: str, body: object, mid: int = 1) -> Inbound:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Inbound(mid, 1, topic, payload, NOW)


def reading(device: str = "printer-1", seq: int = 1, ts: str = "2026-10-26T00:00:00Z") -> dict:
    return {"device_id": device, "seq": seq, "ts": ts, "kind": "printer",
            "consumables": [{"id": "black", "level": 50}]}


def check(m: Inbound, limiter: RateLimiter | None = None) -> object:
    return validate(m, limiter or RateLimiter(100, 100), 16_384, 86_400)


def test_validate_dispatches_by_channel() -> None:
    base = "replenish/v1/devices/printer-1/"
    assert isinstance(check(inbound(base + "state", reading())), StateMessage)
    event = {"device_id": "printer-1", "seq": 2, "ts": "2026-10-26T00:00:00Z",
             "type": "cartridge_replaced"}
    assert isinstance(check(inbound(base + "events", event)), EventMessage)
    assert check(inbound(base + "status", {"state": "online"})) == StatusUpdate("printer-1", True)


def test_validate_rejections_carry_device_and_reason() -> None:
    base = "replenish/v1/devices/printer-1/"
    cases = {
        "bad_json": inbound(base + "state", b"{nope"),
        "device_mismatch": inbound(base + "state", reading(device="printer-2")),
        "bad_topic": inbound(base + "commands", reading()),
        "clock_skew": inbound(base + "state", reading(ts="2031-01-01T00:00:00Z")),
        "too_large": inbound(base + "state", b"x" * 20_000),
    }
    for reason, m in cases.items():
        result = check(m)
        assert isinstance(result, Rejected) and result.reason == reason, reason
        assert result.device_id == "printer-1"
    spoofed = check(inbound("replenish/v1/devices/+/state", reading()))
    assert isinstance(spoofed, Rejected) and spoofed.device_id == "?"


def test_rate_limiter_allows_burst_then_refills() -> None:
    t = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: t[0])
    assert [limiter.allow("d") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    t[0] = 1.0
    assert [limiter.allow("d") for _ in range(3)] == [True, True, False]


def test_writer_acks_only_after_commit(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    acked: list[int] = []
    seen_in_db: list[bool] = []

    def ack(m: Inbound) -> None:
        with Store(path) as other:  # a second connection sees only committed data
            seen_in_db.append(m.mid in other.seqs("printer-1"))
        acked.append(m.mid)

    stored = threading.Event()
    writer = Writer(lambda: Store(path), IngestSettings(), ack, on_stored=lambda d: stored.set())
    writer.start()
    for seq in range(1, 51):
        writer.queue.put(inbound("replenish/v1/devices/printer-1/state", reading(seq=seq), seq))
    writer.queue.put(inbound("replenish/v1/devices/printer-1/state", b"junk", 99))
    writer.stop()
    assert sorted(acked) == [*range(1, 51), 99]  # rejects are acknowledged too
    assert all(seen for mid, seen in zip(acked, seen_in_db, strict=True) if mid != 99)
    assert stored.is_set()
    assert writer.stats.stored == 50 and writer.stats.rejected == 1


def test_status_flood_beside_a_calm_device_logs_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.db"
    caplog.set_level(logging.INFO, logger="agent.mqtt.ingest")
    done = threading.Event()
    writer = Writer(lambda: Store(path), IngestSettings(per_device_rate=10, per_device_burst=50),
                    lambda m: done.set() if m.mid == -1 else None)
    writer.start()
    flood = "replenish/v1/devices/flooder/status"
    for i in range(10_000):
        writer.queue.put(inbound(flood, {"state": "online"}, i))
        if i % 1_000 == 0:
            writer.queue.put(inbound("replenish/v1/devices/printer-1/state",
                                     reading(seq=i // 1_000 + 1), 100_000 + i))
    writer.queue.put(inbound("replenish/v1/devices/printer-1/state", b"junk", -1))
    assert done.wait(30)
    writer.stop()
    with Store(path) as s:
        assert s.seqs("printer-1") == list(range(1, 11))  # the calm device loses nothing
        counts = {(r.device_id, r.reason): r.count for r in s.reject_counts()}
    assert counts[("flooder", "rate_limited")] >= 9_900
    lines = [r.getMessage() for r in caplog.records if "ingest.reject" in r.getMessage()]
    assert len([x for x in lines if "device=flooder" in x]) <= 2  # first, then at stop
    assert len([x for x in lines if "device=printer-1" in x]) == 1


def test_replay_of_a_stored_seq_with_other_content_is_counted(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        first = check(inbound("replenish/v1/devices/printer-1/state", reading(seq=5)))
        body = reading(seq=5)
        body["consumables"][0]["level"] = 10  # type: ignore[index]
        changed = check(inbound("replenish/v1/devices/printer-1/state", body))
        s.write_batch([first], NOW)  # type: ignore[list-item]
        s.write_batch([first, changed], NOW)  # type: ignore[list-item]
        counts = {r.reason: r.count for r in s.reject_counts()}
        assert counts == {"replay_changed": 1}  # the plain redelivery is not counted
        assert s.readings(s.consumables()[0].cid)[0].level == 50
