"""A real IPP Everywhere printer (CUPS ``ippeveprinter``) for integration tests.

:func:`start_printer` runs ``ippeveprinter`` on a free loopback port with its own spool
directory and a private D-Bus bus (it wants one even with DNS-SD off), and returns an
:class:`EvePrinter` that can print jobs with ``ipptool`` and change supply levels through
the printer's ``/supplies`` web form. Use it as a context manager.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ipp"
MARKERS_CONF = FIXTURES / "markers.conf"
DEPLETE_COMMAND = FIXTURES / "deplete.sh"
PRINT_TEST = FIXTURES / "print-job-and-wait.test"


def free_port() -> int:
    """A port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EvePrinter:
    """One running ``ippeveprinter`` and its private D-Bus daemon."""

    workdir: Path
    port: int
    proc: subprocess.Popen[bytes]
    dbus_pid: int
    env: dict[str, str]
    log_path: Path
    _dbus_dir: Path = field(repr=False)

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def print_job(self, text: str = "replenish test page\n") -> None:
        """Print one plain-text job with ``ipptool`` and wait until it has completed."""
        doc = self.workdir / "page.txt"
        doc.write_text(text)
        result = subprocess.run(
            ["ipptool", "-t", "-f", str(doc), "-d", "filetype=text/plain", self.uri,
             str(PRINT_TEST)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"ipptool failed:\n{result.stdout}\n{result.stderr}")

    def set_supplies(self, levels: list[int]) -> str:
        """Submit the ``/supplies`` form; returns the page it answered with.

        The form is a GET with one ``supplyN`` field per supply, and the printer rewrites
        all levels at once: leaving a field out deletes that supply.
        """
        query = urllib.parse.urlencode({f"supply{i}": v for i, v in enumerate(levels)})
        url = f"http://127.0.0.1:{self.port}/supplies?{query}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            page: str = resp.read().decode()
        return page

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:
            os.kill(self.dbus_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        shutil.rmtree(self._dbus_dir, ignore_errors=True)

    def __enter__(self) -> EvePrinter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _start_dbus() -> tuple[Path, int, str]:
    # A unix socket path must stay under ~108 bytes; pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="ipp-dbus-"))
    address = f"unix:path={directory / 'bus'}"
    out = subprocess.run(
        ["dbus-daemon", "--session", f"--address={address}", "--fork", "--print-pid"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return directory, int(out.stdout.split()[0]), address


def start_printer(
    workdir: Path,
    *,
    attributes: Path | None = None,
    command: Path | None = None,
    extra_env: dict[str, str] | None = None,
    name: str = "Replenish Test Printer",
) -> EvePrinter:
    """Start ``ippeveprinter`` and wait until it accepts connections.

    ``attributes`` is an ``-a`` file (it then replaces the default supplies and formats);
    ``command`` a ``-c`` print command, which inherits ``extra_env``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    dbus_dir, dbus_pid, address = _start_dbus()
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address, **(extra_env or {})}
    last_error = ""
    for attempt in range(3):
        port = free_port()
        spool = workdir / f"spool-{attempt}"
        spool.mkdir()
        # "-n localhost": with a numeric -n the printer cannot set up its listeners.
        cmd = ["ippeveprinter", "-r", "off", "-n", "localhost", "-p", str(port), "-d", str(spool)]
        if attributes is not None:
            cmd += ["-a", str(attributes)]
        else:
            cmd += ["-f", "text/plain"]
        if command is not None:
            cmd += ["-c", str(command)]
        log_path = workdir / f"ippeveprinter-{attempt}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [*cmd, "-v", name], stdout=log_file, stderr=subprocess.STDOUT, env=env,
                cwd=workdir,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _port_open(port):
            time.sleep(0.05)
        if proc.poll() is None and _port_open(port):
            return EvePrinter(workdir, port, proc, dbus_pid, env, log_path, dbus_dir)
        proc.kill()
        proc.wait(timeout=5)
        last_error = log_path.read_text(errors="replace")[-2000:]
    os.kill(dbus_pid, signal.SIGTERM)
    shutil.rmtree(dbus_dir, ignore_errors=True)
    raise RuntimeError(f"ippeveprinter did not start:\n{last_error}")
