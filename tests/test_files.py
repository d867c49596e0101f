import os
import stat

import pytest

from posec3d.files import atomic_write, atomic_write_text


def test_atomic_write_replaces_and_keeps_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as f:
            f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_commit_file_moves_a_finished_temporary_file_over_the_target(tmp_path):
    from posec3d.files import commit_file

    target, part = tmp_path / "model.pth", tmp_path / "model.pth.part"
    target.write_bytes(b"old")
    part.write_bytes(b"complete download")
    commit_file(part, target)
    assert target.read_bytes() == b"complete download"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]
