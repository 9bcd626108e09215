"""Root pytest configuration: the doctest collection of ``--doctest-modules`` (pyproject) must
not import a module's ``.py`` file by path when its compiled build is the module in use (the
two would clash: "import file mismatch"). The compiled modules hold no doctests; their pure
sources are tested against the compiled ones in tests/property/test_compiled_matches_pure.py.
"""

from __future__ import annotations

from pathlib import Path

import engine

_ROOT = Path(__file__).resolve().parent
_SHADOWED = {_ROOT / (name.replace(".", "/") + ".py") for name in engine.native()}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Skip the ``.py`` file of each module that runs compiled (``None``: pytest decides)."""
    return True if collection_path.resolve() in _SHADOWED else None


