"""A small IPP/2.0 wire codec (RFC 8010) for the one operation the agent needs.

Why not a library: the agent only ever sends Get-Printer-Attributes and reads a dozen
attributes back. The IPP clients on PyPI either pull in an async stack (pyipp needs
aiohttp and yarl; the agent is synchronous and its HTTP client is httpx already) or
are unmaintained Python 2 era code (pkipplib), and Home Assistant's pyipp-based
integration is known to miss printers that publish only ``printer-supply``. The
encoding is a plain tag-length-value format, so ~250 tested lines here keep the
runtime small and let us be strict about hostile or broken answers.

:func:`encode_get_printer_attributes` builds a request body; :func:`decode_response`
parses a response body and raises only :class:`~agent.errors.PayloadError` (reason
``bad_ipp``) on anything malformed, truncated or oversized.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TypeAlias

from agent.errors import PayloadError

GET_PRINTER_ATTRIBUTES = 0x000B
MAX_RESPONSE_BYTES = 1_048_576
MAX_COLLECTION_DEPTH = 8

# Delimiter tags (RFC 8010 3.5.1).
TAG_OPERATION = 0x01
TAG_JOB = 0x02
TAG_END = 0x03
TAG_PRINTER = 0x04
TAG_UNSUPPORTED_GROUP = 0x05

# Value tags (RFC 8010 3.5.2).
TAG_INTEGER = 0x21
TAG_BOOLEAN = 0x22
TAG_ENUM = 0x23
TAG_OCTET_STRING = 0x30
TAG_DATETIME = 0x31
TAG_RESOLUTION = 0x32
TAG_RANGE = 0x33
TAG_BEGIN_COLLECTION = 0x34
TAG_TEXT_LANG = 0x35
TAG_NAME_LANG = 0x36
TAG_END_COLLECTION = 0x37
TAG_TEXT = 0x41
TAG_NAME = 0x42
TAG_KEYWORD = 0x44
TAG_URI = 0x45
TAG_CHARSET = 0x47
TAG_LANGUAGE = 0x48
TAG_MIME = 0x49
TAG_MEMBER_NAME = 0x4A

_STRING_TAGS = frozenset(range(0x40, 0x50)) - {TAG_MEMBER_NAME}
_OUT_OF_BAND = frozenset(range(0x10, 0x20))

IppValue: TypeAlias = (
    "int | bool | str | bytes | tuple[int, ...] | dict[str, list[IppValue]] | None"
)


@dataclass(slots=True)
class IppAttribute:
    """One attribute: its name, the value tag of its first value, and all its values."""

    name: str
    tag: int
    values: list[IppValue] = field(default_factory=list)


@dataclass(slots=True)
class IppResponse:
    """A decoded IPP response: header plus attribute groups in wire order."""

    version: tuple[int, int]
    status_code: int
    request_id: int
    groups: list[tuple[int, dict[str, IppAttribute]]]

    @property
    def ok(self) -> bool:
        """successful-ok and its 0x00xx variants (ignored or substituted attributes...)."""
        return self.status_code < 0x0100

    def printer_attributes(self) -> dict[str, IppAttribute]:
        """All printer-attributes groups merged (a printer may split them)."""
        merged: dict[str, IppAttribute] = {}
        for tag, attrs in self.groups:
            if tag == TAG_PRINTER:
                merged.update(attrs)
        return merged


def _bad(detail: str) -> PayloadError:
    return PayloadError("bad_ipp", detail)


def _encode_attr(tag: int, name: str, values: list[str]) -> bytes:
    out = bytearray()
    for i, value in enumerate(values):
        raw_name = name.encode("ascii") if i == 0 else b""
        raw = value.encode("utf-8")
        out += struct.pack(">BH", tag, len(raw_name)) + raw_name
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def encode_get_printer_attributes(
    printer_uri: str,
    requested: list[str],
    *,
    request_id: int = 1,
    version: tuple[int, int] = (2, 0),
    user: str = "replenish-agent",
) -> bytes:
    """Build a Get-Printer-Attributes request body asking for ``requested``."""
    out = bytearray(struct.pack(">BBHI", version[0], version[1], GET_PRINTER_ATTRIBUTES,
                                request_id))
    out.append(TAG_OPERATION)
    # RFC 8011 4.1.4: charset and natural language come first, then the target.
    out += _encode_attr(TAG_CHARSET, "attributes-charset", ["utf-8"])
    out += _encode_attr(TAG_LANGUAGE, "attributes-natural-language", ["en"])
    out += _encode_attr(TAG_URI, "printer-uri", [printer_uri])
    out += _encode_attr(TAG_NAME, "requesting-user-name", [user])
    if requested:
        out += _encode_attr(TAG_KEYWORD, "requested-attributes", requested)
    out.append(TAG_END)
    return bytes(out)


class _Reader:
    """Bounds-checked cursor over the response body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _bad(f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _decode_value(tag: int, raw: bytes) -> IppValue:
    """Decode one value by its tag; unknown tags stay as bytes."""
    if tag in _OUT_OF_BAND:
        return None
    if tag in (TAG_INTEGER, TAG_ENUM):
        if len(raw) != 4:
            raise _bad("integer of wrong length")
        number: int = struct.unpack(">i", raw)[0]
        return number
    if tag == TAG_BOOLEAN:
        if len(raw) != 1:
            raise _bad("boolean of wrong length")
        return raw[0] != 0
    if tag == TAG_RANGE:
        if len(raw) != 8:
            raise _bad("range of wrong length")
        return tuple(struct.unpack(">ii", raw))
    if tag == TAG_RESOLUTION:
        if len(raw) != 9:
            raise _bad("resolution of wrong length")
        return tuple(struct.unpack(">iib", raw))
    if tag in (TAG_TEXT_LANG, TAG_NAME_LANG):
        inner = _Reader(raw)
        inner.take(inner.u16())
        text = inner.take(inner.u16())
        if not inner.at_end():
            raise _bad("trailing bytes in text with language")
        return _text(text)
    if tag in _STRING_TAGS:
        return _text(raw)
    return raw


def _read_item(r: _Reader) -> tuple[str, bytes]:
    """Name and raw value of one attribute item; the value tag is already read."""
    name = r.take(r.u16())
    value = r.take(r.u16())
    return name.decode("ascii", errors="replace"), value


def _read_collection(r: _Reader, depth: int) -> dict[str, list[IppValue]]:
    """Members up to the matching endCollection (RFC 8010 3.1.6)."""
    if depth > MAX_COLLECTION_DEPTH:
        raise _bad("collections nested too deep")
    members: dict[str, list[IppValue]] = {}
    current: list[IppValue] | None = None
    while True:
        tag = r.u8()
        _, raw = _read_item(r)
        if tag == TAG_END_COLLECTION:
            return members
        if tag == TAG_MEMBER_NAME:
            current = members.setdefault(_text(raw), [])
            continue
        if current is None:
            raise _bad("collection value without member name")
        if tag == TAG_BEGIN_COLLECTION:
            current.append(_read_collection(r, depth + 1))
        else:
            current.append(_decode_value(tag, raw))


def decode_response(data: bytes) -> IppResponse:
    """Parse an IPP response body; raises PayloadError("bad_ipp") on anything malformed."""
    if len(data) > MAX_RESPONSE_BYTES:
        raise _bad("response too large")
    r = _Reader(data)
    major, minor = r.u8(), r.u8()
    if major not in (1, 2):
        raise _bad("not an IPP response")
    status_code = r.u16()
    request_id: int = struct.unpack(">I", r.take(4))[0]
    groups: list[tuple[int, dict[str, IppAttribute]]] = []
    current: dict[str, IppAttribute] | None = None
    last: IppAttribute | None = None
    while True:
        tag = r.u8()
        if tag == TAG_END:
            break
        if tag < 0x10:
            if tag == 0x00:
                raise _bad("reserved delimiter tag")
            current = {}
            groups.append((tag, current))
            last = None
            continue
        if current is None:
            raise _bad("attribute outside a group")
        name, raw = _read_item(r)
        value = _read_collection(r, 1) if tag == TAG_BEGIN_COLLECTION else (
            _decode_value(tag, raw)
        )
        if name:
            last = IppAttribute(name, tag)
            current[name] = last
        elif last is None:
            raise _bad("additional value without attribute")
        last.values.append(value)
    return IppResponse((major, minor), status_code, request_id, groups)
