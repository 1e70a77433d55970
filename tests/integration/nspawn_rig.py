"""A real systemd to install the agent into: a cached Debian rootfs booted by nspawn.

The rootfs is built once with debootstrap and cached outside the clone under
``$REPLENISH_TEST_CACHE`` (default ``/var/cache/replenish-agent-test``), named by a hash of
the suite and package list, so changing either builds a fresh one. The container boots
with ``--volatile=overlay``: everything a run writes lands in a tmpfs over the cached
tree, which stays pristine. The Python dependencies are downloaded on the host (wheels,
also cached) and bound into the container, so the install inside needs no index.

Commands run inside through ``nsenter`` into the container's PID 1. Anything that stops
the rig from working raises :class:`RigError` with the reason: the test fails, it never
skips, because a systemd test that silently does not run proves nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "mosquitto",
            "mosquitto-clients", "openssl", "make")
CACHE = Path(os.environ.get("REPLENISH_TEST_CACHE", "/var/cache/replenish-agent-test"))
MIRROR = os.environ.get("REPLENISH_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PATH_INSIDE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RigError(RuntimeError):
    """The container could not be built, booted or entered; the message says why."""


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RigError(f"{name} not found: apt-get install systemd-container debootstrap "
                       "(bash .ci/ensure-packages.sh does it as root)")
    return found


def preflight() -> None:
    """Why nspawn cannot run here, as an exception; nothing when it can."""
    if os.geteuid() != 0:
        raise RigError("the systemd container test needs root (systemd-nspawn, debootstrap)")
    for name in ("systemd-nspawn", "debootstrap", "nsenter"):
        _tool(name)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def rootfs() -> Path:
    """The cached minimal Debian tree, built with debootstrap on first use (about a minute)."""
    final = CACHE / f"rootfs-{_key(SUITE, MIRROR, *PACKAGES)}"
    with _locked("rootfs"):
        if (final / ".complete").is_file():
            return final
        building = final.with_name(final.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        done = subprocess.run(
            [_tool("debootstrap"), "--variant=minbase", f"--include={','.join(PACKAGES)}",
             SUITE, str(building), MIRROR],
            capture_output=True, text=True, timeout=1200, check=False)
        if done.returncode != 0:
            raise RigError(f"debootstrap {SUITE} from {MIRROR} failed:\n{done.stdout[-1500:]}"
                           f"{done.stderr[-1500:]}")
        # The test starts its broker late on purpose; the image must not start one at boot.
        (building / "etc/systemd/system/mosquitto.service").symlink_to("/dev/null")
        (building / ".complete").write_text(" ".join(PACKAGES) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        building.rename(final)
        return final


def wheels(project: Path) -> Path:
    """Wheels for the project's runtime and build dependencies (host pip, cached)."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    reqs = [*meta["build-system"]["requires"], *meta["project"]["dependencies"]]
    final = CACHE / f"wheels-{_key(sys.version.split()[0][:4], *reqs)}"
    with _locked("wheels"):
        if (final / ".complete").is_file():
            return final
        shutil.rmtree(final, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--dest", str(final), *reqs],
            capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RigError(f"pip download of the dependencies failed:\n{done.stderr[-2000:]}")
        (final / ".complete").write_text("\n".join(reqs) + "\n")
        return final


def stage_source(project: Path, dest: Path) -> Path:
    """The files of the checkout (tracked and new, not ignored): what a clone would hold."""
    listed = subprocess.run(["git", "-C", str(project), "ls-files", "-co", "--exclude-standard",
                             "-z"], capture_output=True, check=False)
    if listed.returncode != 0:
        raise RigError(f"git ls-files failed in {project}: {listed.stderr.decode()[-500:]}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = project / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


class Container:
    """One booted container; ``sh()`` runs a shell command inside as root."""

    def __init__(self, root: Path, binds: dict[Path, str], hostname: str = "gw") -> None:
        self.root = root
        self.binds = binds
        self.hostname = hostname
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None
        self.console: Path | None = None

    def boot(self, console: Path, timeout: float = 90.0) -> None:
        self.console = console
        cmd = [_tool("systemd-nspawn"), "-D", str(self.root), "--register=no", "--keep-unit",
               "--link-journal=no", "--volatile=overlay", f"--hostname={self.hostname}",
               f"--machine=replenish-test-{os.getpid()}", "--console=read-only"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        with console.open("wb") as out:
            self.proc = subprocess.Popen([*cmd, "--boot"], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid1 is None:
            if self.proc.poll() is not None:
                raise RigError(f"systemd-nspawn exited {self.proc.returncode}:\n"
                               f"{console.read_text(errors='replace')[-3000:]}")
            self.pid1 = self._find_pid1(self.proc.pid)
            time.sleep(0.1)
        if self.pid1 is None:
            raise RigError("no systemd PID 1 inside the container")
        state, error = "", ""
        while time.monotonic() < deadline:
            # PID 1 exists before its bus does: retry until systemctl gets an answer.
            done = self.sh("systemctl is-system-running --wait",
                           timeout=deadline - time.monotonic(), check=False)
            state, error = done.stdout.strip(), done.stderr.strip()
            if state and state != "offline":
                break
            time.sleep(0.2)
        if state not in ("running", "degraded"):
            failed = self.sh("systemctl --failed --no-legend", check=False).stdout
            raise RigError(f"container did not boot: {state or error}\nfailed units: {failed}"
                           f"\n{console.read_text(errors='replace')[-3000:]}")

    @staticmethod
    def _find_pid1(nspawn_pid: int) -> int | None:
        """The descendant of nspawn that is PID 1 in its own PID namespace."""
        todo = [nspawn_pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines()
                          if line.startswith("NSpid:")), [])
            if pid != nspawn_pid and len(nspid) > 1 and nspid[-1] == "1":
                return pid
            todo += [int(c) for c in children]
        return None

    def sh(self, script: str, timeout: float = 120.0, check: bool = True,
           env: dict[str, str] | None = None, stdin: str | None = None,
           ) -> subprocess.CompletedProcess[str]:
        if self.pid1 is None:
            raise RigError("container not booted")
        clean = {"PATH": PATH_INSIDE, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        cmd = ["nsenter", "-t", str(self.pid1), "-a", "env", "-i",
               *[f"{k}={v}" for k, v in clean.items()], "sh", "-c", script]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1.0),
                              check=False, input=stdin if stdin is not None else "")
        if check and done.returncode != 0:
            raise AssertionError(f"inside the container `{script}` exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def show(self, unit: str, prop: str) -> str:
        return self.sh(f"systemctl show --property={prop} --value {unit}").stdout.strip()

    def shutdown(self, timeout: float = 30.0) -> None:
        """SIGTERM to nspawn powers the container off cleanly; SIGKILL if it hangs."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
