"""What ``replenish doctor`` reports: a check's verdict, the probes of the outside world
the checks see, and the two renderings (text for people, JSON for tools)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from agent.ops.progress import Progress, running_progress
from agent.ops.systemd import service_status_text

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

# The clock can be no earlier than this release; a Pi without RTC or network often boots
# in 1970 or at the last shutdown time. Raise it with each release.
RELEASE_NOT_BEFORE = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
# The clock can be no earlier than this release; a Pi without RTC or network often boots
# in 1970 or at the last shutdown time. Raise it with each release.


class CheckJson(TypedDict):
    """One check in ``doctor --json``."""

    name: str
    level: str
    summary: str
    fix: str
    details: list[str]


class ReportJson(TypedDict):
    """``doctor --json``."""

    result: str
    exit_code: int
    checks: list[CheckJson]


class Level(IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(slots=True, frozen=True)
class CheckResult:
    """One check's verdict; ``fix`` is empty when there is nothing to do."""

    name: str
    level: Level
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()

    def as_dict(self) -> CheckJson:
        return {
            "name": self.name,
            "level": self.level.name,
            "summary": self.summary,
            "fix": self.fix,
            "details": list(self.details),
        }


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every check is OK, 1 with a warning, 3 with a failure."""
    worst = max((r.level for r in results), default=Level.OK)
    return {Level.OK: 0, Level.WARN: 1, Level.FAIL: 3}[worst]


def _disk_usage(path: Path) -> DiskUsage:
    return DiskUsage(*shutil.disk_usage(path))


@dataclass(slots=True)
class Probes:
    """The outside world as the checks see it; tests replace single pieces."""

    clock: Callable[[], float] = time.time
    # None: ask the kernel (agent.ops.systemd.clock_synchronized) at check time.
    synchronized: Callable[[], bool | None] | None = None
    disk_usage: Callable[[Path], DiskUsage] = _disk_usage
    vendor_transport: httpx.BaseTransport | None = None
    timeout_s: float = 5.0
    not_before: float = RELEASE_NOT_BEFORE
    # The running service's STATUS= line; None when it is not running under systemd.
    service_status: Callable[[], str | None] = service_status_text
    # The running service's progress file (agent.ops.progress); None without one.
    progress: Callable[[], Progress | None] = running_progress


def render_text(results: Sequence[CheckResult]) -> str:
    """The human report: one line per check, then its details and fix indented."""
    lines = []
    for r in results:
        lines.append(f"{r.level.name:<5} {r.name:<9} {r.summary}")
        lines.extend(f"{'':16}{d}" for d in r.details)
        if r.fix and r.level is not Level.OK:
            lines.append(f"{'':16}fix: {r.fix}")
    code = exit_code(results)
    lines.append({0: "all checks OK", 1: "warnings (exit 1)", 3: "failures (exit 3)"}[code])
    return "\n".join(lines)


def as_json(results: Sequence[CheckResult]) -> ReportJson:
    """The machine report (``--json``)."""
    code = exit_code(results)
    return {
        "result": {0: "ok", 1: "warn", 3: "fail"}[code],
        "exit_code": code,
        "checks": [r.as_dict() for r in results],
    }
