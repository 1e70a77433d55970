"""Supply levels from network printers over IPP, as the same readings MQTT devices send.

:class:`IppPrinterSource` polls one configured printer with Get-Printer-Attributes (wire
format in :mod:`agent.sources.ipp.codec`, mapping in :mod:`agent.sources.ipp.mapping`)
and returns a :class:`PollResult`: a :class:`~agent.wire.device.StateMessage` plus
cartridge-change events when the printer gave usable levels, otherwise a clear status
and no reading, with an exponentially backed-off next poll (reset on success).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import ValidationError

from agent.config import PrinterSettings
from agent.domain import DeviceKind
from agent.errors import ConfigError, PayloadError
from agent.sources.ipp.codec import (
    MAX_RESPONSE_BYTES,
    IppAttribute,
    IppResponse,
    decode_response,
    encode_get_printer_attributes,
)
from agent.sources.ipp.mapping import PrinterReading, map_printer, slugify
from agent.wire.device import EventMessage, EventType, StateMessage

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

REQUESTED_ATTRIBUTES = [
    "marker-names",
    "marker-types",
    "marker-levels",
    "marker-low-levels",
    "marker-high-levels",
    "printer-supply",
    "printer-supply-description",
    "printer-state-reasons",
    "printer-impressions-completed",
    "printer-pages-completed",
    "printer-media-sheets-completed",
    "printer-firmware-string-version",
    "printer-make-and-model",
]
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BACKOFF_S = 3_600.0
# A rise of this many percentage points between polls is a new cartridge, not noise:
# printers that report 10 % steps can wobble by one step when they re-estimate.
REPLACEMENT_JUMP = 20.0
_VERSION_NOT_SUPPORTED = 0x0503
_HEADERS = {"Content-Type": "application/ipp", "Accept-Encoding": "identity"}
class PollStatus(StrEnum):
    """Outcome of one poll; only OK carries a reading."""

    OK = "ok"
    ASLEEP = "asleep"  # answered, but every supply level is unknown
    UNREACHABLE = "unreachable"  # connection refused, DNS, timeout
    BAD_RESPONSE = "bad_response"  # not HTTP 200, broken HTTP, or not a decodable IPP answer
    IPP_ERROR = "ipp_error"  # a valid IPP answer with an error status
    NO_SUPPLIES = "no_supplies"  # answered, but publishes neither markers nor supplies


@dataclass(slots=True, frozen=True)
class PollResult:
    """What one poll produced and when to poll next."""

    status: PollStatus
    detail: str
    next_poll_in_s: float
    state: StateMessage | None = None
    events: list[EventMessage] = field(default_factory=list)
    make_and_model: str | None = None


class _PollFailure(Exception):
    def __init__(self, status: PollStatus, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


def http_url(uri: str) -> str:
    """The HTTP URL an ``ipp://``/``ipps://`` URI is POSTed to (RFC 3510: port 631).

    Raises ConfigError for a URI without a host or with a bad port; the message leaves
    the URI out, since it may carry credentials.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigError("printers", "uri", "not a valid URI") from None
    if parts.scheme not in ("ipp", "ipps") or not parts.hostname:
        raise ConfigError("printers", "uri", "expected ipp://HOST[:PORT]/PATH")
    try:
        port = parts.port or 631
    except ValueError:
        raise ConfigError("printers", "uri", "invalid port") from None
    scheme = "https" if parts.scheme == "ipps" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path or "/ipp/print"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}:{port}{path}{query}"


def default_device_id(uri: str) -> str:
    """A stable device id from the URI's host, port and path, e.g. ``hp-local-631-ipp-print``."""
    try:
        parts = urlsplit(uri)
        port = parts.port or 631
    except ValueError:  # http_url reports it; an id is still useful for messages
        return slugify(uri.partition("://")[2]) or "printer"
    return slugify(f"{parts.hostname or 'printer'}-{port}-{parts.path}") or "printer"


class IppPrinterSource:
    """Polls one printer; the caller schedules :meth:`poll` after ``next_poll_in_s``.

    One instance per printer, polled from one thread at a time. ``transport`` is the test
    seam (``httpx.MockTransport``). ``timeout_s`` bounds each network step and twice it
    the whole request; ``clock`` is the monotonic clock for that deadline.
    """

    def __init__(
        self,
        settings: PrinterSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import httpx
        self.settings = settings
        self._url = http_url(settings.uri)
        self.device_id = settings.name or default_device_id(settings.uri)
        self._timeout_s = timeout_s
        self._max_backoff_s = max(max_backoff_s, float(settings.poll_interval_s))
        self._clock = clock
        # ipps:// printers carry self-signed certificates; the link is encrypted but the
        # printer is trusted no more than over ipp://. The environment's proxies are for
        # the internet, not for a printer on the LAN.
        self._client = httpx.Client(
            transport=transport, timeout=timeout_s, verify=False, trust_env=False,
            follow_redirects=False,
        )
        self._version = (2, 0)
        self._request_id = 0
        self._seq = 0
        self._failures = 0
        self._levels: dict[str, float] = {}
        self._last_status: PollStatus | None = None

    def __enter__(self) -> IppPrinterSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def poll(self, now: datetime) -> PollResult:
        """Read the printer once. Never raises for network or protocol trouble."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            reading = self._map(self._fetch())
            if not reading.consumables:
                raise _PollFailure(PollStatus.NO_SUPPLIES, "no markers or supplies published")
            if reading.asleep:
                raise _PollFailure(PollStatus.ASLEEP, "all supply levels unknown")
            state, events = self._stamp(reading, now)
        except _PollFailure as fail:
            self._failures += 1
            self._note(fail.status, fail.detail)
            return PollResult(fail.status, fail.detail, self._backoff())
        self._failures = 0
        detail = f"{len(state.consumables)} supplies"
        self._note(PollStatus.OK, detail)
        return PollResult(PollStatus.OK, detail, float(self.settings.poll_interval_s),
                          state, events, reading.make_and_model)

    def _backoff(self) -> float:
        interval = float(self.settings.poll_interval_s)
        return min(interval * 2.0 ** min(self._failures, 30), self._max_backoff_s)

    def _note(self, status: PollStatus, detail: str) -> None:
        if status == self._last_status:
            return
        self._last_status = status
        level = logging.INFO if status in (PollStatus.OK, PollStatus.ASLEEP) else logging.WARNING
        log.log(level, "printer %s: %s (%s)", self.device_id, status.value, detail)

    def _next_seq(self, now: datetime) -> int:
        # Poll time in ms survives restarts; max() keeps it monotonic if the clock steps back.
        self._seq = max(int(now.timestamp() * 1000), self._seq + 1)
        return self._seq

    @staticmethod
    def _map(attrs: dict[str, IppAttribute]) -> PrinterReading:
        try:
            return map_printer(attrs)
        except ValidationError as err:
            raise _PollFailure(PollStatus.BAD_RESPONSE, "implausible values") from err

    def _stamp(
        self, reading: PrinterReading, now: datetime
    ) -> tuple[StateMessage, list[EventMessage]]:
        try:
            state = StateMessage(
                device_id=self.device_id, seq=self._next_seq(now), ts=now,
                kind=DeviceKind.PRINTER, consumables=reading.consumables, fw=reading.fw,
            )
            events = []
            for c in reading.consumables:
                before = self._levels.get(c.id)
                if c.level is None:
                    continue
                if before is not None and c.level - before >= REPLACEMENT_JUMP:
                    events.append(EventMessage(
                        device_id=self.device_id, seq=self._next_seq(now), ts=now,
                        type=EventType.CARTRIDGE_REPLACED, consumable_id=c.id,
                    ))
                self._levels[c.id] = c.level
        except ValidationError as err:
            raise _PollFailure(PollStatus.BAD_RESPONSE, "implausible values") from err
        return state, events

    def _fetch(self) -> dict[str, IppAttribute]:
        response = self._request()
        if response.status_code == _VERSION_NOT_SUPPORTED and self._version != (1, 1):
            # Older printers speak only IPP/1.1; remember it for later polls.
            self._version = (1, 1)
            response = self._request()
        if not response.ok:
            raise _PollFailure(PollStatus.IPP_ERROR, f"IPP status 0x{response.status_code:04x}")
        return response.printer_attributes()

    def _request(self) -> IppResponse:
        import httpx
        self._request_id = self._request_id % 0x7FFFFFFF + 1
        body = encode_get_printer_attributes(
            self.settings.uri, REQUESTED_ATTRIBUTES, request_id=self._request_id,
            version=self._version,
        )
        deadline = self._clock() + 2 * self._timeout_s
        try:
            with self._client.stream("POST", self._url, content=body, headers=_HEADERS) as resp:
                if resp.status_code == 426:
                    raise _PollFailure(PollStatus.BAD_RESPONSE, "HTTP 426: use an ipps:// URI")
                if resp.status_code != 200:
                    raise _PollFailure(PollStatus.BAD_RESPONSE, f"HTTP {resp.status_code}")
                ctype = resp.headers.get("content-type", "")
                if not ctype.lower().startswith("application/ipp"):
                    raise _PollFailure(PollStatus.BAD_RESPONSE, "not an IPP content type")
                if resp.headers.get("content-encoding", "identity").lower() != "identity":
                    # Inflating is where a small answer becomes a huge one; printers never
                    # need it, and we asked for identity.
                    raise _PollFailure(PollStatus.BAD_RESPONSE, "compressed response")
                data = bytearray()
                # A per-read timeout does not bound a printer that drips bytes.
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise _PollFailure(PollStatus.BAD_RESPONSE, "response too large")
                    if self._clock() > deadline:
                        raise _PollFailure(PollStatus.UNREACHABLE, "response too slow")
        except httpx.ProtocolError as err:
            # Something answered, but not with HTTP we can parse.
            raise _PollFailure(PollStatus.BAD_RESPONSE, type(err).__name__) from err
        except httpx.TimeoutException as err:
            raise _PollFailure(PollStatus.UNREACHABLE, "timed out") from err
        except httpx.TransportError as err:
            # The exception class names the failure; its text may carry the URL.
            raise _PollFailure(PollStatus.UNREACHABLE, type(err).__name__) from err
        except httpx.HTTPError as err:
            raise _PollFailure(PollStatus.BAD_RESPONSE, type(err).__name__) from err
        try:
            return decode_response(bytes(data))
        except PayloadError as err:
            raise _PollFailure(PollStatus.BAD_RESPONSE, err.detail) from err
