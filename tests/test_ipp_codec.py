"""The IPP wire codec: request layout, response decoding, and refusal of broken input."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PayloadError
from agent.sources.ipp import codec as c

FIXTURES = Path(__file__).parent / "fixtures" / "ipp"


def attr(tag: int, name: str, *values: bytes) -> bytes:
    """Wire bytes of one attribute with its additional values (name length 0)."""
    out = b""
    for i, value in enumerate(values):
        raw_name = name.encode() if i == 0 else b""
        out += struct.pack(">BH", tag, len(raw_name)) + raw_name
        out += struct.pack(">H", len(value)) + value
    return out


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def response(*groups: tuple[int, bytes], status: int = 0, request_id: int = 7) -> bytes:
    body = struct.pack(">BBHI", 2, 0, status, request_id)
    for tag, content in groups:
        body += bytes([tag]) + content
    return body + bytes([c.TAG_END])


OP_GROUP = (c.TAG_OPERATION, attr(c.TAG_CHARSET, "attributes-charset", b"utf-8"))


def test_request_header_and_operation_attributes_in_rfc_order() -> None:
    body = c.encode_get_printer_attributes(
        "ipp://printer.local:631/ipp/print", ["marker-levels", "printer-supply"], request_id=42
    )
    assert body[:8] == bytes([2, 0, 0x00, 0x0B, 0, 0, 0, 42])
    assert body[8] == c.TAG_OPERATION
    assert body[-1] == c.TAG_END
    # Request and response share the header layout, so the decoder reads requests too.
    decoded = c.decode_response(body)
    assert decoded.status_code == c.GET_PRINTER_ATTRIBUTES
    assert decoded.request_id == 42
    ops = decoded.groups[0][1]
    assert list(ops) == [
        "attributes-charset",
        "attributes-natural-language",
        "printer-uri",
        "requesting-user-name",
        "requested-attributes",
    ]
    assert ops["printer-uri"].values == ["ipp://printer.local:631/ipp/print"]
    assert ops["printer-uri"].tag == c.TAG_URI
    assert ops["requested-attributes"].values == ["marker-levels", "printer-supply"]
    assert ops["requested-attributes"].tag == c.TAG_KEYWORD


def test_request_version_can_be_lowered_for_old_printers() -> None:
    body = c.encode_get_printer_attributes("ipp://p/ipp/print", [], version=(1, 1))
    assert body[:2] == bytes([1, 1])
    assert "requested-attributes" not in c.decode_response(body).groups[0][1]


def test_decodes_value_types_and_additional_values() -> None:
    printer = b"".join([
        attr(c.TAG_NAME, "marker-names", b"Black", b"Cyan"),
        attr(c.TAG_INTEGER, "marker-levels", i32(80), i32(-3)),
        attr(c.TAG_ENUM, "printer-state", i32(3)),
        attr(c.TAG_BOOLEAN, "color-supported", b"\x01"),
        attr(c.TAG_RANGE, "copies-supported", i32(1) + i32(99)),
        attr(c.TAG_RESOLUTION, "printer-resolution-default", i32(600) + i32(600) + b"\x03"),
        attr(c.TAG_OCTET_STRING, "printer-supply", b"index=1;level=5;"),
        attr(c.TAG_TEXT_LANG, "printer-info", b"\x00\x02de\x00\x05Hallo"),
        attr(0x13, "printer-alert", b""),  # no-value: out of band
        attr(0x7E, "vendor-thing", b"\xff\x00"),  # unassigned tag: kept as bytes
    ])  # fmt: skip
    resp = c.decode_response(response(OP_GROUP, (c.TAG_PRINTER, printer)))
    assert resp.ok and resp.version == (2, 0) and resp.request_id == 7
    attrs = resp.printer_attributes()
    assert attrs["marker-names"].values == ["Black", "Cyan"]
    assert attrs["marker-levels"].values == [80, -3]
    assert attrs["printer-state"].values == [3]
    assert attrs["color-supported"].values == [True]
    assert attrs["copies-supported"].values == [(1, 99)]
    assert attrs["printer-resolution-default"].values == [(600, 600, 3)]
    assert attrs["printer-supply"].values == [b"index=1;level=5;"]
    assert attrs["printer-info"].values == ["Hallo"]
    assert attrs["printer-alert"].values == [None]
    assert attrs["vendor-thing"].values == [b"\xff\x00"]


def test_decodes_nested_collections() -> None:
    member = lambda name: attr(c.TAG_MEMBER_NAME, "", name.encode())  # noqa: E731
    media = b"".join([
        attr(c.TAG_BEGIN_COLLECTION, "media-col-ready", b""),
        member("media-size"), attr(c.TAG_BEGIN_COLLECTION, "", b""),
        member("x-dimension"), attr(c.TAG_INTEGER, "", i32(21000)),
        member("y-dimension"), attr(c.TAG_INTEGER, "", i32(29700)),
        attr(c.TAG_END_COLLECTION, "", b""),
        member("media-type"), attr(c.TAG_KEYWORD, "", b"stationery"),
        attr(c.TAG_END_COLLECTION, "", b""),
        attr(c.TAG_INTEGER, "marker-levels", i32(1)),
    ])  # fmt: skip
    attrs = c.decode_response(response((c.TAG_PRINTER, media))).printer_attributes()
    assert attrs["media-col-ready"].values == [
        {"media-size": [{"x-dimension": [21000], "y-dimension": [29700]}],
         "media-type": ["stationery"]}
    ]
    assert attrs["marker-levels"].values == [1]


def test_printer_groups_are_merged_and_other_groups_ignored() -> None:
    resp = c.decode_response(response(
        (c.TAG_PRINTER, attr(c.TAG_INTEGER, "marker-levels", i32(10))),
        (c.TAG_UNSUPPORTED_GROUP, attr(c.TAG_KEYWORD, "printer-supply", b"x")),
        (c.TAG_PRINTER, attr(c.TAG_KEYWORD, "printer-state-reasons", b"none")),
    ))  # fmt: skip
    assert set(resp.printer_attributes()) == {"marker-levels", "printer-state-reasons"}


def test_error_status_is_decoded_not_raised() -> None:
    resp = c.decode_response(response(OP_GROUP, status=0x0406))
    assert not resp.ok and resp.status_code == 0x0406
    assert c.decode_response(response(status=0x0001)).ok  # ignored-or-substituted


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"HTTP/1.1 200 OK\r\n\r\n<html>", "not IPP"),
        (b"\x09\x00" + bytes(6) + b"\x03", "unknown major version"),
        (struct.pack(">BBHI", 2, 0, 0, 1) + attr(c.TAG_INTEGER, "x", i32(1)) + b"\x03",
         "attribute before any group"),
        (struct.pack(">BBHI", 2, 0, 0, 1) + b"\x04" + attr(c.TAG_INTEGER, "", i32(1)) + b"\x03",
         "additional value with no attribute"),
        (response((c.TAG_PRINTER, attr(c.TAG_INTEGER, "x", b"\x00\x01"))), "short integer"),
        (response((c.TAG_PRINTER, attr(c.TAG_BOOLEAN, "x", b"\x00\x01"))), "long boolean"),
        (response((c.TAG_PRINTER, attr(c.TAG_RANGE, "x", i32(1)))), "short range"),
        (response((c.TAG_PRINTER, attr(c.TAG_TEXT_LANG, "x", b"\x00\x09en"))), "bad text-lang"),
        (response((0x00, b"")), "reserved delimiter"),
        (response((c.TAG_PRINTER, attr(c.TAG_BEGIN_COLLECTION, "x", b"")
                   + attr(c.TAG_INTEGER, "", i32(1)))), "collection value without member"),
    ],
)
def test_malformed_input_is_a_payload_error(data: bytes, why: str) -> None:
    with pytest.raises(PayloadError) as err:
        c.decode_response(data)
    assert err.value.reason == "bad_ipp", why


def test_collections_nested_too_deep_are_refused() -> None:
    opening = attr(c.TAG_BEGIN_COLLECTION, "col", b"")
    inner = attr(c.TAG_MEMBER_NAME, "", b"m") + attr(c.TAG_BEGIN_COLLECTION, "", b"")
    deep = opening + inner * (c.MAX_COLLECTION_DEPTH + 1)
    with pytest.raises(PayloadError, match="deep"):
        c.decode_response(response((c.TAG_PRINTER, deep)))


def test_oversized_response_is_refused() -> None:
    big = response((c.TAG_PRINTER, attr(c.TAG_OCTET_STRING, "x", bytes(60_000)) * 20))
    assert len(big) > c.MAX_RESPONSE_BYTES
    with pytest.raises(PayloadError, match="too large"):
        c.decode_response(big)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.ipp")))
def test_every_truncation_of_a_recorded_response_is_refused(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert c.decode_response(data).ok
    for cut in range(len(data)):
        with pytest.raises(PayloadError):
            c.decode_response(data[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_raise_payload_error(data: bytes) -> None:
    try:
        c.decode_response(data)
    except PayloadError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 2000))
def test_corrupted_recorded_response_decodes_or_raises_payload_error(
    junk: bytes, where: int
) -> None:
    data = (FIXTURES / "ippeveprinter-markers.ipp").read_bytes()
    where %= len(data)
    try:
        c.decode_response(data[:where] + junk + data[where + len(junk):])
    except PayloadError:
        pass
