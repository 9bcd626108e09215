"""The layering inside the packages: nothing reaches into the Store's private state.

The engine's modules take an :class:`engine.context.Context` (what they need of an open
store), never the Store; replication and the product use the Store's public API only; the
replication hub knows sessions by a Protocol, not by importing them. These tests parse the
source, so a regression fails here whether or not any behaviour test notices it.
"""

from __future__ import annotations

import ast
import pathlib

import engine

ROOT = pathlib.Path(engine.__file__).parent.parent
PACKAGES = ("engine", "replication", "regiondb")


def _private_names(path: pathlib.Path, cls: str) -> set[str]:
    """Private (single-underscore) methods and instance attributes of class ``cls``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(sub.name)
            elif (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                  and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                names.add(sub.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _sources(skip: set[str]) -> list[pathlib.Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if str(p.relative_to(ROOT)) not in skip]


def _reaches(path: pathlib.Path, private: set[str]) -> list[str]:
    """Uses of ``x._name`` (``x`` anything but ``self``/``cls``) for ``_name`` in ``private``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(f"{where}:{node.lineno}: .{node.attr}")
    return found


def test_the_checks_can_fail(tmp_path: pathlib.Path) -> None:
    """The checks below would pass vacuously if the parsing found nothing."""
    store = _private_names(ROOT / "engine" / "store.py", "Store")
    assert {"_ctx", "_e", "_wall"} <= store
    assert {"_env", "_tables", "_listeners"} <= _private_names(
        ROOT / "engine" / "context.py", "Context")
    bad = tmp_path / "bad.py"
    bad.write_text("def f(store, t):\n    self._e()\n    return store._e().items, "
                   "t._store._ctx\n")
    assert sorted(f.split(": ")[1] for f in _reaches(bad, store)) == ["._ctx", "._e"]


def test_no_module_reaches_into_the_store() -> None:
    """Only ``engine/store.py`` touches a private attribute of a Store (``store._e()``,
    ``store._wall``, ``self._store._commit_local``, …): the rest use its public API or, inside
    the engine, the Context the Store passes them."""
    private = _private_names(ROOT / "engine" / "store.py", "Store")
    bad = [f for p in _sources({"engine/store.py"}) for f in _reaches(p, private)]
    assert bad == []


def test_no_module_reaches_into_the_context() -> None:
    """The Context's own state (environment, listeners, table cache) is its business."""
    private = _private_names(ROOT / "engine" / "context.py", "Context")
    bad = [f for p in _sources({"engine/context.py"}) for f in _reaches(p, private)]
    assert bad == []


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of the modules ``path`` imports, at any depth (inside functions and
    ``if TYPE_CHECKING:`` blocks too)."""
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_engine_modules_do_not_import_the_store() -> None:
    """The Store imports its modules, never the reverse (not even for type checking)."""
    allowed = {"engine/store.py", "engine/__init__.py"}
    bad = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "engine").rglob("*.py"))
           if str(p.relative_to(ROOT)) not in allowed and "engine.store" in _imports(p)]
    assert bad == []


def test_replication_hub_does_not_import_sessions() -> None:
    """``peers`` (the hub) ← ``session``: one way; the hub knows a session by a Protocol."""
    assert "replication.session" not in _imports(ROOT / "replication" / "peers.py")
    assert "replication.peers" in _imports(ROOT / "replication" / "session.py")
