"""Which file the agent's ``write_bytes`` went to: the WAL, the database, the ``-shm``.

``write_bytes`` is charged when a page of the page cache turns dirty (4 KB pages; a
whole folio on kernels with large folios), to the process that dirtied it. A file
written with ``pwrite64`` and synced with ``fdatasync`` (the WAL at every commit, the
database file at each checkpoint) is modelled exactly from an ``strace`` of those
calls: each 4 KB page written between two syncs of its file counts once. The
wal-index (``-shm``) is ``mmap``'ed: its stores are no system calls, so it is the
rest (``shm_and_other``: re-dirtied ``-shm`` pages after the kernel's writeback, every
``dirty_expire_centisecs``, plus anything else the process wrote, and the excess of
folios larger than 4 KB). Without ``strace`` the breakdown is left out.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

PAGE = 4096
_OPEN = re.compile(r'openat\(AT_FDCWD, "([^"]+)".*\) = (\d+)$')
# A call that another thread interrupts is logged "<unfinished ...>": it has its
# arguments all the same.
_PWRITE = re.compile(r'^\d+\s+pwrite64\((\d+), .*, (\d+), (\d+)(?:\)\s+= \d+| <unfinished)')
_SYNC = re.compile(r'^\d+\s+f(?:data)?sync\((\d+)(?:\)\s+= 0| <unfinished)')


def fd_paths(pid: int) -> dict[int, str]:
    """The open files of ``pid`` (strace sees only the openat calls after it attached)."""
    out: dict[int, str] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return out


def pages_by_file(trace: str, fds: dict[int, str]) -> tuple[Counter[str], Counter[str]]:
    """Bytes of 4 KB pages turned dirty per file path, and syncs per file path, from an
    strace of the process."""
    fds = dict(fds)
    dirty: dict[str, set[int]] = {}
    charged: Counter[str] = Counter()
    syncs: Counter[str] = Counter()
    for line in trace.splitlines():
        if m := _OPEN.search(line):
            fds[int(m.group(2))] = os.path.realpath(m.group(1))
        elif m := _PWRITE.match(line):
            path = fds.get(int(m.group(1)), "?")
            n, off = int(m.group(2)), int(m.group(3))
            pages = dirty.setdefault(path, set())
            for page in range(off // PAGE, (off + max(n, 1) - 1) // PAGE + 1):
                if page not in pages:
                    pages.add(page)
                    charged[path] += PAGE
        elif m := _SYNC.match(line):
            path = fds.get(int(m.group(1)), "?")
            dirty.pop(path, None)
            syncs[path] += 1
    return charged, syncs


class Tracer:
    """``strace`` attached to a process for a ``with`` block (if strace is installed)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.proc: subprocess.Popen[bytes] | None = None
        self.fds: dict[int, str] = {}

    def __enter__(self) -> Tracer:
        exe = shutil.which("strace")
        if exe is None:
            return self
        self.fds = fd_paths(self.pid)
        self.proc = subprocess.Popen(
            [exe, "-f", "-qq", "-e", "trace=openat,pwrite64,fsync,fdatasync",
             "-o", str(self.out), "-p", str(self.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached to every thread before the window starts
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # detaches, flushes its output
            self.proc.wait(30)

    def breakdown(self, db: Path, write_bytes: int) -> dict[str, int] | None:
        """Bytes by file: ``wal``, ``db``, ``shm_and_other`` (the rest of write_bytes),
        and the WAL's syncs (one per commit) and the database file's (checkpoints)."""
        if self.proc is None or not self.out.exists():
            return None
        fds = {fd: os.path.realpath(p) for fd, p in self.fds.items()}
        charged, syncs = pages_by_file(self.out.read_text(errors="replace"), fds)
        real = os.path.realpath(db)
        wal, main = charged[f"{real}-wal"], charged[real]
        return {"wal": wal, "db": main, "shm_and_other": write_bytes - wal - main,
                "wal_syncs": syncs[f"{real}-wal"], "db_syncs": syncs[real]}
