"""Atomic, durable file writes and bounded file reads for segment and state files.

Invariants:

- :func:`write_atomic` never leaves a partial file under the final name: the bytes go to a
  temporary file in the same directory (so ``os.replace`` is a same-filesystem rename), are
  fsynced, renamed over the target, and the directory is fsynced so the rename survives a crash.
- Temporary names start with ``.`` and end with ``.tmp``; mailbox readers ignore such names.
  On any error the temporary file is removed and the target is untouched.
- :func:`read_file_bounded` never reads more than ``max_bytes + 1`` bytes, whatever the file
  claims or becomes while being read.

I/O failures (``ENOSPC``, permissions, a missing directory) surface as ``OSError``: they are the
environment's, not bad input.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from engine.errors import SegmentError

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "is_temp_name", "read_file_bounded", "write_atomic"]

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for names of in-progress writes, which readers must skip."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or all of the new one.

    :raises OSError: if writing, syncing or renaming fails; no temporary file is left behind.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    view = memoryview(data)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename is only durable once the directory entry is on disk.
    _fsync_dir(directory)


def read_file_bounded(path: Path, max_bytes: int) -> bytes:
    """Read a whole file of at most ``max_bytes`` bytes.

    :raises SegmentError: if the file is larger (checked before reading, and again while
        reading in case it grows), naming ``path``.
    :raises OSError: if the file cannot be opened or read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise SegmentError(f"file is {size} bytes, over the limit of {max_bytes}", path=path)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SegmentError(f"file grew past the limit of {max_bytes} bytes", path=path)
    return data
