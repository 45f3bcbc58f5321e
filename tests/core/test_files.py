"""kbench.core.files: the atomic write every file goes through, and the "can this be written" probe."""

import os
import stat

import pytest

from kbench.core.files import atomic_write, unwritable


def test_atomic_write_writes_text_and_bytes_readable_like_any_new_file(tmp_path):
    atomic_write(tmp_path / "a.txt", "héllo\n")
    atomic_write(tmp_path / "b.png", b"\x89PNG")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.png"]  # no temporary file left


def test_atomic_write_replaces_and_a_failure_leaves_nothing_behind(tmp_path):
    atomic_write(tmp_path / "a.txt", "old")
    atomic_write(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "c.txt", 42)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "no" / "x.txt", "x")


def test_unwritable_says_why(tmp_path):
    assert unwritable(tmp_path / "new.html") is None
    assert unwritable(tmp_path) == "is a folder"
    assert unwritable(tmp_path / "no" / "x.html")  # the OS's reason: no such folder
    assert list(tmp_path.iterdir()) == []  # the probe cleans up
