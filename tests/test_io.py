"""mom.io: atomic writes leave either the old file or the complete new one."""
import errno
import json
import os
import re

import numpy as np
import pytest

from mom import io


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with io.atomic_write(p, "w") as fh:
        fh.write("new")
        assert p.read_text() == "old"  # not visible before the block ends
    assert p.read_text() == "new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_exception_keeps_old_file(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with io.atomic_write(p) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_write_oserror_names_path(tmp_path, monkeypatch):
    p = tmp_path / "full.bin"

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", no_space)
    with pytest.raises(OSError, match="full.bin") as info:
        with io.atomic_write(p) as fh:
            fh.write(b"x")
    assert info.value.errno == errno.ENOSPC
    assert not p.exists() and os.listdir(tmp_path) == []


def test_atomic_write_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with io.atomic_write(tmp_path / "nope" / "x.json", "w"):
            pass


def test_json_roundtrip_sorted_and_numpy(tmp_path):
    p = tmp_path / "r.json"
    io.save_json(p, {"b": np.float32(1.5), "a": np.arange(3), "c": tmp_path})
    text = p.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert io.load_json(p) == {"a": [0, 1, 2], "b": 1.5, "c": str(tmp_path)}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="bad.json"):
        io.load_json(tmp_path / "bad.json")


def test_npz_roundtrip_and_sha(tmp_path):
    p = tmp_path / "x.npz"
    io.save_npz(p, a=np.arange(5, dtype=np.int64), b=np.ones((2, 2), np.float32))
    d = io.load_npz(p)
    np.testing.assert_array_equal(d["a"], np.arange(5))
    assert d["b"].dtype == np.float32
    h = io.sha256_file(p)
    assert len(h) == 64 and h == io.sha256_file(p)
    io.save_npz(p, a=np.arange(6))
    assert io.sha256_file(p) != h
    import hashlib
    data = p.read_bytes()
    assert io.file_digests(p, chunk=7) == {"md5": hashlib.md5(data).hexdigest(),
                                           "sha256": hashlib.sha256(data).hexdigest()}


def test_env_info_keys():
    info = io.env_info()
    for key in ("python", "torch", "numpy", "faiss", "mom", "git_commit"):
        assert key in info
    json.dumps(info)


def test_save_json_writes_non_finite_numbers_as_null(tmp_path):
    import json as _json

    import numpy as _np

    from mom.io import save_json
    path = tmp_path / "r.json"
    save_json(path, {"a": float("nan"), "b": [_np.float32(_np.inf), 1.5], "c": _np.array([_np.nan, 2.0])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _json.loads(text) == {"a": None, "b": [None, 1.5], "c": [None, 2.0]}


def test_save_npy_round_trips_and_leaves_no_temp_file(tmp_path):
    import numpy as _np

    from mom.io import save_npy
    path = tmp_path / "a.npy"
    save_npy(path, _np.arange(6, dtype=_np.float32).reshape(2, 3))
    assert _np.array_equal(_np.load(path), _np.arange(6, dtype=_np.float32).reshape(2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_remove_stale_temps_deletes_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("previous")
    writer = io.atomic_write(target, "w")
    fh = writer.__enter__()  # a process killed here leaves its temp file behind
    fh.write("half")
    fh.flush()
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1
    (tmp_path / "other.tmp").write_text("not ours")
    io.remove_stale_temps(target)
    fh.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "other.tmp"]
    assert target.read_text() == "previous"


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(p):
    return os.stat(p).st_mode & 0o777


@pytest.mark.parametrize("writer", ["atomic_write", "save_json", "save_npy", "save_npz"])
def test_atomic_files_get_the_mode_of_a_plain_write(tmp_path, umask_027, writer):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open(path, "w") gives under this umask
    assert _mode(plain) == 0o640
    target = tmp_path / "new.out"
    if writer == "atomic_write":
        with io.atomic_write(target, "w") as fh:
            fh.write("x")
    elif writer == "save_json":
        io.save_json(target, {"a": 1})
    elif writer == "save_npy":
        io.save_npy(target, np.zeros(2))
    else:
        io.save_npz(target, a=np.zeros(2))
    assert _mode(target) == _mode(plain) == 0o666 & ~umask_027


def test_atomic_write_follows_the_umask_and_keeps_an_existing_files_mode(tmp_path):
    old = os.umask(0o002)
    try:
        with io.atomic_write(tmp_path / "group.txt", "w") as fh:
            fh.write("x")
        assert _mode(tmp_path / "group.txt") == 0o664
        existing = tmp_path / "kept.txt"
        existing.write_text("old")
        os.chmod(existing, 0o600)
        with io.atomic_write(existing, "w") as fh:  # a plain write keeps the mode too
            fh.write("new")
        assert _mode(existing) == 0o600 and existing.read_text() == "new"
    finally:
        os.umask(old)


def test_umask_is_read_without_being_changed():
    old = os.umask(0o037)
    try:
        assert io._umask() == 0o037
        assert os.umask(0o037) == 0o037  # still what the test set
    finally:
        os.umask(old)


def test_check_output_path_accepts_writable_places(tmp_path):
    (tmp_path / "old.npy").write_bytes(b"x")
    assert io.check_output_path(tmp_path / "new.npy") == tmp_path / "new.npy"
    assert io.check_output_path(tmp_path / "old.npy")  # replaced later
    assert io.check_output_path(str(tmp_path), "dir") == tmp_path
    assert io.check_output_path(tmp_path / "a" / "b" / "c", "dir")  # made later, parents too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npy"]  # nothing created


@pytest.mark.parametrize("make, target, kind, message", [
    ("dir", "out", "file", "is a directory; expected a file"),
    ("file", "out", "dir", "exists and is not a directory"),
    ("file", "out/x.npy", "file", "'{tmp}/out' is a file, not a directory"),
    ("file", "out/deeper/x.npy", "file", "'{tmp}/out' is a file, not a directory"),
    ("file", "out/run", "dir", "'{tmp}/out' is a file, not a directory"),
    (None, "missing/x.npy", "file", "directory '{tmp}/missing' does not exist"),
])
def test_check_output_path_refuses_naming_the_path(tmp_path, make, target, kind, message):
    if make == "dir":
        (tmp_path / "out").mkdir()
    elif make == "file":
        (tmp_path / "out").write_text("a file")
    before = sorted(tmp_path.rglob("*"))
    path = tmp_path / target
    with pytest.raises(ValueError, match=re.escape(message.replace("{tmp}", str(tmp_path)))) as info:
        io.check_output_path(path, kind)
    assert str(path) in str(info.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_check_output_path_refuses_a_read_only_directory(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    # chmod does not stop root, so os.access answers as for a read-only folder
    monkeypatch.setattr(io.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    with pytest.raises(ValueError, match=f"directory '{ro}' is not writable"):
        io.check_output_path(ro / "x.json")
    with pytest.raises(ValueError, match="not writable"):
        io.check_output_path(ro / "sub" / "run", "dir")
    assert io.check_output_path(tmp_path / "x.json")


def test_check_output_path_kind():
    with pytest.raises(ValueError, match="kind"):
        io.check_output_path("x", "folder")


def test_check_output_path_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match=rf"^--labels-out '{re.escape(str(tmp_path))}' is a directory"):
        io.check_output_path(tmp_path, "file", what="--labels-out")
