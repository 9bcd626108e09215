"""Fresh stores in fresh temporary directories, always removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .backends import Backend, make_backend

__all__ = ["opened", "scratch_dir"]


@contextmanager
def scratch_dir(prefix: str = "regiondb-bench-") -> Iterator[Path]:
    """A new directory under the system temp dir, removed on exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def opened(name: str) -> Iterator[Backend]:
    """An opened backend on a fresh store; closed and deleted on exit."""
    backend = make_backend(name)
    with scratch_dir(f"regiondb-bench-{name}-") as root:
        backend.open(root)
        try:
            yield backend
        finally:
            backend.close()
