"""All-or-nothing changes to a handful of configuration files.

Provisioning touches several files per command (password file, device registry, ACL,
certificates, mosquitto.conf). A failure halfway, say a missing template after the
password line was written, used to leave a device half-registered: the retry was refused
("exists") and the password had never been shown. A :class:`FileTransaction` remembers
each file's bytes (or its absence) before the first change and puts every one of them
back when the block raises, so a failed command leaves no trace and a retry works.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class FileTransaction:
    """Snapshot files before changing them; restore all of them if the block fails.

    ``track(path)`` before writing a file; ``track_tree(path)`` before something (a
    script) may create a directory: if it did not exist, it is removed on failure.
    """

    def __init__(self) -> None:
        self._files: dict[Path, tuple[bytes, os.stat_result] | None] = {}
        self._trees: list[Path] = []

    def track(self, *paths: Path) -> None:
        for path in paths:
            if path in self._files:
                continue
            try:
                self._files[path] = (path.read_bytes(), path.stat())
            except FileNotFoundError:
                self._files[path] = None

    def track_tree(self, path: Path) -> None:
        if not path.exists() and path not in self._trees:
            self._trees.append(path)

    def __enter__(self) -> FileTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.rollback()

    def rollback(self) -> None:
        """Put every tracked file back as it was; best effort, never raises."""
        for path, before in self._files.items():
            try:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    data, st = before
                    tmp = path.with_name(f".{path.name}.rollback")
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                    os.chmod(tmp, st.st_mode & 0o7777)
                    if os.geteuid() == 0:  # mosquitto reads some of these via its group
                        os.chown(tmp, st.st_uid, st.st_gid)
                    os.replace(tmp, path)
            except OSError as err:
                log.warning("provision.rollback_failed path=%s reason=%s", path, err.strerror)
        for tree in reversed(self._trees):
            shutil.rmtree(tree, ignore_errors=True)
