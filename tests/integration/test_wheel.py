"""The wheel built from this tree works as well as the editable install.

Users install wheels: a test builds one, installs it into a fresh venv (with the core
dependencies only, taken from the test environment's own site-packages so no registry is
needed), and runs the ``regiondb`` command and the README quickstart from that venv, outside
the source tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "replication", "regiondb")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
          "-w", str(base / "dist"), str(ROOT)], cwd=base)
    (whl,) = (base / "dist").glob("regiondb-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for top in PACKAGES:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.relative_to(ROOT).as_posix()
            assert rel in names, f"the wheel lacks {rel}"
        assert f"{top}/py.typed" in names, f"the wheel lacks {top}/py.typed"
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    py = venv / "bin" / "python"
    # a real pip install of the wheel (console script included), outside the source tree;
    # the core dependencies come from the test environment through a .pth, so no index is
    # needed and the editable checkout stays invisible
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(whl)],
         cwd=base)
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=base).stdout.strip()
    deps = Path(sysconfig.get_paths()["purelib"])
    (Path(site) / "zz_test_deps.pth").write_text(f"{deps}\n")
    return venv


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.integration
def test_wheel_imports_from_site_packages_not_the_checkout(wheel_venv: Path,
                                                           tmp_path: Path) -> None:
    out = _run([str(wheel_venv / "bin" / "python"), "-c",
                "import engine, replication, regiondb, regiondb.cli, regiondb.demo;"
                "print(regiondb.__file__)"], cwd=tmp_path, env=_clean_env(wheel_venv)).stdout
    assert str(wheel_venv) in out and str(ROOT) not in out


@pytest.mark.integration
def test_wheel_is_compiled_as_the_checkout_is(wheel_venv: Path, tmp_path: Path) -> None:
    """Built on the same machine, the wheel compiles (or falls back) as the editable install."""
    import engine

    out = _run([str(wheel_venv / "bin" / "python"), "-c",
                "import engine; print(engine.native_summary())"], cwd=tmp_path,
               env={**_clean_env(wheel_venv), "REGIONDB_PURE_PYTHON": ""}).stdout
    assert out.strip() == engine.native_summary().replace("REGIONDB_PURE_PYTHON=1",
                                                          "not compiled at install")


@pytest.mark.integration
def test_wheel_command_help_and_init(wheel_venv: Path, tmp_path: Path) -> None:
    env = _clean_env(wheel_venv)
    helptext = _run(["regiondb", "--help"], cwd=tmp_path, env=env).stdout
    assert "usage: regiondb" in helptext and "create-table" in helptext
    out = _run(["regiondb", "init", "store", "--region", "eu-west-1"], cwd=tmp_path,
               env=env).stdout
    assert "eu-west-1" in out
    _run(["regiondb", "create-table", "store", "orders", "--partition-key", "id"],
         cwd=tmp_path, env=env)
    _run(["regiondb", "put", "store", "orders", '{"id": "o1", "total": 5}'], cwd=tmp_path,
         env=env)
    got = _run(["regiondb", "get", "store", "orders", "o1"], cwd=tmp_path, env=env).stdout
    assert '"total": 5' in got


@pytest.mark.integration
def test_wheel_runs_the_readme_quickstart(wheel_venv: Path, tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert code, "README has no quickstart block"
    proc = _run([str(wheel_venv / "bin" / "python"), "-c", code.group(1)], cwd=tmp_path,
                env=_clean_env(wheel_venv), timeout=120)
    assert "'status': 'SHIPPED'" in proc.stdout
