"""Mosquitto password files and the private-file writer every broker file goes through.

Mosquitto 2.0 password hashes (``$7$``: PBKDF2-SHA512) are made in Python so passwords
never appear on a command line (``mosquitto_passwd -b`` would put them in ``ps`` output).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from agent.errors import ConfigError

HASH_ITERATIONS = 101  # mosquitto_passwd's default for $7$ hashes in 2.0
_SALT_BYTES = 12


def new_password() -> str:
    """A random device password (128 bits, URL-safe, easy to paste into a device UI)."""
    return secrets.token_urlsafe(16)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2.0 ``$7$`` hash: PBKDF2-HMAC-SHA512, as written by mosquitto_passwd."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${HASH_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash line value."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3])
        expected = base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def read_password_file(path: Path) -> dict[str, str]:
    """Username -> hash, in file order. A missing file is an empty mapping."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(str(path), "password_file", "cannot read") from err
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, value = line.partition(":")
        if not sep:
            raise ConfigError(str(path), "password_file", "line without ':'")
        entries[user] = value
    return entries


def write_password_file(path: Path, entries: Mapping[str, str]) -> None:
    """Atomically replace the password file (mode 0640, group readable by mosquitto)."""
    body = "".join(f"{user}:{value}\n" for user, value in entries.items())
    write_private_file(path, body)


def write_private_file(
    path: Path, body: str, mode: int = 0o640, *, broker_readable: bool = True
) -> None:
    """Write ``body`` via a temp file + rename so mosquitto never reads half a file.

    With ``broker_readable`` and run as root, the file's group becomes ``mosquitto``
    (if that group exists): the broker drops root before it rereads files on SIGHUP.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if broker_readable:
            _chgrp_mosquitto(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigError(str(path), "file", f"cannot write: {err.strerror}") from err


def _chgrp_mosquitto(path: Path) -> None:
    if os.geteuid() != 0:
        return
    import grp

    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return
    os.chown(path, 0, gid)


