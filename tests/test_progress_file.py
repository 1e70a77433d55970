"""The running agent's progress file: passes completed per job and ingest writes, as data
that doctor and the tests' positive markers read (agent.ops.progress)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.ops.progress import FILE_NAME, ProgressFile, progress_path, read_progress


@dataclass
class Counts:
    batches: int = 0
    write_failures: int = 0


def test_counts_completed_passes_and_writes_them_whole(tmp_path: Path) -> None:
    progress = ProgressFile(tmp_path / FILE_NAME)
    calls: list[str] = []
    dispatch = progress.counted("dispatch", lambda: calls.append("dispatch"))

    def failing() -> None:
        raise RuntimeError("a pass that raised")

    decide = progress.counted("decide", failing)
    dispatch()
    dispatch()
    with pytest.raises(RuntimeError):
        decide()
    progress.publish(Counts(batches=7, write_failures=2))
    seen = read_progress(tmp_path / FILE_NAME)
    assert seen is not None
    assert (seen.pid, dict(seen.passes)) == (os.getpid(), {"dispatch": 2})
    assert (seen.ingest_batches, seen.ingest_write_failures) == (7, 2)
    assert calls == ["dispatch", "dispatch"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no temporary left


def test_unchanged_counts_are_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    progress = ProgressFile(path)
    progress.publish(Counts(batches=1))
    path.write_text("marker")  # only a new write would replace it
    progress.publish(Counts(batches=1))
    assert path.read_text() == "marker"
    progress.publish(Counts(batches=2))
    seen = read_progress(path)
    assert seen is not None and seen.ingest_batches == 2


def test_runtime_directory_names_the_file_and_none_means_no_file(tmp_path: Path) -> None:
    assert progress_path({"RUNTIME_DIRECTORY": f"{tmp_path}:/run/other"}) == tmp_path / FILE_NAME
    assert progress_path({}) is None
    ProgressFile(None).publish(Counts(batches=1))  # a run outside systemd writes nothing
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "{", "[]", '{"pid": 1}', '{"pid": "x", "passes": {}, '
                                  '"ingest": {"batches": 0, "write_failures": 0}}'])
def test_a_file_that_is_not_ours_reads_as_none(tmp_path: Path, text: str) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(text)
    assert read_progress(path) is None
    assert read_progress(tmp_path / "missing.json") is None


def test_doctor_shows_the_running_agents_progress(tmp_path: Path) -> None:
    from agent.ops.doctor import Level, Probes, check_progress

    progress = ProgressFile(tmp_path / FILE_NAME)
    progress.counted("dispatch", lambda: None)()
    progress.publish(Counts(batches=12, write_failures=3))
    seen = check_progress(Probes(progress=lambda: read_progress(tmp_path / FILE_NAME)))
    assert seen.level is Level.OK
    assert seen.summary == f"agent pid {os.getpid()}, passes: dispatch 1"
    assert seen.details == ("ingest: 12 commits, 3 failed writes",)
    none = check_progress(Probes(progress=lambda: None))
    assert none.level is Level.OK and "no progress file" in none.summary
