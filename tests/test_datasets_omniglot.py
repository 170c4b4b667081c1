"""mom.datasets.omniglot: the bundled archive, other archives and folders, the CUB-like
split, and one clear error for each bad input."""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import mom.datasets.omniglot as om
from mom.cli import main
from mom.config import DataConfig
from mom.datasets import Omniglot, build_dataset
from mom.io import file_digests


def _png(value: int, size: int = 12) -> bytes:
    a = np.full((size, size), 255, np.uint8)
    a[2:2 + value % 8, 3] = 0  # a stroke whose length tells the drawing apart
    buf = io.BytesIO()
    Image.fromarray(a, mode="L").convert("1").save(buf, format="PNG")
    return buf.getvalue()


# 3 alphabets x 2 characters x 3 drawers = 6 classes, given out of order on purpose
LAYOUT = [("Zeta", "character02"), ("Alpha", "character01"), ("Alpha", "character02"),
          ("Mid", "character01"), ("Zeta", "character01"), ("Mid", "character02")]


def _archive(path, top="images_x", bad: str | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for c, (alphabet, char) in enumerate(LAYOUT):
            for d in (3, 1, 2):
                name = f"{top}/{alphabet}/{char}/{c:02d}_{d:02d}.png"
                zf.writestr(name, b"not a png" if name.endswith(bad or "?") else _png(c + d))
        zf.writestr(f"{top}/README.txt", "ignored")
    return path


def test_bundled_archive_is_the_published_file_with_its_licence():
    assert file_digests(om.BUNDLED_PATH)["sha256"] == om.BUNDLED_SHA256
    assert "MIT License" in (om.BUNDLED_PATH.parent / "LICENSE-omniglot.txt").read_text()


def test_bundled_splits_are_the_two_halves_of_the_characters():
    train, test = Omniglot("train"), Omniglot("test")
    assert len(train) == len(test) == 1360
    assert np.array_equal(np.unique(train.labels), np.arange(68))
    assert np.array_equal(np.unique(test.labels), np.arange(68, 136))
    assert np.array_equal(np.bincount(train.labels), np.full(68, 20))
    names = train.class_names
    assert len(names) == 136 and list(names) == sorted(names)
    assert names[0] == "Balinese/character01" and names[67] == "Greek/character22"
    assert names[68] == "Greek/character23" and names[-1].startswith("Latin/")
    img, label = test[0]
    assert img.mode == "RGB" and img.size == (105, 105) and label == 68
    a = np.asarray(img)
    assert set(np.unique(a)) <= {0, 255} and (a == 0).any()  # black ink on white paper
    assert train.fingerprint() == Omniglot("train").fingerprint() != test.fingerprint()


def test_per_class_takes_the_first_drawers_and_refuses_more_than_there_are():
    few = Omniglot("train", per_class=3)
    full = Omniglot("train")
    assert len(few) == 68 * 3
    first = np.flatnonzero(full.labels == 5)[:3]
    assert np.array_equal(few.images[few.labels == 5], full.images[first])
    with pytest.raises(ValueError, match=r"data\.per_class=21: Omniglot has 20 drawings"):
        Omniglot("test", per_class=21)
    with pytest.raises(ValueError, match="split"):
        Omniglot("validation")


def test_build_dataset_and_the_command_line_name_the_per_class_limit(tmp_path, capsys):
    ds = build_dataset(DataConfig(dataset="omniglot", per_class=2), "test")
    assert len(ds) == 136 and ds.labels.min() == 68
    out = tmp_path / "run"
    code = main(["-q", "run", "--params", "omniglot", "--out", str(out),
                 "--set", "data.per_class=25"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.per_class=25" in err[0] and "20" in err[0]
    assert not out.exists()  # refused before any folder or heavy work


def test_a_missing_or_changed_bundled_archive_is_one_error_naming_it(tmp_path, monkeypatch):
    om._read.cache_clear()
    monkeypatch.setattr(om, "BUNDLED_PATH", tmp_path / "gone.zip")
    with pytest.raises(ValueError, match="gone.zip.* is missing"):
        Omniglot("train")
    changed = tmp_path / "changed.zip"
    _archive(changed)
    monkeypatch.setattr(om, "BUNDLED_PATH", changed)
    with pytest.raises(ValueError, match="changed.zip.* is corrupt"):
        Omniglot("train")


def test_another_archive_or_folder_in_the_omniglot_layout(tmp_path):
    archive = _archive(tmp_path / "images_x.zip")
    train, test = Omniglot("train", root=archive), Omniglot("test", root=archive)
    # classes sorted by (alphabet, character): Alpha/1, Alpha/2, Mid/1 | Mid/2, Zeta/1, Zeta/2
    assert train.class_names == ("Alpha/character01", "Alpha/character02", "Mid/character01",
                                 "Mid/character02", "Zeta/character01", "Zeta/character02")
    assert np.array_equal(train.labels, np.repeat([0, 1, 2], 3))
    assert np.array_equal(test.labels, np.repeat([3, 4, 5], 3))
    # drawings in file-name order: drawer 01, 02, 03 of Alpha/character01 (written as class 1)
    expected = [np.asarray(Image.open(io.BytesIO(_png(1 + d))).convert("L")) for d in (1, 2, 3)]
    assert all(np.array_equal(train.images[i], e) for i, e in enumerate(expected))
    folder = tmp_path / "folder"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    same = Omniglot("train", root=folder)
    assert same.class_names == train.class_names
    assert np.array_equal(same.images, train.images) and np.array_equal(same.labels, train.labels)
    assert train.name == "omniglot-images_x-train"


def test_unreadable_archives_and_drawings_name_the_file(tmp_path):
    not_zip = tmp_path / "broken.zip"
    not_zip.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="broken.zip.* cannot be read"):
        Omniglot("train", root=not_zip)
    bad = _archive(tmp_path / "bad.zip", bad="Mid/character01/03_02.png")
    with pytest.raises(ValueError, match="Mid/character01/03_02.png cannot be decoded"):
        Omniglot("train", root=bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no Omniglot drawings"):
        Omniglot("train", root=empty)
    with pytest.raises(ValueError, match="does not exist"):
        Omniglot("train", root=tmp_path / "absent.zip")
