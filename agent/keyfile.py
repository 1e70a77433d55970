"""Private files the agent and the web app share in the state directory: signing keys.

Written 0600 from the first byte and renamed into place; as root (a household running a
command with sudo) the file is handed to the state directory's owner, the service's
dynamic user, or the service could not read it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (then rename over)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    if os.geteuid() == 0:
        owner = path.parent.stat()
        os.chown(tmp, owner.st_uid, owner.st_gid)
    os.replace(tmp, path)


def signing_key(path: Path) -> bytes:
    """A 256-bit key kept in ``path``, created on first use."""
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32).encode()
    write_private(path, key.decode())
    return key
