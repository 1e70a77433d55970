"""The footprint benchmark's split of write_bytes by file: 4 KB pages written between
two syncs of their file count once (the page cache charges a page when it turns dirty)."""

from __future__ import annotations

from bench.footprint_files import pages_by_file

TRACE = """\
101 openat(AT_FDCWD, "/d/a.db-wal", O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0644) = 5
101 pwrite64(5, "\\0\\0\\0\\1"..., 24, 4072) = 24
101 pwrite64(5, "\\r\\0\\0\\0"..., 1024, 4096) = 1024
101 fdatasync(5)                      = 0
101 pwrite64(5, "\\0\\0"..., 24, 5120) = 24
102 pwrite64(3, "SQLite format 3\\0"..., 1024, 0 <unfinished ...>
101 pwrite64(5, "\\r\\0"..., 1024, 5144) = 1024
102 <... pwrite64 resumed>)           = 1024
101 fdatasync(5)                      = 0
102 pwrite64(3, "\\r\\0"..., 1024, 1024) = 1024
102 fdatasync(3 <unfinished ...>
"""


def test_pages_dirtied_between_syncs_count_once_per_file() -> None:
    charged, syncs = pages_by_file(TRACE, {3: "/d/a.db"})
    # WAL: pages 0 and 1, then page 1 again after the sync; db: page 0 once.
    assert charged == {"/d/a.db-wal": 3 * 4096, "/d/a.db": 4096}
    assert syncs == {"/d/a.db-wal": 2, "/d/a.db": 1}
