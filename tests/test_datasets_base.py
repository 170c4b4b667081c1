"""mom.datasets.base: decoding any image mode to RGB, errors naming the file, the protocol."""
import shutil

import numpy as np
import pytest
from PIL import Image

from data_fixtures import write_jpeg
from mom.datasets import ArrayDataset, FileDataset, Subset, find_corrupt, open_image, to_rgb


def test_grayscale_becomes_replicated_rgb(tmp_path):
    p = tmp_path / "g.png"
    Image.new("L", (4, 3), 77).save(p)
    img = open_image(p)
    assert img.mode == "RGB" and img.size == (4, 3)
    assert np.all(np.asarray(img) == 77)


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red
    a[0, 1] = (0, 0, 255, 0)  # fully transparent blue -> white
    a[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    p = tmp_path / "a.png"
    Image.fromarray(a, "RGBA").save(p)
    out = np.asarray(open_image(p)).astype(int)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert np.all(np.abs(out[1, 0] - 127) <= 1)


def test_gray_alpha_is_composited_on_white(tmp_path):
    a = np.array([[[50, 255], [50, 0]]], np.uint8)  # (1, 2, 2): opaque grey, transparent
    p = tmp_path / "la.png"
    Image.fromarray(a, "LA").save(p)
    out = np.asarray(open_image(p))
    assert tuple(out[0, 0]) == (50, 50, 50) and tuple(out[0, 1]) == (255, 255, 255)


def test_palette_with_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    p = tmp_path / "p.png"
    img.save(p, transparency=1)  # index 1 (green) transparent
    out = np.asarray(open_image(p))
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[0, 1]) == (255, 255, 255)


def test_opaque_palette_uses_its_colours(tmp_path):
    img = Image.new("P", (1, 1))
    img.putpalette([9, 99, 199] + [0] * 765)
    p = tmp_path / "p.gif"
    img.save(p)
    assert tuple(np.asarray(open_image(p))[0, 0]) == (9, 99, 199)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=100)  # red in CMYK
    with Image.open(p) as raw:
        assert raw.mode == "CMYK"
    r, g, b = np.asarray(open_image(p)).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    p = tmp_path / "d.png"
    Image.fromarray(a).save(p)
    with Image.open(p) as raw:
        assert raw.mode.startswith("I")
    out = np.asarray(open_image(p))[0, :, 0]
    assert list(out) == [0, 128, 255]


def test_to_rgb_keeps_rgb_untouched():
    img = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(img) is img


def test_truncated_jpeg_error_names_the_file(tmp_path):
    p = write_jpeg(tmp_path / "t.jpg", size=(64, 64))
    Image.effect_noise((64, 64), 64).convert("RGB").save(p, quality=95)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read image .*t.jpg"):
        open_image(p)


def test_garbage_file_error_names_the_file(tmp_path):
    p = tmp_path / "junk.jpg"
    p.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.jpg"):
        open_image(p)


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        open_image(tmp_path / "nothere.jpg")


def test_crop_box_is_applied_and_clipped(tmp_path):
    p = write_jpeg(tmp_path / "a.jpg", size=(20, 10))
    assert open_image(p, [2, 3, 12, 8]).size == (10, 5)
    assert open_image(p, [-5, 0, 50, 50]).size == (20, 10)
    with pytest.raises(ValueError, match="empty crop"):
        open_image(p, [5, 5, 5, 9])


def _file_ds(folder, n=3):
    paths = [write_jpeg(folder / f"{i}.jpg", (10 * i, 0, 0), size=(8 + i, 6)) for i in range(n)]
    return FileDataset(paths, np.arange(n), name="tiny", root=folder)


def test_file_dataset_protocol_and_copy_stable_fingerprint(tmp_path):
    ds = _file_ds(tmp_path / "a")
    img, label = ds[1]
    assert img.mode == "RGB" and img.size == (9, 6) and label == 1 and isinstance(label, int)
    assert ds.labels.dtype == np.int64 and len(ds) == 3 and ds[-1][1] == 2
    with pytest.raises(IndexError):
        ds[3]
    fp = ds.fingerprint()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = FileDataset([p.replace("/a/", "/b/") for p in ds.paths], ds.labels, "tiny",
                       root=tmp_path / "b")
    assert copy.fingerprint() == fp
    write_jpeg(tmp_path / "b" / "0.jpg", (0, 0, 0), size=(40, 40))  # content (size) changed
    assert copy.fingerprint() != fp
    relabelled = FileDataset(ds.paths, [0, 0, 0], "tiny", root=tmp_path / "a")
    assert relabelled.fingerprint() != fp


def test_thumbnail_longer_side(tmp_path):
    p = write_jpeg(tmp_path / "w.jpg", size=(40, 20))
    ds = FileDataset([p], [0], "one", root=tmp_path)
    assert ds.thumbnail(0, size=10).size == (10, 5)
    assert ds.thumbnail(0, size=80).size == (80, 40)


def test_array_dataset_gray_and_rgb():
    gray = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    ds = ArrayDataset(gray, [5, 6], "g")
    img, label = ds[1]
    assert img.mode == "RGB" and img.size == (4, 3) and label == 6
    assert np.array_equal(np.asarray(img)[..., 2], gray[1])
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    assert ArrayDataset(rgb, [0], "c")[0][0].mode == "RGB"
    with pytest.raises(ValueError, match="uint8"):
        ArrayDataset(gray.astype(np.float32), [0, 1], "bad")
    with pytest.raises(ValueError, match="labels"):
        ArrayDataset(gray, [0], "bad")


def test_array_fingerprint_depends_on_bytes_and_labels():
    a = np.zeros((2, 3, 3), np.uint8)
    fp = ArrayDataset(a, [0, 1], "x").fingerprint()
    assert ArrayDataset(a.copy(), [0, 1], "renamed").fingerprint() == fp
    b = a.copy()
    b[1, 2, 2] = 1
    assert ArrayDataset(b, [0, 1], "x").fingerprint() != fp
    assert ArrayDataset(a, [1, 0], "x").fingerprint() != fp


def test_subset_order_labels_paths(tmp_path):
    ds = _file_ds(tmp_path)
    sub = Subset(ds, [2, 0])
    assert len(sub) == 2 and list(sub.labels) == [2, 0]
    assert sub.paths == [ds.paths[2], ds.paths[0]]
    assert sub[0][0].size == ds[2][0].size
    assert sub.fingerprint() != Subset(ds, [0, 2]).fingerprint()
    with pytest.raises(ValueError, match="out of range"):
        Subset(ds, [3])


def test_find_corrupt_lists_bad_files(tmp_path):
    ds = _file_ds(tmp_path)
    assert find_corrupt(ds) == []
    (tmp_path / "1.jpg").write_bytes(b"\xff\xd8broken")
    (tmp_path / "2.jpg").unlink()
    assert find_corrupt(ds) == [ds.paths[1], ds.paths[2]]
