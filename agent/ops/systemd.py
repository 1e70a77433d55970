"""sd_notify and a progress-gated watchdog, without libsystemd.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service; one datagram per state change is the whole protocol. With
``WatchdogSec=`` it also passes ``WATCHDOG_USEC`` and ``WATCHDOG_PID``. The
:class:`Watchdog` pings only while every registered probe reports recent progress, so a
dead paho thread or a wedged scheduler stops the pings and systemd restarts the agent.
Outside systemd every function is a no-op that returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config import read_secret
from agent.errors import ConfigError

log = logging.getLogger(__name__)

UNIT_NAME = "replenish-agent.service"
SERVICE_CREDENTIALS = Path("/run/credentials") / UNIT_NAME
# Where the unit's LoadCredential= lines take the secrets from (see the unit file).
CREDSTORE_DIRS = (Path("/etc/credstore"), Path("/run/credstore"))
CREDSTORE_PREFIX = "replenish-agent-"
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
_TIME_ERROR = 5

Clock = Callable[[], float]
# A probe returns the clock time of the component's last progress, or None when the
# component is dead (for example its thread has exited).
Probe = Callable[[], float | None]


def _socket_address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # vsock: addresses are for VMs talking to their host; a gateway agent never gets one.
    return None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify datagram (``"READY=1"``, ``"STATUS=..."``); True if it was sent."""
    env = os.environ if env is None else env
    raw = env.get("NOTIFY_SOCKET")
    if not raw:
        return False
    address = _socket_address(raw)
    if address is None:
        log.debug("sd_notify.skipped reason=unsupported_address_family")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as err:
        log.debug("sd_notify.failed reason=%s", type(err).__name__)
        return False
    return True


def ready(env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd start-up is complete (database migrated; the broker may come later)."""
    return notify("READY=1", env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd a clean shutdown has begun."""
    return notify("STOPPING=1", env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    return notify("STATUS=" + " ".join(text.split()), env)


def service_status_text(unit: str = UNIT_NAME) -> str | None:
    """The running unit's ``STATUS=`` line (``systemctl show -p StatusText``), or None."""
    cmd = ["systemctl", "show", "--property=StatusText", "--value", unit]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and text else None


def _adjtimex_state() -> int:
    """The kernel clock state from a read-only ``adjtimex``; -1 when the call is refused."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        # struct timex is about 200 bytes; all zero means modes=0, a pure read.
        buf = ctypes.create_string_buffer(512)
        return int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return -1


def _timedated_synchronized() -> bool | None:
    """timedated's NTPSynchronized over D-Bus (via busctl, no D-Bus library needed)."""
    cmd = [
        "busctl", "--system", "get-property", "org.freedesktop.timedate1",
        "/org/freedesktop/timedate1", "org.freedesktop.timedate1", "NTPSynchronized",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.split()
    if done.returncode != 0 or len(answer) != 2 or answer[0] != "b":
        return None
    return answer[1] == "true"


def clock_synchronized(
    adjtimex: Callable[[], int] = _adjtimex_state,
    timedated: Callable[[], bool | None] = _timedated_synchronized,
    flag: Path = TIMESYNC_FLAG,
) -> bool | None:
    """Whether the system clock is synchronised by NTP; None when it cannot be told.

    ``adjtimex`` without modes only reads; it returns TIME_ERROR while the kernel's
    STA_UNSYNC flag is set, which every NTP client (timesyncd, chrony, ntpd) clears.
    Inside the hardened unit that call is filtered (ProtectClock=), so the agent falls back
    to the flag file systemd-timesyncd creates, then to asking timedated over D-Bus (which
    makes the same adjtimex call with its own privileges). Never order on None.
    """
    state = adjtimex()
    if state >= 0:
        return state != _TIME_ERROR
    if flag.exists():
        return True
    return timedated()


def credentials_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment whose ``CREDENTIALS_DIRECTORY`` finds the service's secrets.

    A command run by hand (doctor, support-bundle) has no credentials directory of its
    own: it borrows the running service's, which root can read.
    """
    out = dict(os.environ if env is None else env)
    if out.get("CREDENTIALS_DIRECTORY"):
        return out
    if SERVICE_CREDENTIALS.is_dir() and os.access(SERVICE_CREDENTIALS, os.R_OK | os.X_OK):
        out["CREDENTIALS_DIRECTORY"] = str(SERVICE_CREDENTIALS)
    return out


def read_service_secret(
    path: Path | None, key: str, env: Mapping[str, str] | None = None
) -> str | None:
    """:func:`agent.config.read_secret`, falling back to the unit's credential store files.

    For commands run outside the service while it is stopped: a bare name ``mqtt-password``
    is then read from ``/etc/credstore/replenish-agent-mqtt-password``.
    """
    try:
        return read_secret(path, key, env)
    except ConfigError:
        if path is None or path.is_absolute():
            raise
        for store in CREDSTORE_DIRS:
            candidate = store / f"{CREDSTORE_PREFIX}{path.name}"
            if candidate.is_file():
                return read_secret(candidate, key, env)
        raise


class ProgressMark:
    """A thread-safe "last progress" timestamp: ``touch()`` from the worker, call it as a probe.

    Starts at creation time, so a component gets ``max_age_s`` to make its first progress.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def touch(self) -> None:
        """Record progress now."""
        now = self._clock()
        with self._lock:
            self._last = now

    def __call__(self) -> float:
        with self._lock:
            return self._last



def thread_probe(thread_alive: Callable[[], bool], mark: Callable[[], float]) -> Probe:
    """A probe that is dead (None) once ``thread_alive()`` is False, else ``mark()``.

    For the MQTT loop: ``thread_probe(lambda: t.is_alive(), mqtt_mark)`` where paho's
    callbacks (connect, message, ping response, connect failure) touch ``mqtt_mark``.
    """

    def probe() -> float | None:
        return mark() if thread_alive() else None

    return probe

@dataclass(slots=True, frozen=True)
class _Registered:
    name: str
    probe: Probe
    max_age_s: float


class Watchdog:
    """Pings ``WATCHDOG=1`` at half the systemd interval while every probe is fresh."""

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Clock = time.monotonic,
        send: Callable[[str], bool] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("watchdog interval must be positive")
        self.interval_s = interval_s
        self.ping_every_s = interval_s / 2
        self._clock = clock
        self._send: Callable[[str], bool] = send if send is not None else notify
        self._probes: list[_Registered] = []
        self._lock = threading.Lock()
        self._stale: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        clock: Clock = time.monotonic,
        send: Callable[[str], bool] | None = None,
    ) -> Watchdog | None:
        """The watchdog systemd asked for, or None when ``WatchdogSec=`` is not in effect."""
        env = os.environ if env is None else env
        raw = env.get("WATCHDOG_USEC")
        if not raw:
            return None
        owner = env.get("WATCHDOG_PID")
        if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
            return None
        try:
            usec = int(raw)
        except ValueError:
            log.warning("watchdog.disabled reason=malformed_WATCHDOG_USEC")
            return None
        if usec <= 0:
            return None
        if send is None:
            frozen = dict(env)

            def send(state: str) -> bool:
                return notify(state, frozen)

        return cls(usec / 1_000_000, clock=clock, send=send)

    def add_probe(self, name: str, probe: Probe, max_age_s: float) -> None:
        """Require ``probe()`` to be at most ``max_age_s`` old for the pings to continue."""
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        with self._lock:
            if any(p.name == name for p in self._probes):
                raise ValueError(f"probe {name!r} already registered")
            self._probes.append(_Registered(name, probe, max_age_s))

    def stale_probes(self) -> list[str]:
        """Names of the probes that are dead or older than their limit, right now."""
        now = self._clock()
        with self._lock:
            probes = list(self._probes)
        stale = []
        for p in probes:
            try:
                last = p.probe()
            except Exception:
                # A probe that raises is as good as a dead component.
                log.exception("watchdog.probe_failed probe=%s", p.name)
                last = None
            if last is None or now - last > p.max_age_s:
                stale.append(p.name)
        return stale

    def tick(self) -> bool:
        """Check the probes once; ping systemd if all are fresh. True when a ping was sent."""
        stale = tuple(self.stale_probes())
        if stale:
            if stale != self._stale:
                # Pings stop: systemd restarts the agent after WatchdogSec.
                log.warning("watchdog.stalled probes=%s", ",".join(stale))
                self._send("STATUS=stalled: " + ",".join(stale))
            self._stale = stale
            return False
        if self._stale:
            log.info("watchdog.resumed probes=%s", ",".join(self._stale))
            self._stale = ()
        sent = self._send("WATCHDOG=1")
        if sent:
            self.pings += 1
        return sent

    def start(self) -> None:
        """Ping from a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the pinging thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        self.tick()
        while not self._stop.wait(self.ping_every_s):
            self.tick()
