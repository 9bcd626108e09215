"""replication.atomic: no partial file is ever visible, no temp file survives an error."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.errors import SegmentError
from replication.atomic import is_temp_name, read_file_bounded, write_atomic


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.seg"
    write_atomic(target, b"first")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["a.seg"]


def test_accepts_empty_and_large(tmp_path: Path) -> None:
    write_atomic(tmp_path / "empty", b"")
    assert (tmp_path / "empty").read_bytes() == b""
    big = os.urandom(8 << 20)
    write_atomic(tmp_path / "big", big)
    assert (tmp_path / "big").read_bytes() == big


def test_no_temp_left_when_data_cannot_be_written(tmp_path: Path) -> None:
    target = tmp_path / "a.seg"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["a.seg"]
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_no_temp_left_when_the_disk_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str,
) -> None:
    """ENOSPC half-way through the write (or at fsync): the temp file is removed and the old
    file is untouched. (A non-bytes argument fails before any file exists, so it cannot show
    this.)"""
    import errno

    from replication import atomic

    target = tmp_path / "a.seg"
    write_atomic(target, b"old")
    real = getattr(os, failing)
    calls = []

    def broken(fd: int, *args: object) -> object:
        calls.append(fd)
        if failing == "write" and len(calls) == 1:
            return real(fd, bytes(args[0])[:3])  # type: ignore[arg-type]  # a short write first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new data")
    monkeypatch.undo()
    assert calls and os.listdir(tmp_path) == ["a.seg"]
    assert target.read_bytes() == b"old"


def test_no_temp_left_when_rename_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.seg"
    target.mkdir()
    (target / "occupied").write_bytes(b"")  # os.replace cannot replace a non-empty directory
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["a.seg"]
    assert target.is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            write_atomic(tmp_path / "a.seg", b"data")
        assert os.listdir(tmp_path) == []
    finally:
        tmp_path.chmod(0o700)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "a.seg", b"data")


def test_temp_names() -> None:
    assert is_temp_name(".x.seg.0a1b2c.tmp")
    assert not is_temp_name("x.seg") and not is_temp_name(".hidden") and not is_temp_name("a.tmp")


def test_readers_never_see_partial_files(tmp_path: Path) -> None:
    target = tmp_path / "state"
    versions = [bytes([i]) * (64 << 10) for i in range(1, 40)]
    write_atomic(target, versions[0])
    done = threading.Event()
    bad: list[bytes] = []

    def reader() -> None:
        while not done.is_set():
            data = target.read_bytes()
            if data not in versions:
                bad.append(data[:16])
            for name in os.listdir(tmp_path):
                if name != "state" and not is_temp_name(name):
                    bad.append(name.encode())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for data in versions[1:]:
            write_atomic(target, data)
    finally:
        done.set()
        thread.join(timeout=30)
    assert bad == []
    assert target.read_bytes() == versions[-1]


def test_read_file_bounded(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_file_bounded(path, 100) == b"x" * 100
    with pytest.raises(SegmentError, match="file is 100 bytes, over the limit of 99") as info:
        read_file_bounded(path, 99)
    assert info.value.path == path


def test_read_file_bounded_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_file_bounded(tmp_path / "missing", 10)
