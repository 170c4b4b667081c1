"""mom.datasets.oxford: database, cropped queries, revisited and classic ground truth."""
import pickle

import numpy as np
import pytest

from data_fixtures import colour, make_oxford, make_tgz, serve_folder, write_jpeg
from mom.datasets import RevisitedOxfordParis
from mom.datasets import oxford


def test_revisited_layout(tmp_path):
    make_oxford(tmp_path, "roxford5k")
    data = RevisitedOxfordParis(tmp_path, "roxford5k")
    assert data.protocol == "revisited"
    assert len(data.database) == 5 and len(data.queries) == 2 and len(data.gnd) == 2
    assert data.database.paths[3].endswith("roxford5k/jpg/db_3.jpg")
    assert data.database.labels.tolist() == [-1] * 5
    img, label = data.database[1]
    assert img.size == (20, 16) and label == -1
    assert np.allclose(np.asarray(img).reshape(-1, 3).mean(0), colour(1, 1), atol=4)
    q, _ = data.queries[0]
    assert q.mode == "RGB" and q.size == (10, 8)  # cropped to bbx [2, 3, 12, 11]
    assert data.gnd[1]["easy"].tolist() == [1] and data.gnd[1]["hard"].tolist() == [2]
    assert data.gnd[0]["junk"].dtype == np.int64
    assert data.queries.fingerprint() != data.database.fingerprint()


def test_classic_gnd_and_root_is_the_dataset_folder(tmp_path):
    base = make_oxford(tmp_path, "rparis6k", classic=True)
    data = RevisitedOxfordParis(base, "rparis6k")
    assert data.protocol == "classic"
    assert data.gnd[0]["good"].tolist() == [0] and data.gnd[0]["ok"].tolist() == [1]
    assert "rparis6k" in repr(data)


def test_missing_pickle_and_image_are_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        RevisitedOxfordParis(tmp_path, "rparis6k")
    assert "gnd_rparis6k.pkl" in str(err.value) and "revisitop" in str(err.value)
    base = make_oxford(tmp_path, "roxford5k")
    (base / "jpg" / "db_2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="db_2.jpg"):
        RevisitedOxfordParis(tmp_path, "roxford5k")


def test_bad_gnd_is_refused(tmp_path):
    base = make_oxford(tmp_path, "roxford5k")
    pkl = base / "gnd_roxford5k.pkl"
    data = pickle.loads(pkl.read_bytes())
    data["gnd"][1]["easy"] = [99]
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=r"gnd\[1\]\['easy'\]"):
        RevisitedOxfordParis(tmp_path)
    del data["gnd"][1]["easy"]
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match="lacks"):
        RevisitedOxfordParis(tmp_path)
    pkl.write_bytes(pickle.dumps(["a", "list"]))
    with pytest.raises(ValueError, match="expected a dict"):
        RevisitedOxfordParis(tmp_path)
    pkl.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="gnd_roxford5k.pkl"):
        RevisitedOxfordParis(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        RevisitedOxfordParis(tmp_path, "holidays")


def test_download_flattens_nested_archives(tmp_path, monkeypatch):
    src = make_oxford(tmp_path / "src", "rparis6k")
    served = tmp_path / "served"
    served.mkdir()
    (src / "gnd_rparis6k.pkl").replace(served / "gnd_rparis6k.pkl")
    jpgs = sorted((src / "jpg").iterdir())
    for part, chunk in (("paris_1", jpgs[:3]), ("paris_2", jpgs[3:])):
        for j in chunk:  # nested like the real archives: paris/<landmark>/<file>
            write_jpeg(tmp_path / part / "paris" / "landmark" / j.name).write_bytes(j.read_bytes())
        make_tgz(tmp_path / part / "paris", served / f"{part}.tgz")
    with serve_folder(served) as url:
        monkeypatch.setattr(oxford, "GND_URL", url + "/gnd_{name}.pkl")
        monkeypatch.setitem(oxford.IMAGE_URLS, "rparis6k", [f"{url}/paris_1.tgz", f"{url}/paris_2.tgz"])
        data = RevisitedOxfordParis(tmp_path / "data", "rparis6k", download=True, progress=False)
    assert len(data.database) == 5 and len(data.queries) == 2
    assert sorted(p.name for p in (tmp_path / "data" / "rparis6k").iterdir()) == ["gnd_rparis6k.pkl", "jpg"]
