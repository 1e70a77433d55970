"""How far the running agent got, as data: passes completed per job, ingest commits and
failed ingest writes.

The service rewrites one small JSON file in its runtime directory (systemd's
``RuntimeDirectory=``, a tmpfs: nothing reaches the SD card) when a count changed, at
most once a second. ``replenish doctor --json`` shows it; tests wait on it for a positive
marker that later passes ran (a check that nothing went out twice means something only
after passes that could have sent it). Without a runtime directory (a run outside
systemd that sets none), nothing is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.domain import JsonObject

RUNTIME_ENV = "RUNTIME_DIRECTORY"
# Where the unit's RuntimeDirectory= puts it (doctor runs outside the unit's environment).
DEFAULT_RUNTIME_DIR = Path("/run/replenish-agent")
FILE_NAME = "progress.json"


@dataclass(slots=True, frozen=True, kw_only=True)
class Progress:
    """One snapshot of the running agent's counts (all since it started)."""

    pid: int
    passes: Mapping[str, int] = field(default_factory=dict)  # job id -> completed passes
    ingest_batches: int = 0  # group commits of the ingest writer
    ingest_write_failures: int = 0  # failed ingest writes (each retry of a full disk)

    def to_json(self) -> JsonObject:
        return {"pid": self.pid, "passes": dict(self.passes),
                "ingest": {"batches": self.ingest_batches,
                           "write_failures": self.ingest_write_failures}}


def progress_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The file the running agent writes: in ``$RUNTIME_DIRECTORY`` (the first one, if
    systemd set several), else None (nothing is written)."""
    runtime = (os.environ if env is None else env).get(RUNTIME_ENV, "")
    first = runtime.split(":")[0]
    return Path(first) / FILE_NAME if first else None


def running_progress() -> Progress | None:
    """The running service's last snapshot, read from outside it (``replenish doctor``)."""
    return read_progress(progress_path() or DEFAULT_RUNTIME_DIR / FILE_NAME)


def read_progress(path: Path) -> Progress | None:
    """The last snapshot at ``path``; None if there is none or it is not ours."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ingest = doc["ingest"]
        passes = doc["passes"]
        return Progress(pid=int(doc["pid"]),
                        passes={str(k): int(v) for k, v in passes.items()},
                        ingest_batches=int(ingest["batches"]),
                        ingest_write_failures=int(ingest["write_failures"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class IngestCounts(Protocol):
    """What the ingest writer counts (``agent.mqtt.writer.IngestStats``)."""

    batches: int
    write_failures: int


class ProgressFile:
    """Counts completed passes per job (the scheduler's pool threads count) and writes a
    :class:`Progress` when it changed (the main loop): whole, a temporary file renamed,
    so a reader never sees half of one."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._passes: dict[str, int] = {}
        self._last: Progress | None = None

    def counted(self, job_id: str, job: Callable[[], None]) -> Callable[[], None]:
        """``job``, counted each time it returns (a pass that raised did not complete)."""

        def run() -> None:
            job()
            with self._lock:
                self._passes[job_id] = self._passes.get(job_id, 0) + 1

        run.__name__ = getattr(job, "__name__", job_id)
        return run

    def snapshot(self, ingest: IngestCounts) -> Progress:
        with self._lock:
            passes = dict(self._passes)
        return Progress(pid=os.getpid(), passes=passes, ingest_batches=ingest.batches,
                        ingest_write_failures=ingest.write_failures)

    def publish(self, ingest: IngestCounts) -> None:
        progress = self.snapshot(ingest)
        if self.path is None or progress == self._last:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(progress.to_json()), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            return  # diagnostics only: the next change tries again
        self._last = progress
