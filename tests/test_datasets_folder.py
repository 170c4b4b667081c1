"""mom.datasets.folder and build_dataset: class folders, sorted order, clear errors, dispatch."""
import numpy as np
import pytest

from data_fixtures import make_cub, make_folder, make_oxford, write_jpeg
from mom.config import DataConfig
from mom.datasets import CUB200, FashionMNIST, ImageFolder, build_dataset


def test_class_folders_sorted(tmp_path):
    make_folder(tmp_path, classes=("zebra", "ant"), per_class=2)
    write_jpeg(tmp_path / "ant" / "deeper" / "x.PNG")  # recursive, extension case-insensitive
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.class_names == ["ant", "zebra"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1]
    assert [p.split("/")[-1] for p in ds.paths] == ["x.PNG", "img_0.jpg", "img_1.jpg",
                                                     "img_0.jpg", "img_1.jpg"]
    assert ds[4][0].mode == "RGB" and ds.name == f"folder-{tmp_path.name}"


def test_unlabeled_flat_folder(tmp_path):
    write_jpeg(tmp_path / "b.jpg")
    write_jpeg(tmp_path / "a.jpg")
    ds = ImageFolder(tmp_path)
    assert ds.labels.tolist() == [-1, -1] and ds.paths[0].endswith("a.jpg")


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    make_folder(tmp_path, classes=("a",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="without images.*empty"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").rmdir()
    write_jpeg(tmp_path / "loose.jpg")
    with pytest.raises(ValueError, match="loose"):
        ImageFolder(tmp_path)


def test_build_dataset_fashion_and_cub(tmp_path):
    ds = build_dataset(DataConfig(per_class=2), "test")
    assert isinstance(ds, FashionMNIST)
    assert sorted(ds.labels.tolist()) == [5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    make_cub(tmp_path)
    cub = build_dataset(DataConfig(dataset="cub200", root=str(tmp_path)), "test")
    assert isinstance(cub, CUB200) and len(cub) == 5
    capped = build_dataset(DataConfig(dataset="cub200", root=str(tmp_path), per_class=2), "test")
    assert capped.labels.tolist() == [100, 100, 101, 101]
    assert capped.paths == cub.paths[:4]
    with pytest.raises(ValueError, match="data.root"):
        build_dataset(DataConfig(dataset="cub200"), "train")
    with pytest.raises(ValueError, match="DataConfig.dataset: expected one of"):
        build_dataset(DataConfig(dataset="mnist"), "train")


def test_build_dataset_folder_splits(tmp_path):
    make_folder(tmp_path / "f", classes=("a", "b", "c"), per_class=2)
    cfg = DataConfig(dataset="folder", root=str(tmp_path / "f"))
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.labels.tolist() == [0, 0, 1, 1] and test.labels.tolist() == [2, 2]
    assert len(build_dataset(cfg, "all")) == 6
    make_folder(tmp_path / "g" / "train", classes=("a",))
    make_folder(tmp_path / "g" / "test", classes=("b", "c"))
    g = DataConfig(dataset="folder", root=str(tmp_path / "g"))
    assert len(build_dataset(g, "train")) == 2 and len(build_dataset(g, "test")) == 4
    write_jpeg(tmp_path / "flat" / "x.jpg")
    flat = DataConfig(dataset="folder", root=str(tmp_path / "flat"))
    assert build_dataset(flat, "train").labels.tolist() == [-1]
    with pytest.raises(ValueError, match="no labeled test"):
        build_dataset(flat, "test")


@pytest.mark.parametrize("per_class", [None, 3])
def test_a_folder_of_one_class_has_no_test_split(tmp_path, per_class):
    make_folder(tmp_path / "one", classes=("cat",), per_class=2)
    cfg = DataConfig(dataset="folder", root=str(tmp_path / "one"), per_class=per_class)
    assert build_dataset(cfg, "train").labels.tolist() == [0, 0]  # the first half: the class
    with pytest.raises(ValueError, match=rf"'{tmp_path / 'one'}' has only 1 class folder \(cat\)"
                                         r".*train and test need at least 2 class folders"):
        build_dataset(cfg, "test")


def test_select_per_class_of_no_class_is_empty():
    from mom.datasets.base import select_per_class
    assert select_per_class(np.zeros(0, np.int64), [], 3).tolist() == []


def test_build_dataset_oxford(tmp_path):
    make_oxford(tmp_path, "roxford5k")
    cfg = DataConfig(dataset="roxford5k", root=str(tmp_path))
    assert len(build_dataset(cfg, "database")) == 5
    assert len(build_dataset(cfg, "train")) == 5
    assert build_dataset(cfg, "queries")[0][0].size == (10, 8)
    with pytest.raises(ValueError, match="queries"):
        build_dataset(cfg, "test")
    with pytest.raises(ValueError, match="per_class"):
        build_dataset(DataConfig(dataset="roxford5k", root=str(tmp_path), per_class=3), "database")
    assert np.all(build_dataset(cfg, "database").labels == -1)
