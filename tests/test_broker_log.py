"""Broker notices (mosquitto 2.0.11's wording, as published with ``log_dest topic``)
become too_large rejects of the username the client connected as."""

from __future__ import annotations

from agent.mqtt.broker_log import MAX_CLIENTS, REASON, BrokerLog
from agent.storage.rows import UNKNOWN_DEVICE

CONNECT = (b"2026-12-02T01:46:39: New client connected from 127.0.0.1:49447 as pcid "
           b"(p5, c1, k60, u'printer-1').")
OVERSIZE = b"2026-12-02T01:46:39: Client pcid disconnected due to oversize packet."


def test_an_oversize_disconnect_counts_for_the_username_not_the_client_id() -> None:
    log = BrokerLog()
    assert log.read(b"2026-12-02T01:46:39: New connection from 127.0.0.1:1 on port 1883.") is None
    assert log.read(CONNECT) is None
    rejected = log.read(OVERSIZE)
    assert rejected is not None
    assert (rejected.device_id, rejected.reason) == ("printer-1", REASON)
    assert log.oversize == 1 and log.unattributed == 0


def test_a_client_id_with_spaces_and_a_takeover() -> None:
    log = BrokerLog()
    log.read(b"t: New client connected from ::1:5 as my client (p2, c0, k30, u'fridge-1').")
    log.read(b"t: New client connected from ::1:6 as my client (p2, c0, k30, u'printer-1').")
    rejected = log.read(b"t: Client my client disconnected due to oversize packet.")
    assert rejected is not None and rejected.device_id == "printer-1"


def test_unknown_clients_are_counted_unattributed() -> None:
    log = BrokerLog()
    log.read(b"t: New client connected from 1.2.3.4:5 as anon (p2, c1, k60).")  # no user
    rejected = log.read(b"t: Client anon disconnected due to oversize packet.")
    assert rejected is not None and rejected.device_id == UNKNOWN_DEVICE
    assert log.unattributed == 1
    assert log.read(b"t: Client x disconnected due to protocol error.") is None


def test_the_client_map_is_bounded() -> None:
    log = BrokerLog()
    for i in range(MAX_CLIENTS + 50):
        log.read(f"t: New client connected from h:1 as c{i} (p5, c1, k60, u'd{i}').".encode())
    assert len(log._users) == MAX_CLIENTS
    rejected = log.read(b"t: Client c0 disconnected due to oversize packet.")
    assert rejected is not None and rejected.device_id == UNKNOWN_DEVICE
