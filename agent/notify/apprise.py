"""Caregiver notifications through Apprise (ntfy, e-mail, Telegram, Pushover, Matrix,
webhooks ...), run as a short-lived ``apprise`` process per delivery.

A separate process keeps Apprise and its dependencies (requests, markdown, yaml) out
of the agent's resident memory, and a channel that hangs is killed at its deadline
instead of holding the agent. The contact's secret file is handed to Apprise as its
configuration file, so URLs with credentials never appear on a command line, in the
database or in a log line: only the contact's name and an exit status are logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Delivery:
    ok: bool
    error: str | None = None


def apprise_binary() -> Path | None:
    """The ``apprise`` console script of the agent's own environment, else on PATH."""
    beside = Path(sys.executable).parent / "apprise"
    if beside.is_file():
        return beside
    found = shutil.which("apprise")
    return Path(found) if found else None


class AppriseNotifier:
    """Sends one message to one contact; ``url_files`` maps contact name to its secret."""

    def __init__(self, url_files: Mapping[str, Path], timeout_s: float,
                 binary: Path | None = None, state_dir: Path | None = None) -> None:
        self.url_files = dict(url_files)
        self.timeout_s = timeout_s
        self.binary = binary or apprise_binary()
        self.state_dir = state_dir

    def send(self, contact: str, title: str, body: str) -> Delivery:
        url_file = self.url_files.get(contact)
        if url_file is None:
            return Delivery(False, "no such contact")
        if self.binary is None:
            return Delivery(False, "apprise is not installed")
        cmd = [str(self.binary), "--config", str(url_file), "--title", title, "--body", body,
               "--notification-type", "failure", "--storage-mode", "memory",
               "--limit", f"{self.timeout_s:g}"]
        env = dict(os.environ)
        if self.state_dir is not None:
            env["HOME"] = str(self.state_dir)  # apprise wants a home for its cache
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=self.timeout_s + 5,
                                  stdin=subprocess.DEVNULL, env=env, check=False)
        except subprocess.TimeoutExpired:
            return Delivery(False, "timeout")
        except OSError as err:
            return Delivery(False, f"cannot run apprise: {type(err).__name__}")
        if done.returncode != 0:
            # Apprise's own output may quote the URL (and so a token): never logged.
            return Delivery(False, f"apprise exit {done.returncode}")
        return Delivery(True)
