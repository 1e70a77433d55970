"""The household password, signed session cookies, CSRF tokens and the login rate limit.

Stdlib only (``hashlib.scrypt``, ``hmac``, ``secrets``): the gateway needs no crypto wheel
for a single shared password. The password file holds one line
``scrypt$N$r$p$salt$hash`` (base64) and is written 0600; the session key is 32 random
bytes in its own 0600 file, so restarting the web process keeps households logged in and
deleting the file logs everyone out.

The web process checks a login in a short-lived child process (:func:`check_in_child`):
scrypt's cost is its memory (128 * N * r bytes: 16 MiB here), and inside the long-running
server that would add 16 MiB to its footprint on every login and stay there (glibc keeps
freed heap). The child takes it and gives it all back when it exits, so the strength
need not be traded for the server's footprint. Each hash names its own N, r and p, so
stronger parameters later only need ``replenish web set-password`` again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from agent.keyfile import signing_key, write_private

# scrypt cost: 16 MiB of memory and ~50 ms on a Raspberry Pi 4 per login attempt: the
# interactive-login parameters of the scrypt paper (Percival 2009) and OWASP's
# "N=2^14, r=8, p=2" row at p=1 (one login at a time is all a household needs).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
# The child reads "N r p salt-hex\n" then the password bytes on stdin (never argv:
# /proc shows argv to every user) and prints the derived key in hex. -I -S: no site
# packages, no environment, no current directory: only hashlib is imported.
_CHILD = ("import hashlib,sys\n"
          "head,_,pw=sys.stdin.buffer.read().partition(b'\\n')\n"
          "n,r,p,salt=head.split()\n"
          "sys.stdout.write(hashlib.scrypt(pw,salt=bytes.fromhex(salt.decode()),n=int(n),"
          f"r=int(r),p=int(p),dklen=32,maxmem={SCRYPT_MAXMEM}).hex())\n")
CHILD_TIMEOUT_S = 20.0
MIN_PASSWORD_LEN = 8
ROLES = ("household", "viewer")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            return None
        return int(n), int(r), int(p), _unb64(salt), _unb64(digest)
    except (ValueError, TypeError):
        return None


def check_password(password: str, stored: str) -> bool:
    """Check in this process (the CLI, tests): the web server uses :func:`check_in_child`."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    try:
        got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                             maxmem=SCRYPT_MAXMEM)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, digest)


class HashError(Exception):
    """The hashing child failed (not a wrong password: the login cannot be checked)."""


async def check_in_child(password: str, stored: str, slot: asyncio.Semaphore) -> bool:
    """:func:`check_password` with the scrypt work in a short-lived child process.

    ``slot`` (the server's, of one) makes a burst of logins queue instead of starting
    many 16 MiB children at once."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    message = f"{n} {r} {p} {salt.hex()}\n".encode() + password.encode()
    async with slot:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", _CHILD, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(message), CHILD_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise HashError(f"the hashing process took over {CHILD_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        raise HashError(f"the hashing process failed (exit {proc.returncode})")
    try:
        got = bytes.fromhex(out.decode())
    except ValueError as err:
        raise HashError("the hashing process answered garbage") from err
    return hmac.compare_digest(got, digest)


def set_password(path: Path, password: str, role: str = "household") -> None:
    """Store the hash of the household (or viewer) password; other roles are kept."""
    if len(password) < MIN_PASSWORD_LEN:
        raise ConfigError(str(path), "password", f"needs at least {MIN_PASSWORD_LEN} characters")
    hashes = read_passwords(path)
    hashes[role] = hash_password(password)
    write_private(path, "".join(f"{r} {hashes[r]}\n" for r in ROLES if r in hashes))


def read_passwords(path: Path) -> dict[str, str]:
    """``{role: hash}`` from the password file ({} when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(str(path), "web.password_file", f"unreadable: {err.strerror}") from err
    out: dict[str, str] = {}
    for line in text.splitlines():
        role, _, digest = line.strip().partition(" ")
        if role in ROLES and digest.startswith("scrypt$"):
            out[role] = digest
    return out


def login_role(hashes: dict[str, str], password: str) -> str | None:
    """The role this password opens (household first), or None."""
    for role in ROLES:
        if role in hashes and check_password(password, hashes[role]):
            return role
    return None


async def login_role_in_child(hashes: dict[str, str], password: str,
                              slot: asyncio.Semaphore) -> str | None:
    """:func:`login_role` for the web server: each check in its own child process."""
    for role in ROLES:
        if role in hashes and await check_in_child(password, hashes[role], slot):
            return role
    return None


def session_key(path: Path) -> bytes:
    """The cookie signing key, created on first use."""
    return signing_key(path)


@dataclass(slots=True, frozen=True)
class Session:
    role: str
    csrf: str
    issued: float

    @property
    def can_act(self) -> bool:
        return self.role == "household"


class Signer:
    """Signs and checks session cookies: ``base64(json).base64(hmac-sha256)``."""

    def __init__(self, key: bytes, max_age_s: float) -> None:
        self.key = key
        self.max_age_s = max_age_s

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())

    def issue(self, role: str, now: float) -> str:
        body = _b64(json.dumps({"r": role, "c": secrets.token_urlsafe(24), "t": now}).encode())
        return f"{body}.{self._mac(body)}"

    def load(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(str(data["r"]), str(data["c"]), float(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.role not in ROLES or not 0 <= now - session.issued <= self.max_age_s:
            return None
        return session


class RateLimit:
    """At most ``attempts`` failed logins per client address per ``window_s``."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, client: str, now: float) -> float:
        """Seconds this client must wait (0: it may try)."""
        q = self._recent(client, now)
        return 0.0 if len(q) < self.attempts else max(1.0, self.window_s - (now - q[0]))

    def failed(self, client: str, now: float) -> None:
        self._recent(client, now).append(now)
        if len(self._failures) > 10_000:  # a scan of many addresses must not grow memory
            self._failures.clear()

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
