"""The IPP poller through its one seam, ``httpx.MockTransport``: statuses, backoff, seq, events."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import PrinterSettings
from agent.domain import DeviceKind
from agent.errors import ConfigError
from agent.sources.ipp.codec import TAG_END, TAG_INTEGER, TAG_NAME, TAG_PRINTER, decode_response
from agent.sources.ipp.source import IppPrinterSource, PollStatus
from agent.wire.device import EventType, StateMessage

FIXTURES = Path(__file__).parent / "fixtures" / "ipp"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IPP = {"Content-Type": "application/ipp"}
Handler = Callable[[httpx.Request], httpx.Response]


def ipp_body(levels: list[int], status: int = 0, names: list[str] | None = None) -> bytes:
    """A Get-Printer-Attributes answer with marker-names and marker-levels."""
    names = names or [f"Toner {i}" for i in range(len(levels))]
    body = struct.pack(">BBHI", 2, 0, status, 1) + bytes([TAG_PRINTER])
    for attr, tag, values in (
        ("marker-names", TAG_NAME, [n.encode() for n in names]),
        ("marker-levels", TAG_INTEGER, [struct.pack(">i", v) for v in levels]),
    ):
        for i, v in enumerate(values):
            name = attr.encode() if i == 0 else b""
            body += struct.pack(">BH", tag, len(name)) + name + struct.pack(">H", len(v)) + v
    return body + bytes([TAG_END])


def source(handler: Handler, *, name: str | None = "office", interval: int = 60,
           **kwargs: Any) -> IppPrinterSource:
    settings_ = PrinterSettings(uri="ipp://printer.lan/ipp/print", name=name,
                                poll_interval_s=interval)
    return IppPrinterSource(settings_, transport=httpx.MockTransport(handler), **kwargs)


def answers(*bodies: bytes | Exception | httpx.Response) -> Handler:
    """A handler giving one prepared answer per request, in order."""
    it: Iterator[bytes | Exception | httpx.Response] = iter(bodies)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(it)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, headers=IPP, content=answer)

    return handler


def test_request_is_a_get_printer_attributes_post_to_the_http_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=IPP, content=(FIXTURES / "ippeveprinter-markers.ipp")
                              .read_bytes())

    with source(handler) as src:
        assert src.poll(T0).status is PollStatus.OK
    req = seen[0]
    assert req.method == "POST"
    assert req.headers["accept-encoding"] == "identity"
    assert str(req.url) == "http://printer.lan:631/ipp/print"
    assert req.headers["content-type"] == "application/ipp"
    ops = decode_response(req.content).groups[0][1]
    assert ops["printer-uri"].values == ["ipp://printer.lan/ipp/print"]
    asked = ops["requested-attributes"].values
    assert {"marker-levels", "printer-supply", "printer-state-reasons",
            "printer-impressions-completed"} <= set(asked)


def test_ok_poll_gives_a_printer_state_message() -> None:
    with source(answers((FIXTURES / "ippeveprinter-markers.ipp").read_bytes())) as src:
        result = src.poll(T0)
    assert result.status is PollStatus.OK and result.next_poll_in_s == 60
    state = result.state
    assert isinstance(state, StateMessage)
    assert state.device_id == "office" and state.kind is DeviceKind.PRINTER
    assert state.ts == T0 and state.seq == int(T0.timestamp() * 1000)
    assert [c.id for c in state.consumables] == ["black-toner", "cyan-toner", "imaging-drum"]
    assert result.events == []


def test_device_id_defaults_to_a_slug_of_the_uri() -> None:
    with source(answers(ipp_body([50])), name=None) as src:
        assert src.device_id == "printer-lan-631-ipp-print"
        state = src.poll(T0).state
        assert state is not None and state.device_id == "printer-lan-631-ipp-print"


def test_seq_stays_monotonic_when_the_clock_steps_back() -> None:
    with source(answers(ipp_body([50]), ipp_body([49]), ipp_body([48]))) as src:
        seqs = []
        for now in (T0, T0 - timedelta(hours=1), T0 + timedelta(minutes=1)):
            state = src.poll(now).state
            assert state is not None
            seqs.append(state.seq)
    assert seqs[0] < seqs[1] < seqs[2]
    assert seqs[2] == int((T0 + timedelta(minutes=1)).timestamp() * 1000)


def test_upward_jump_is_a_cartridge_change_but_wobble_is_not() -> None:
    bodies = [ipp_body([30, 60]), ipp_body([25, 70]), ipp_body([95, 69]), ipp_body([94, 68])]
    with source(answers(*bodies)) as src:
        results = [src.poll(T0 + timedelta(minutes=i)) for i in range(4)]
    assert [len(r.events) for r in results] == [0, 0, 1, 0]
    event = results[2].events[0]
    assert event.type is EventType.CARTRIDGE_REPLACED
    assert event.consumable_id == "toner-0" and event.device_id == "office"
    state = results[2].state
    assert state is not None and event.seq > state.seq and event.ts == state.ts


def test_unknown_levels_in_between_do_not_hide_a_change() -> None:
    with source(answers(ipp_body([10, 50]), ipp_body([-2, 50]), ipp_body([100, 50]))) as src:
        results = [src.poll(T0 + timedelta(minutes=i)) for i in range(3)]
    assert [e.consumable_id for e in results[2].events] == ["toner-0"]


def test_asleep_printer_gives_no_reading_and_backs_off_until_it_wakes() -> None:
    bodies = [ipp_body([-2, -2])] * 8 + [ipp_body([40, 50])]
    with source(answers(*bodies), interval=60, max_backoff_s=900) as src:
        results = [src.poll(T0 + timedelta(minutes=i)) for i in range(9)]
    assert all(r.status is PollStatus.ASLEEP and r.state is None for r in results[:8])
    assert [r.next_poll_in_s for r in results[:8]] == [120, 240, 480, 900, 900, 900, 900, 900]
    assert results[8].status is PollStatus.OK and results[8].next_poll_in_s == 60


@pytest.mark.parametrize(
    ("answer", "status", "detail"),
    [
        (httpx.Response(200, headers=IPP, content=b"\x00garbage"), PollStatus.BAD_RESPONSE,
         "not an IPP response"),
        (httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>"),
         PollStatus.BAD_RESPONSE, "not an IPP content type"),
        (httpx.Response(404, headers=IPP), PollStatus.BAD_RESPONSE, "HTTP 404"),
        (httpx.Response(426), PollStatus.BAD_RESPONSE, "HTTP 426: use an ipps:// URI"),
        (httpx.RemoteProtocolError("junk"), PollStatus.BAD_RESPONSE, "RemoteProtocolError"),
        (httpx.Response(200, headers=IPP, content=ipp_body([], status=0x0406)),
         PollStatus.IPP_ERROR, "IPP status 0x0406"),
        (httpx.Response(200, headers=IPP, content=b"\x02\x00" + bytes(6) + b"\x03"),
         PollStatus.NO_SUPPLIES, "no markers or supplies published"),
        (httpx.Response(200, headers=IPP, content=b"\x02\x00" + bytes(6) + b"\x04"
                        + b"\x30\x00\x01x\xff\xff" + bytes(65535) + b"\x03" * 1_000_000),
         PollStatus.BAD_RESPONSE, "response too large"),
        (httpx.ConnectError("refused"), PollStatus.UNREACHABLE, "ConnectError"),
        (httpx.ReadTimeout("slow"), PollStatus.UNREACHABLE, "timed out"),
        (httpx.Response(200, headers={**IPP, "Content-Encoding": "gzip"}, content=b"\x1f\x8b"),
         PollStatus.BAD_RESPONSE, "compressed response"),
    ],
)
def test_failures_give_a_status_no_reading_and_a_backoff(
    answer: httpx.Response | Exception, status: PollStatus, detail: str
) -> None:
    with source(answers(answer, answer), interval=30) as src:
        first, second = src.poll(T0), src.poll(T0 + timedelta(minutes=1))
    assert (first.status, first.detail, first.state, first.events) == (status, detail, None, [])
    assert (first.next_poll_in_s, second.next_poll_in_s) == (60, 120)


def test_old_printer_is_asked_again_in_ipp_1_1() -> None:
    versions: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        versions.append((request.content[0], request.content[1]))
        ok = request.content[0] == 1
        return httpx.Response(200, headers=IPP,
                              content=ipp_body([70], status=0 if ok else 0x0503))

    with source(handler) as src:
        assert src.poll(T0).status is PollStatus.OK
        assert src.poll(T0 + timedelta(minutes=1)).status is PollStatus.OK
    assert versions == [(2, 0), (1, 1), (1, 1)]


def test_a_printer_dripping_bytes_hits_the_overall_deadline() -> None:
    ticks = iter(range(0, 10_000, 3))

    def drip() -> Iterator[bytes]:
        for byte in ipp_body([50]):
            yield bytes([byte])

    handler = answers(httpx.Response(200, headers=IPP, content=drip()))
    with source(handler, timeout_s=5.0, clock=lambda: float(next(ticks))) as src:
        result = src.poll(T0)
    assert (result.status, result.detail) == (PollStatus.UNREACHABLE, "response too slow")


def test_one_log_line_per_status_change(caplog: pytest.LogCaptureFixture) -> None:
    err = httpx.ConnectError("refused")
    bodies = [err, err, err, ipp_body([50]), ipp_body([49]), ipp_body([-2])]
    caplog.set_level(logging.INFO, logger="agent.sources.ipp.source")
    with source(answers(*bodies)) as src:
        for i in range(len(bodies)):
            src.poll(T0 + timedelta(minutes=i))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "printer office: unreachable (ConnectError)",
        "printer office: ok (1 supplies)",
        "printer office: asleep (all supply levels unknown)",
    ]
    assert "printer.lan" not in caplog.text  # the URI may carry credentials


def test_naive_now_is_a_programming_error() -> None:
    with source(answers(ipp_body([50]))) as src, pytest.raises(ValueError):
        src.poll(datetime(2026, 3, 1, 12, 0))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_poll_never_raises_on_arbitrary_answers(body: bytes) -> None:
    with source(answers(body)) as src:
        result = src.poll(T0)
    assert result.status in set(PollStatus)
    assert (result.state is None) == (result.status is not PollStatus.OK)


@pytest.mark.parametrize("uri", ["ipp:///ipp/print", "ipp://printer:99999/ipp/print",
                                 "ipp://user:secret@:631/x", "ipp://[::1/secret"])
def test_unusable_uri_is_a_config_error_without_the_uri(uri: str) -> None:
    with pytest.raises(ConfigError) as err:
        IppPrinterSource(PrinterSettings(uri=uri))
    assert err.value.key == "uri" and "secret" not in str(err.value)
