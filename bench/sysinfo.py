"""What the numbers were measured on: machine, versions, storage, source revision."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lmdb

__all__ = ["machine_info"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _fs_of(path: str) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/mounts)."""
    try:
        best, fstype = "", "unknown"
        real = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mnt = parts[1]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, f"{parts[2]} ({parts[0]} on {mnt})"
        return fstype
    except OSError:
        return "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        return rev or None
    except (OSError, subprocess.SubprocessError):
        return None


def _regiondb_build() -> dict[str, Any]:
    """Whether the engine's hot modules ran compiled (mypyc) or as pure Python."""
    try:
        import engine

        return {"summary": engine.native_summary(), "compiled": list(engine.native())}
    except Exception as exc:  # noqa: BLE001 - the report still says what it can
        return {"summary": f"unknown ({type(exc).__name__}: {exc})", "compiled": []}


def machine_info() -> dict[str, Any]:
    """A JSON-able description of the machine and software versions."""
    try:
        import cbor2._cbor2  # noqa: F401 - the C extension, if built

        cbor2_impl = "C extension"
    except ImportError:
        cbor2_impl = "pure Python"
    tmp = tempfile.gettempdir()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "lmdb_binding": lmdb.__version__,
        "lmdb_library": ".".join(map(str, lmdb.version())),
        "cbor2": f"{_version('cbor2')} ({cbor2_impl})",
        "regiondb_build": _regiondb_build(),
        "sqlite": sqlite3.sqlite_version,
        "pytest_benchmark": _version("pytest-benchmark"),
        "matplotlib": _version("matplotlib"),
        "temp_dir": tmp,
        "temp_fs": _fs_of(tmp),
        "git_revision": _git_revision(),
    }
