"""Is the agent running? For commands that must not act under a live service (forget).

Two independent answers, so it works on and off systemd: the unit's state from
``systemctl is-active`` (where systemd runs), and the processes that hold the database
file open, read from ``/proc/*/fd`` (Linux; root sees every process). The second also
catches ``replenish run`` started by hand or a second copy under another unit name.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UNIT = "replenish-agent.service"


def unit_active(unit: str = UNIT) -> bool:
    """True when systemd runs and says the unit is active (or activating/reloading)."""
    if not Path("/run/systemd/system").is_dir():
        return False
    try:
        done = subprocess.run(["systemctl", "is-active", unit], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.stdout.strip() in ("active", "activating", "reloading", "deactivating")


def stop_unit(unit: str = UNIT) -> str | None:
    """``systemctl stop`` the unit; None when it worked, else why not."""
    if not Path("/run/systemd/system").is_dir():
        return "systemd is not running here"
    try:
        done = subprocess.run(["systemctl", "stop", unit], capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"systemctl failed: {type(err).__name__}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["systemctl stop failed"])[-1][:200]
    return None


def holders(path: Path) -> list[tuple[int, str]]:
    """(pid, command line) of other processes that have ``path`` (or its -wal) open."""
    try:
        wanted = {str(path.resolve()), str(path.resolve()) + "-wal"}
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if not any(os.readlink(fd) in wanted for fd in fds):
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        found.append((int(proc.name), cmd.strip()[:120]))
    return found
