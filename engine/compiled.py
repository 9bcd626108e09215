"""Which hot modules run compiled (mypyc) and which as pure Python, decided once at import.

``pip install`` compiles the modules named in :data:`COMPILED_MODULES` with mypyc when the
machine can (``setup.py``); the ``.py`` sources stay beside the extension modules, as the
fallback and as the reference the compiled ones are property-tested against
(``tests/property/test_compiled_matches_pure.py``). Both behave the same; only speed differs.

This module runs first in ``engine/__init__`` and loads the pure sources instead of the
extension modules when

* ``REGIONDB_PURE_PYTHON`` is set (to anything but ``""`` or ``"0"``) in the environment;
* the build manifest (``_native.json``, written by the build beside the extensions) is missing
  or unreadable, or does not list every module;
* any source differs from the one that was compiled (its SHA-256 is not the manifest's): an
  editable install whose ``.py`` was edited since, where running the old compiled code would
  silently ignore the edit; reinstall (``pip install -e .``) to compile it again.

It is all or nothing: compiled modules call each other directly, so a mix could run old code.
:func:`native` says what is in use, :func:`native_summary` says it in one line (shown by
``regiondb --version``, ``regiondb status`` and the benchmark report).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED_MODULES", "PURE_ENV", "check_build", "native", "native_summary"]

log = logging.getLogger(__name__)

#: The modules ``setup.py`` compiles (one home for the list: the build reads it from here).
COMPILED_MODULES = (
    "engine.checks",
    "engine.keys",
    "engine.item",
    "engine.codec",
    "engine.mergewire",
    "engine.bounded",
)
PURE_ENV = "REGIONDB_PURE_PYTHON"
MANIFEST = "_native.json"
_HERE = Path(__file__).resolve().parent

_reason = ""  # why the pure sources are used ("" while the compiled modules are)


def _source(name: str, here: Path = _HERE) -> Path:
    return here / (name.rsplit(".", 1)[1] + ".py")


def _compiled_file(name: str, here: Path = _HERE) -> Path | None:
    stem = name.rsplit(".", 1)[1]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / (stem + suffix)
        if path.is_file():
            return path
    return None


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes (what the build manifest records per source)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_build(here: Path = _HERE) -> str:
    """``""`` if the compiled modules in ``here`` can be used, else why not."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return f"{PURE_ENV}={os.environ[PURE_ENV]}"
    present = [n for n in COMPILED_MODULES if _compiled_file(n, here) is not None]
    if not present:
        return "not compiled at install"
    try:
        manifest = json.loads((here / MANIFEST).read_text())
        sources: dict[str, str] = manifest["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"the build manifest {MANIFEST} is missing or unreadable"
    missing = [n for n in COMPILED_MODULES
               if _compiled_file(n, here) is None or n not in sources]
    if missing:
        return f"not every module is compiled (missing: {', '.join(missing)})"
    for name in COMPILED_MODULES:
        src = _source(name, here)
        if src.is_file() and sha256_file(src) != sources[name]:
            return (f"{src.name} changed since it was compiled (reinstall, e.g. "
                    "`pip install -e .`, to compile it again)")
    return ""


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extension modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def _activate() -> None:
    global _reason
    _reason = check_build()
    if not _reason:
        return
    # info, not a warning: an edited source is the daily state of a checkout (the pure code
    # then runs, as it should), and native_summary() says it wherever the build is shown
    log.info("engine: running the pure-Python modules: %s", _reason)
    if any(_compiled_file(n) is not None for n in COMPILED_MODULES):
        sys.meta_path.insert(0, _PureFinder())


def native() -> tuple[str, ...]:
    """The modules running compiled, e.g. ``("engine.checks", …)``; ``()`` for pure Python.

    >>> set(native()) <= set(COMPILED_MODULES)
    True
    """
    out = []
    for name in COMPILED_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        if not (getattr(module, "__file__", None) or "").endswith(".py"):
            out.append(name)
    return tuple(out)


def native_summary() -> str:
    """One line: ``"compiled (mypyc): 7 of 7 hot modules"`` or ``"pure Python (why)"``."""
    compiled = native()
    if compiled:
        return f"compiled (mypyc): {len(compiled)} of {len(COMPILED_MODULES)} hot modules"
    return f"pure Python ({_reason or 'not compiled at install'})"


_activate()
