"""mom.datasets.idx: IDX parsing against files written independently."""
import gzip
import struct

import numpy as np
import pytest

from data_fixtures import idx_bytes
from mom.datasets import read_idx


@pytest.mark.parametrize("gz", [False, True])
def test_roundtrip_uint8(tmp_path, gz):
    a = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    raw = idx_bytes(a)
    p = tmp_path / ("x.gz" if gz else "x")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(p)
    assert out.dtype == np.uint8 and np.array_equal(out, a)


def test_big_endian_int32(tmp_path):
    vals = [1, -2, 70000]
    raw = struct.pack(">HBBI", 0, 0x0C, 1, 3) + struct.pack(">3i", *vals)
    (tmp_path / "i").write_bytes(raw)
    out = read_idx(tmp_path / "i")
    assert out.dtype == np.int32 and out.dtype.isnative and list(out) == vals


def test_bad_magic(tmp_path):
    (tmp_path / "m").write_bytes(b"\x01\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "m")


def test_unknown_type(tmp_path):
    (tmp_path / "t").write_bytes(struct.pack(">HBBI", 0, 0x07, 1, 0))
    with pytest.raises(ValueError, match="type code"):
        read_idx(tmp_path / "t")


def test_truncated_data_names_file(tmp_path):
    raw = idx_bytes(np.zeros((4, 3, 3), np.uint8))
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="short.*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(tmp_path / "long")


def test_truncated_header_and_gzip(tmp_path):
    (tmp_path / "h").write_bytes(struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00")
    with pytest.raises(ValueError, match="header"):
        read_idx(tmp_path / "h")
    gz = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "g.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="g.gz"):
        read_idx(tmp_path / "g.gz")
