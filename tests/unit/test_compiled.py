"""engine.compiled: which build of the hot modules runs, and the refusal of stale builds.

The compiled-equals-pure property tests are in ``tests/property/test_compiled_matches_pure.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import engine
from engine import compiled

ROOT = Path(__file__).resolve().parents[2]


def test_native_names_what_runs_compiled() -> None:
    names = engine.native()
    assert set(names) <= set(compiled.COMPILED_MODULES)
    for name in compiled.COMPILED_MODULES:
        file = sys.modules[name].__file__ or ""
        assert file.endswith(".py") == (name not in names), (name, file)
    summary = engine.native_summary()
    if names:
        assert summary == f"compiled (mypyc): {len(names)} of {len(names)} hot modules"
    else:
        assert summary.startswith("pure Python (")


def _run(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pure_python_forced_at_run_time() -> None:
    out = _run("import engine, engine.codec as c; print(engine.native(), c.__file__);"
               "print(engine.native_summary())", REGIONDB_PURE_PYTHON="1")
    first, second = out.splitlines()
    assert first.startswith("() ") and first.endswith("codec.py")
    assert second == "pure Python (REGIONDB_PURE_PYTHON=1)"


def test_version_and_status_say_which_build(tmp_path: Path) -> None:
    out = _run("from regiondb.cli import main; main(['--version'])")
    assert f"(engine: {engine.native_summary()})" in out
    store = tmp_path / "s"
    _run(f"from regiondb.cli import main; main(['init', {str(store)!r}, '--region', 'r'])")
    out = _run(f"from regiondb.cli import main; main(['status', {str(store)!r}])")
    assert f"engine     {engine.native_summary()}" in out


def _fake_build(here: Path, *, digest: str | None = None) -> None:
    """A directory laid out as an installed compiled build (empty extension files)."""
    sources = {}
    for name in compiled.COMPILED_MODULES:
        stem = name.rsplit(".", 1)[1]
        (here / f"{stem}.py").write_text(f"# {stem}\n")
        (here / f"{stem}{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
        sources[name] = digest or compiled.sha256_file(here / f"{stem}.py")
    (here / compiled.MANIFEST).write_text(json.dumps({"sources": sources}))


def test_a_matching_build_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    _fake_build(tmp_path)
    assert compiled.check_build(tmp_path) == ""
    monkeypatch.setenv(compiled.PURE_ENV, "0")  # "0" does not force pure Python
    assert compiled.check_build(tmp_path) == ""


def test_an_edited_source_is_never_shadowed(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    _fake_build(tmp_path)
    (tmp_path / "codec.py").write_text("# edited since the build\n")
    assert compiled.check_build(tmp_path) == (
        "codec.py changed since it was compiled (reinstall, e.g. `pip install -e .`, to "
        "compile it again)")


def test_incomplete_builds_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    assert compiled.check_build(tmp_path) == "not compiled at install"
    _fake_build(tmp_path)
    (tmp_path / compiled.MANIFEST).write_text("{not json")
    assert "missing or unreadable" in compiled.check_build(tmp_path)
    _fake_build(tmp_path)
    (tmp_path / f"keys{EXTENSION_SUFFIXES[0]}").unlink()
    assert compiled.check_build(tmp_path) == (
        "not every module is compiled (missing: engine.keys)")
    monkeypatch.setenv(compiled.PURE_ENV, "yes")
    assert compiled.check_build(tmp_path) == "REGIONDB_PURE_PYTHON=yes"
