"""A private Mosquitto started from the project's own ``broker_config/``.

Tests, ``make demo`` and the benchmarks use :class:`LocalBroker` so they run against
exactly the configuration a household gateway runs (no anonymous access, password
file, ``%u`` ACL, persistence, queue limits, optional TLS), on free loopback ports in
a private directory.

    with LocalBroker(tmp_path, users={"agent": "pw", "printer-1": "pw2"}) as broker:
        client.connect(broker.host, broker.port)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from agent.ops.provisioning import (
    DEFAULT_AGENT_USER,
    DEFAULT_HOUSEHOLD_USER,
    ProcessSettings,
    TlsFiles,
    hash_password,
    new_password,
    render_acl,
    render_mosquitto_conf,
    run_script,
    write_password_file,
    write_private_file,
)

APT_HINT = "sudo apt-get install -y mosquitto mosquitto-clients"
HOST = "127.0.0.1"
_START_ATTEMPTS = 5
_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class BrokerSetupError(RuntimeError):
    """The local broker could not be found or started (message says how to fix it)."""


def find_mosquitto() -> Path:
    """Path of the ``mosquitto`` binary (Debian installs it in /usr/sbin)."""
    found = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin:/sbin"
    )
    if found is None:
        raise BrokerSetupError(f"mosquitto is not installed; run: {APT_HINT}")
    return Path(found)


def find_client_tool(name: str) -> Path:
    """Path of ``mosquitto_pub`` / ``mosquitto_sub`` / ``mosquitto_passwd``."""
    found = shutil.which(name)
    if found is None:
        raise BrokerSetupError(f"{name} is not installed; run: {APT_HINT}")
    return Path(found)


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (the caller retries if it is taken by then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """Mosquitto in ``workdir`` with the household configuration, as a context manager.

    ``users`` maps username to password; ``agent`` and ``household`` are added with
    random passwords when missing. Every other user is a device (the ``%u`` ACL gives
    it its own ``replenish/v1/devices/<name>/...`` topics). ``tls=True`` creates a
    household CA and broker certificate with ``broker_config/make-ca.sh`` and
    ``make-broker-cert.sh`` and adds a TLS listener (password auth) and a mutual-TLS
    listener (client certificate CN as username). ``extra_conf`` is appended to
    mosquitto.conf; ``extra_acl`` to the ACL (start it with its own ``user`` line), e.g.
    to give a test account more rights than the household config ever would.
    """

    host = HOST

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        tls: bool = False,
        extra_conf: str = "",
        extra_acl: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.passwords: dict[str, str] = dict(users or {})
        for role in (DEFAULT_AGENT_USER, DEFAULT_HOUSEHOLD_USER):
            self.passwords.setdefault(role, new_password())
        self.tls = tls
        self.extra_conf = extra_conf
        self.extra_acl = extra_acl
        self.revoked: set[str] = set()  # removed users, denied every topic in the ACL
        self.conf_file = self.workdir / "mosquitto.conf"
        self.password_file = self.workdir / "passwd"
        self.acl_file = self.workdir / "acl"
        self.pid_file = self.workdir / "mosquitto.pid"
        self.log_file = self.workdir / "mosquitto.log"
        self.stderr_file = self.workdir / "mosquitto.stderr"
        self.data_dir = self.workdir / "data"
        self.ca_dir = self.workdir / "ca"
        self.port = 0
        self.tls_port: int | None = None
        self.cert_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._binary = find_mosquitto()

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the files and start mosquitto on free ports (kept across restarts)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if self.tls:
            self._make_tls_material()
        self._write_password_file()
        self._write_acl()
        fixed = self.port != 0
        for attempt in range(_START_ATTEMPTS):
            if not fixed:
                self.port = free_port()
                if self.tls:
                    self.tls_port = free_port()
                    self.cert_port = free_port()
            self._write_conf()
            if self._spawn_and_wait():
                return
            if fixed or "in use" not in self.log_text() or attempt == _START_ATTEMPTS - 1:
                break
        raise BrokerSetupError(f"mosquitto did not start; log:\n{self.log_text()[-2000:]}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), so persistence is written; SIGKILL after 10 s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; queued messages not yet snapshotted are lost."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def restart(self, crash: bool = False) -> None:
        """Stop (or kill, with ``crash=True``) and start again on the same ports."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.pid is not None

    # -- users -------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add or change a user and reload the broker."""
        self.passwords[name] = password
        self.revoked.discard(name)
        self._write_password_file()
        self._write_acl()
        self.reload()

    def remove_user(self, name: str) -> None:
        """Remove a user and reload; mosquitto also disconnects its live sessions."""
        self.passwords.pop(name, None)
        self.revoked.add(name)
        self._write_password_file()
        self._write_acl()
        self.reload()

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP and wait until mosquitto logs that it reloaded its configuration."""
        proc = self._require_running()
        before = self.reload_count()
        proc.send_signal(signal.SIGHUP)
        self.wait_for_reload(before, timeout)

    def reload_count(self) -> int:
        """How many reloads the log shows (pair with :meth:`wait_for_reload`)."""
        return self.log_text().count("Reloading config")

    def wait_for_reload(self, before: int, timeout: float = 5.0) -> None:
        """Wait until a reload after ``before`` (a :meth:`reload_count`) was logged.

        Mosquitto logs the line and rereads the files in the same loop iteration, so
        any connection it handles afterwards sees the new password file and ACL.
        """
        deadline = time.monotonic() + timeout
        while self.reload_count() <= before:
            if time.monotonic() > deadline:
                raise BrokerSetupError("mosquitto did not confirm the reload")
            time.sleep(0.01)

    # -- TLS material --------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The household CA certificate clients must trust (``None`` without TLS)."""
        return self.ca_dir / "ca.crt" if self.tls else None

    def make_client_cert(self, device_id: str) -> tuple[Path, Path]:
        """Issue a client certificate (CN = ``device_id``); returns (cert, key) paths."""
        if not self.tls:
            raise BrokerSetupError("client certificates need LocalBroker(tls=True)")
        out = self.ca_dir / "clients"
        run_script("make-client-cert.sh", str(self.ca_dir), device_id, str(out))
        return out / f"{device_id}.crt", out / f"{device_id}.key"

    def revoke_client_cert(self, device_id: str) -> None:
        """Revoke a client certificate like ``replenish device remove`` does.

        The CRL (reread on SIGHUP) stops reconnects; the ACL deny cuts off a live session.
        """
        run_script("revoke-client-cert.sh", str(self.ca_dir), device_id)
        self.revoked.add(device_id)
        self._write_acl()
        self.reload()

    # -- diagnostics -----------------------------------------------------------------

    def log_text(self) -> str:
        """Broker log plus anything it printed to stderr (startup errors)."""
        parts = []
        for path in (self.stderr_file, self.log_file):
            try:
                parts.append(path.read_text(errors="replace"))
            except FileNotFoundError:
                continue
        return "".join(parts)

    # -- internals -------------------------------------------------------------------

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerSetupError("mosquitto is not running")
        return self._proc

    def _write_password_file(self) -> None:
        entries = {name: hash_password(pw) for name, pw in self.passwords.items()}
        write_password_file(self.password_file, entries)

    def _write_acl(self) -> None:
        acl = render_acl(revoked=self.revoked)
        if self.extra_acl:
            acl += "\n" + self.extra_acl.strip() + "\n"
        write_private_file(self.acl_file, acl)

    def _write_conf(self) -> None:
        tls = None
        if self.tls:
            assert self.tls_port is not None and self.cert_port is not None
            tls = TlsFiles(
                ca_file=self.ca_dir / "ca.crt",
                cert_file=self.ca_dir / "broker.crt",
                key_file=self.ca_dir / "broker.key",
                port=self.tls_port,
                bind=HOST,
                cert_port=self.cert_port,
                crl_file=self.ca_dir / "crl.pem",
            )
        text = render_mosquitto_conf(
            local_port=self.port,
            password_file=self.password_file,
            acl_file=self.acl_file,
            tls=tls,
            process=ProcessSettings(
                persistence_dir=self.data_dir,
                pid_file=self.pid_file,
                log_file=self.log_file,
                # As root, mosquitto would drop to user "mosquitto", which cannot enter
                # a private temp dir; tests keep the broker as the invoking user.
                run_user=_current_user(),
            ),
            extra_conf=self.extra_conf,
        )
        self.conf_file.write_text(text)

    def _make_tls_material(self) -> None:
        if (self.ca_dir / "broker.crt").is_file():
            return
        run_script("make-ca.sh", str(self.ca_dir), "LocalBroker test CA")
        run_script("make-broker-cert.sh", str(self.ca_dir), "localhost", HOST)

    def _spawn_and_wait(self) -> bool:
        with self.stderr_file.open("ab") as err:
            self._proc = subprocess.Popen(
                [str(self._binary), "-c", str(self.conf_file)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        ports = [p for p in (self.port, self.tls_port, self.cert_port) if p]
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if all(_port_open(self.host, p) for p in ports):
                return True
            time.sleep(0.01)
        self.kill()
        return False


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
