"""mom.datasets.fashion_mnist: the bundled subset, the full IDX source, the CUB-like split."""
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import make_fashion_idx
from mom.datasets import FashionMNIST
from mom.datasets.fashion_mnist import BUNDLED_PATH, DEFAULT_ROOT

DEBIAN_FILE = Path(DEFAULT_ROOT) / "train-images-idx3-ubyte.gz"


def test_bundled_file_is_class_balanced():
    with np.load(BUNDLED_PATH) as z:
        images, labels, src = z["images"], z["labels"], z["source_index"]
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 1000))
    assert np.all(np.diff(src) > 0)  # file order kept
    assert (BUNDLED_PATH.parent / "LICENSE-fashion-mnist.txt").is_file()


@pytest.mark.parametrize("split,classes", [("train", [0, 1, 2, 3, 4]), ("test", [5, 6, 7, 8, 9])])
def test_bundled_splits(split, classes):
    ds = FashionMNIST(split)
    assert len(ds) == 5000 and ds.labels.dtype == np.int64
    assert np.array_equal(np.unique(ds.labels), classes)
    assert np.array_equal(np.bincount(ds.labels, minlength=10)[classes], [1000] * 5)
    img, label = ds[0]
    assert img.mode == "RGB" and img.size == (28, 28) and label == ds.labels[0]
    a = np.asarray(img)
    assert np.array_equal(a[..., 0], a[..., 2])  # grayscale replicated
    assert ds.class_names[label] and split in ds.name


def test_per_class_takes_first_images_and_fingerprint_is_stable():
    full = FashionMNIST("train")
    small = FashionMNIST("train", per_class=3)
    assert len(small) == 15 and np.array_equal(np.bincount(small.labels), [3] * 5)
    for c in range(5):
        first = np.flatnonzero(full.labels == c)[:3]
        mine = np.flatnonzero(small.labels == c)
        assert np.array_equal(small.images[mine], full.images[first])
    assert small.fingerprint() == FashionMNIST("train", per_class=3).fingerprint()
    assert small.fingerprint() != FashionMNIST("train", per_class=4).fingerprint()
    assert small.fingerprint() != FashionMNIST("test", per_class=3).fingerprint()


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        FashionMNIST("val")
    with pytest.raises(ValueError, match="source"):
        FashionMNIST("train", source="web")
    with pytest.raises(ValueError, match="per_class=2000"):
        FashionMNIST("train", per_class=2000)
    with pytest.raises(ValueError, match="root"):
        FashionMNIST("train", root="/somewhere")


@pytest.mark.parametrize("gz", [True, False])
def test_full_source_concatenates_train_then_t10k(tmp_path, gz):
    make_fashion_idx(tmp_path, n_train=30, n_test=20, gz=gz)
    ds = FashionMNIST("test", source="full", root=tmp_path)
    # class c in 5..9: train items c, c+10, c+20 (values = index), t10k items c, c+10 (values 100+index)
    assert len(ds) == 25 and set(ds.labels) == {5, 6, 7, 8, 9}
    values = ds.images[:, 0, 0].tolist()
    assert values == [5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 25, 26, 27, 28, 29,
                      105, 106, 107, 108, 109, 115, 116, 117, 118, 119]
    pc = FashionMNIST("train", source="full", root=tmp_path, per_class=4)
    assert pc.images[pc.labels == 2, 0, 0].tolist() == [2, 12, 22, 102]


def test_full_source_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST("train", source="full", root=tmp_path)
    make_fashion_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        FashionMNIST("train", source="full", root=tmp_path)


def test_full_source_label_count_mismatch(tmp_path):
    make_fashion_idx(tmp_path, n_train=30)
    other = tmp_path / "other"
    make_fashion_idx(other, n_train=31)
    (other / "train-labels-idx1-ubyte.gz").replace(tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="30 images but .* 31 labels"):
        FashionMNIST("train", source="full", root=tmp_path)


@pytest.mark.skipif(not DEBIAN_FILE.exists(), reason="dataset-fashion-mnist not installed")
def test_full_debian_files_and_bundled_subset_agree():
    ds = FashionMNIST("train", source="full")
    assert len(ds) == 35000 and np.array_equal(np.bincount(ds.labels), [7000] * 5)
    bundled = FashionMNIST("train")
    # the bundled subset is the first 1000 a class of the official training file
    for c in range(5):
        assert np.array_equal(bundled.images[bundled.labels == c],
                              ds.images[ds.labels == c][:1000])


def test_select_per_class_strict_or_capped_and_bad_counts():
    from mom.datasets.base import select_per_class
    labels = np.array([0, 1, 0, 2, 0, 1])
    assert select_per_class(labels, [0, 1], 2).tolist() == [0, 1, 2, 5]
    assert select_per_class(labels, [0, 1, 2], 2, strict=False).tolist() == [0, 1, 2, 3, 5]
    with pytest.raises(ValueError, match="class 2 has only 1"):
        select_per_class(labels, [0, 2], 2)
    with pytest.raises(ValueError, match="per_class must be positive"):
        FashionMNIST("train", per_class=0)


def test_training_classes_pick_a_subset_and_leave_the_test_split():
    from mom.config import DataConfig
    from mom.datasets import build_dataset
    two = build_dataset(DataConfig(per_class=4, classes=(3, 1)), "train")
    assert sorted(set(two.labels.tolist())) == [1, 3] and len(two) == 8
    assert two.name.endswith("-c13")
    test = build_dataset(DataConfig(per_class=4, classes=(3, 1)), "test")
    assert sorted(set(test.labels.tolist())) == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match=r"DataConfig.classes\[0\]: must be a training class id 0-4, got 7"):
        DataConfig(classes=(7,))
    from mom.datasets.fashion_mnist import FashionMNIST
    with pytest.raises(ValueError, match=r"training classes \[1, 1\]: expected distinct"):
        FashionMNIST("train", per_class=2, classes=(1, 1))
