"""The optional compiled build of regiondb's hot modules (all metadata is in pyproject.toml).

``pip install .`` and ``pip install -e .`` compile the modules that ``engine/compiled.py`` lists
(``COMPILED_MODULES``: validation of untrusted changes, the item merge, the state and record
codecs) with mypyc into C extension modules, with the machine's C compiler and Python headers,
and write ``engine/_native.json`` beside them: the SHA-256 of each compiled source, which
``engine.compiled`` checks at import so that an edited source is never shadowed by stale
compiled code.

It is optional. ``REGIONDB_PURE_PYTHON=1`` at build time skips it (and removes what an earlier
in-place build left in the source tree); any failure (no mypyc, no compiler or headers, a type
or compile error) leaves a working pure-Python install and says why on stderr. The ``.py``
sources are always installed: they are the fallback and the reference.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PURE_ENV = "REGIONDB_PURE_PYTHON"
GROUP = "engine._native_lib"  # the shared library holding all compiled code, inside engine/
MANIFEST = Path("engine") / "_native.json"


def _compiled_modules() -> list[str]:
    """``COMPILED_MODULES`` read from engine/compiled.py without importing the package."""
    tree = ast.parse((ROOT / "engine" / "compiled.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "COMPILED_MODULES" for t in targets):
                assert node.value is not None
                return list(ast.literal_eval(node.value))
    raise RuntimeError("engine/compiled.py defines no COMPILED_MODULES")


def _say(message: str) -> None:
    print(f"regiondb build: {message}", file=sys.stderr, flush=True)


def _pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def _remove_compiled(base: Path) -> None:
    """Delete what an earlier build left under ``base``: every extension module of engine/
    (it has none but these, and a module dropped from the list must not linger) and the
    manifest."""
    for path in (base / "engine").glob("*.so"):
        path.unlink()
    (base / MANIFEST).unlink(missing_ok=True)


class OptionalMypycBuild(build_ext):
    """``build_ext`` that runs mypyc when the build starts and falls back to pure Python."""

    def _generate(self) -> None:
        """Replace the placeholder by mypyc's extensions (here, not in finalize_options:
        pip's metadata steps finalize build_ext too, and need no C generated)."""
        if self.extensions and self.extensions[0].sources:
            return  # already generated in this process
        self.distribution.ext_modules = self.extensions = self._mypycify()
        for ext in self.extensions:  # what setuptools' finalize_options sets on each one
            name = ext._full_name = self.get_ext_fullname(ext.name)
            self.ext_map[name] = self.ext_map[name.split(".")[-1]] = ext
            ext._links_to_dynamic = ext._needs_stub = False
            ext._file_name = self.get_ext_filename(name)

    def _mypycify(self) -> list[Extension]:
        try:
            from mypyc.build import mypycify

            paths = [m.replace(".", "/") + ".py" for m in _compiled_modules()]
            _say(f"compiling {len(paths)} modules with mypyc (set {PURE_ENV}=1 to skip)")
            exts: list[Extension] = mypycify(paths, opt_level="3", group_name=GROUP)
        except BaseException as exc:  # noqa: BLE001 - mypyc sys.exit()s on type errors
            if isinstance(exc, KeyboardInterrupt):
                raise
            _say(f"mypyc is not usable ({type(exc).__name__}: {exc}); installing pure Python")
            exts = []
        return exts

    def run(self) -> None:
        for base in self._output_dirs():
            _remove_compiled(base)
        self._generate()
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back
            traceback.print_exc(file=sys.stderr)
            self._remove_outputs()  # a partial build must not load
            _say(f"compiling failed ({type(exc).__name__}: {exc}); installing pure Python")
            self.extensions = []
            return
        self._write_manifest()

    def _output_dirs(self) -> list[Path]:
        dirs = [Path(self.build_lib)]
        if self.inplace:
            dirs.append(ROOT)
        return dirs

    def _remove_outputs(self) -> None:
        for base in self._output_dirs():
            _remove_compiled(base)

    def _write_manifest(self) -> None:
        from_ = {m: _sha256(ROOT / (m.replace(".", "/") + ".py")) for m in _compiled_modules()}
        text = json.dumps({"compiler": "mypyc", "sources": from_}, indent=1, sort_keys=True)
        for base in self._output_dirs():
            (base / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
            (base / MANIFEST).write_text(text + "\n")

    def get_outputs(self) -> list[str]:
        outputs: list[str] = super().get_outputs()
        if self.extensions:
            outputs.append(str(Path(self.build_lib) / MANIFEST))
        return outputs


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _setup_kwargs() -> dict[str, Any]:
    if _pure_requested():
        _say(f"{PURE_ENV} is set: installing pure Python")
        _remove_compiled(ROOT)
        return {}
    # A placeholder: mypyc runs only when build_ext starts (not for pip's metadata steps).
    return {"ext_modules": [Extension(f"{GROUP}__mypyc", sources=[])],
            "cmdclass": {"build_ext": OptionalMypycBuild}}


setup(**_setup_kwargs())
