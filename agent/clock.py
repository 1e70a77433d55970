"""Wall-clock time for CLI commands, with one override for simulations.

The service takes ``now`` from an injected clock. Household commands run as separate
processes, so a simulation (``make demo``, a vendor's test rig running the agent on a
compressed clock) sets ``REPLENISH_NOW`` to the simulated instant, making approvals,
cancellations and away periods line up with the agent's simulated time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError

NOW_ENV = "REPLENISH_NOW"

log = logging.getLogger(__name__)


def cli_now(env: Mapping[str, str] | None = None) -> datetime:
    """The current instant, or ``$REPLENISH_NOW`` (ISO 8601 with a zone) when set."""
    env = os.environ if env is None else env
    raw = env.get(NOW_ENV)
    if not raw:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"environment {NOW_ENV}", NOW_ENV, "not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ConfigError(f"environment {NOW_ENV}", NOW_ENV, "needs a time zone")
    return value


def household_zone(name: str | None, env: Mapping[str, str] | None = None) -> tzinfo:
    """The household's time zone: the configured IANA name, else the gateway's local zone.

    Dates the household types (``--expires 2027-06-30``, away days) and times shown to it
    are in this zone. The gateway's zone comes from ``$TZ`` or ``/etc/localtime`` as a
    named zone, so a date next summer gets next summer's offset (``astimezone()`` would
    freeze today's).
    """
    env = os.environ if env is None else env
    candidates = [name] if name else [env.get("TZ", "").lstrip(":"), _localtime_key()]
    for key in candidates:
        if not key:
            continue
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            if name:
                raise ConfigError("settings", "time_zone", f"unknown time zone {name!r}") from None
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC


def _localtime_key() -> str:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    _, sep, key = target.partition("zoneinfo/")
    return key if sep else ""


# ---- simulated time for the real agent (``replenish run --clock``) --------------------

SIM_OPT_IN_ENV = "REPLENISH_ALLOW_SIMULATED_CLOCK"
SIM_MARKER = "simulated-clock"  # in the state directory while a simulated agent runs


def simulated_clock_refusal(env: Mapping[str, str] | None = None) -> str | None:
    """Why ``--clock`` is refused here, or None when it may be used.

    A simulated clock makes the agent order at times that are not now, so it takes an
    explicit opt-in, and it is never allowed under systemd's notify protocol: the
    installed unit is ``Type=notify`` (systemd sets ``$NOTIFY_SOCKET``) and also unsets
    the opt-in variable, so a drop-in that adds ``--clock`` to ``ExecStart`` still fails.
    """
    env = os.environ if env is None else env
    if env.get("NOTIFY_SOCKET"):
        return "refused under systemd (NOTIFY_SOCKET is set): never in the installed unit"
    if env.get(SIM_OPT_IN_ENV) != "1":
        return f"refused: set {SIM_OPT_IN_ENV}=1 to run the agent on simulated time"
    return None


def parse_instant(raw: str, where: str) -> datetime:
    """An ISO 8601 instant with a zone (a trailing ``Z`` allowed), or ValueError."""
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{where}: {raw.strip()[:40]!r} has no time zone")
    return value.astimezone(UTC)


class SimulatedClock:
    """"Now" read from a clock file or the vendor sandbox's ``/_sandbox/clock``.

    The value is cached and only moves when :meth:`refresh` reads a later time, so every
    read inside one pass sees the same instant (as in the in-process demo) and a clock
    source that steps back is ignored (counted, never obeyed: deliveries and decisions
    cannot be undone). ``read`` returns the source's current instant; the agent's
    simulated-time runner calls :meth:`refresh` a few times a second.
    """

    def __init__(self, source: str, read: Callable[[], datetime]) -> None:
        self.source = source
        self._read = read
        self._lock = threading.Lock()
        self._now = read()
        self.backwards = 0
        self.failures = 0
        # A source that says how many device messages were published by an instant.
        self.announcer: UrlClock | None = None

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        """Epoch seconds of :meth:`now` (for ``received_at`` stamps)."""
        return self.now().timestamp()

    def refresh(self) -> datetime | None:
        """Read the source; the new instant when it moved forward, else None."""
        try:
            value = self._read()
        except (OSError, ValueError) as err:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("clock.simulated_unreadable source=%s reason=%s count=%d",
                            self.source, str(err)[:120] or type(err).__name__, self.failures)
            return None
        with self._lock:
            if value < self._now:
                self.backwards += 1
                if self.backwards == 1 or self.backwards % 100 == 0:
                    log.warning("clock.simulated_backwards source=%s now=%s read=%s count=%d",
                                self.source, self._now.isoformat(), value.isoformat(),
                                self.backwards)
                return None
            if value == self._now:
                return None
            self._now = value
            return value


def file_reader(path: Path) -> Callable[[], datetime]:
    """A clock file holds one ISO 8601 instant; a test rewrites it to move time."""

    def read() -> datetime:
        return parse_instant(path.read_text(encoding="utf-8"), str(path))

    return read


class UrlClock:
    """``GET URL`` answering ``{"now": ISO 8601}`` (the sandbox's ``/_sandbox/clock``).

    A rig in lockstep may add ``"published": {"at": ISO 8601, "count": N}``: its devices
    had published N messages in all once the clock stood at ``at``. The agent's runner
    then waits until ingest has committed that many (a positive marker) instead of
    waiting for a quiet moment; a source that never says so keeps the quiet wait.
    """

    def __init__(self, url: str, token: str | None, timeout_s: float = 5.0) -> None:
        import httpx  # only a simulated agent needs it here

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self._error = httpx.HTTPError
        self.url = url
        self.published: tuple[datetime, int] | None = None
        self.announces = False  # the source has said what it published at least once

    def read(self) -> datetime:
        try:
            answer = self._client.get(self.url)
        except self._error as err:
            raise OSError(f"clock URL unreachable: {type(err).__name__}") from None
        if answer.status_code != 200:
            raise OSError(f"clock URL answered HTTP {answer.status_code}")
        try:
            body = answer.json()
        except ValueError:
            raise ValueError("clock URL: not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("now"), str):
            raise ValueError('clock URL: no "now" in the answer')
        published = body.get("published")
        if isinstance(published, dict) and isinstance(published.get("count"), int):
            at = parse_instant(str(published.get("at")), "clock URL published.at")
            self.published, self.announces = (at, published["count"]), True
        return parse_instant(body["now"], "clock URL")

    def announced(self, at: datetime) -> int | None:
        """The source's message count for instant ``at`` (re-read until it says), or None."""
        if self.published is None or self.published[0] != at:
            try:
                self.read()
            except (OSError, ValueError):
                return None
        return self.published[1] if self.published and self.published[0] == at else None


def url_reader(url: str, token: str | None, timeout_s: float = 5.0) -> Callable[[], datetime]:
    """The plain reader of a clock URL (see :class:`UrlClock`)."""
    return UrlClock(url, token, timeout_s).read


def simulated_clock(spec: str, token: str | None = None,
                    env: Mapping[str, str] | None = None) -> SimulatedClock:
    """The clock ``--clock SPEC`` names (an http(s) URL or a file), or ConfigError."""
    refusal = simulated_clock_refusal(env)
    if refusal is not None:
        raise ConfigError("command line", "--clock", refusal)
    is_url = spec.startswith(("http://", "https://"))
    url_clock = UrlClock(spec, token) if is_url else None
    read = url_clock.read if url_clock is not None else file_reader(Path(spec))
    try:
        clock = SimulatedClock(spec if not is_url else _redacted(spec), read)
        clock.announcer = url_clock
        return clock
    except (OSError, ValueError) as err:
        raise ConfigError("command line", "--clock",
                          f"cannot read the clock: {str(err)[:160]}") from None


def _redacted(url: str) -> str:
    """The URL without query or user info (a token must never reach the logs)."""
    scheme, _, rest = url.partition("://")
    host_path = rest.rpartition("@")[2].split("?", 1)[0]
    return f"{scheme}://{host_path}"
