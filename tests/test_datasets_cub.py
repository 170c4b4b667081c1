"""mom.datasets.cub: the official layout, the paper's class split, errors that say what is missing."""
import numpy as np
import pytest

from data_fixtures import colour, make_cub
from mom.datasets import CUB200


@pytest.fixture
def cub_root(tmp_path):
    make_cub(tmp_path)  # classes 1 (2 images), 2 (3), 101 (2), 102 (3)
    return tmp_path


def test_paper_split_ignores_official_split_file(cub_root):
    train, test = CUB200(cub_root, "train"), CUB200(cub_root, "test")
    assert len(train) == 5 and len(test) == 5
    assert train.labels.tolist() == [0, 0, 1, 1, 1]
    assert test.labels.tolist() == [100, 100, 101, 101, 101]
    assert train.labels.dtype == np.int64
    assert train.image_ids.tolist() == [1, 2, 3, 4, 5] and test.image_ids.tolist() == [6, 7, 8, 9, 10]


def test_items_paths_and_class_names(cub_root):
    test = CUB200(cub_root, "test")
    assert test.paths[2].endswith("102.Bird_102/Bird_102_0000.jpg")
    img, label = test[2]
    assert img.mode == "RGB" and label == 101
    assert np.allclose(np.asarray(img).reshape(-1, 3).mean(0), colour(102, 0), atol=4)
    assert len(test.class_names) == 200 and test.class_names[label] == "102.Bird_102"
    assert test.bboxes.shape == (5, 4) and test.bboxes[0].tolist() == [1.0, 2.0, 5.0, 4.0]
    assert test.thumbnail(0, 6).size == (6, 5)


def test_root_may_be_the_cub_folder_itself(cub_root):
    a = CUB200(cub_root, "train")
    b = CUB200(cub_root / "CUB_200_2011", "train")
    assert a.paths == b.paths and a.fingerprint() == b.fingerprint()
    assert "cub200-train" == a.name


def test_missing_txt_file_is_named_with_how_to_get_it(cub_root):
    (cub_root / "CUB_200_2011" / "image_class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        CUB200(cub_root)
    msg = str(err.value)
    assert "image_class_labels.txt" in msg and "download=True" in msg
    assert "data.caltech.edu" in msg


def test_empty_root_and_missing_image(tmp_path, cub_root):
    with pytest.raises(FileNotFoundError, match="images.txt"):
        CUB200(tmp_path / "nowhere")
    victim = next((cub_root / "CUB_200_2011" / "images" / "101.Bird_101").iterdir())
    victim.unlink()
    CUB200(cub_root, "train")  # the train split does not need it
    with pytest.raises(FileNotFoundError, match=victim.name):
        CUB200(cub_root, "test")


def test_bad_split_and_bad_table(cub_root):
    with pytest.raises(ValueError, match="split"):
        CUB200(cub_root, "val")
    (cub_root / "CUB_200_2011" / "images.txt").write_text("1\n")
    with pytest.raises(ValueError, match="images.txt:1"):
        CUB200(cub_root)


def test_no_images_of_the_split(tmp_path):
    make_cub(tmp_path, classes={1: 2})
    with pytest.raises(ValueError, match="no image of classes 101-200"):
        CUB200(tmp_path, "test")
