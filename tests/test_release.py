"""mom.release: the authors' MAT descriptors and pools text files, compare_pools, the CLI."""
import json

import h5py
import numpy as np
import pytest
import scipy.io

from mom.cli import main
from mom.config import MiningConfig
from mom.mining import Pools, mine
from mom.release import (compare_pools, format_comparison, load_mat_features, load_pools,
                         load_release, save_release)

SMALL = MiningConfig(k_graph=6, k_pos=8, k_neg=20, pool_size=4)


def _features(n=45, d=8, seed=0):
    """(N, D) float32, rows L2-normalised, in 3 clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d))
    x = centres[np.arange(n) % 3] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _matlab_header(version: bytes) -> bytes:
    """The 128-byte MAT-file header: text (116), subsystem offset (8), version, 'IM'."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b" " * 8 + version + b"IM"


def _save_v73(path, name, array_matlab, matlab_class="single"):
    """Write ``array_matlab`` (MATLAB's shape, e.g. D x N) as MATLAB v7.3 does: an HDF5
    file behind a 512-byte userblock holding the MAT header, the dataset stored with its
    dimensions reversed (column-major), i.e. of HDF5 shape (N, D)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset(name, data=np.asarray(array_matlab).T)
        ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    with open(path, "r+b") as fh:
        fh.write(_matlab_header(b"\x00\x02"))


def _assert_same_pools(p, q, weight_decimals=6):
    for field in ("anchors", "pos_offsets", "pos_ids", "neg_offsets", "neg_ids"):
        np.testing.assert_array_equal(getattr(p, field), getattr(q, field), err_msg=field)
    # the file holds "%.6f" of the float32 weights: exactly that, back in float32
    rounded = np.array([float(f"{w:.{weight_decimals}f}") for w in p.pos_weights], np.float32)
    np.testing.assert_array_equal(q.pos_weights, rounded)
    assert q.pos_ids.dtype == np.int64 and q.pos_weights.dtype == np.float32


# ---------------------------------------------------------------- descriptors
def test_v5_and_v73_mat_files_load_to_the_same_rows(tmp_path):
    x = _features(n=7, d=5)  # (N, D)
    V = x.T.copy()  # (D, N): MATLAB's layout, one column per image
    scipy.io.savemat(tmp_path / "v5.mat", {"V": V, "other": np.arange(3.0)})
    _save_v73(tmp_path / "v73.mat", "V", V)
    with open(tmp_path / "v73.mat", "rb") as fh:
        assert fh.read(10) == b"MATLAB 7.3" and fh.seek(512) and fh.read(4) == b"\x89HDF"
    with h5py.File(tmp_path / "v73.mat") as f:
        assert f["V"].shape == (7, 5)  # what h5py sees of a 5 x 7 MATLAB matrix
    a, b = load_mat_features(tmp_path / "v5.mat"), load_mat_features(tmp_path / "v73.mat")
    for got in (a, b):
        assert got.shape == (7, 5) and got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, x)
    scipy.io.savemat(tmp_path / "double.mat", {"X": V.astype(np.float64)})
    _save_v73(tmp_path / "double73.mat", "X", V.astype(np.float64), "double")
    for name in ("double.mat", "double73.mat"):
        got = load_mat_features(tmp_path / name, var="X")
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, x, rtol=1e-6)


def test_plain_hdf5_without_userblock_is_read_as_v73(tmp_path):
    V = _features(n=4, d=3).T
    with h5py.File(tmp_path / "plain.mat", "w") as f:
        f.create_dataset("V", data=V.T)
    np.testing.assert_array_equal(load_mat_features(tmp_path / "plain.mat"), V.T)


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_bad_mat_variables(tmp_path, fmt):
    path = tmp_path / "f.mat"
    arrays = {"V": np.ones((2, 3, 4), np.float32), "W": np.ones((3, 4), np.float32)}
    if fmt == "v5":
        scipy.io.savemat(path, {**arrays, "S": "text"})
    else:
        with h5py.File(path, "w", userblock_size=512) as f:
            f.create_dataset("V", data=arrays["V"].T)
            f.create_dataset("W", data=arrays["W"].T)
            f.create_dataset("S", data=np.frombuffer("text".encode("utf-16-le"), np.uint16)[:, None])
            f["S"].attrs["MATLAB_class"] = np.bytes_("char")
    with pytest.raises(ValueError, match=r"f\.mat.*'V' is not 2-D"):
        load_mat_features(path)
    with pytest.raises(ValueError, match=r"f\.mat.*no .*variable 'X' \(has: .*W"):
        load_mat_features(path, var="X")
    with pytest.raises(ValueError, match=r"f\.mat.*'S' is not a .*numeric"):
        load_mat_features(path, var="S")
    assert load_mat_features(path, var="W").shape == (4, 3)


def test_a_file_of_neither_format(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    (tmp_path / "x.npy").rename(tmp_path / "x.mat")
    with pytest.raises(ValueError, match=r"x\.mat.*neither a MATLAB v5 nor a v7\.3"):
        load_mat_features(tmp_path / "x.mat")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mat"):
        load_mat_features(tmp_path / "empty.mat")
    with pytest.raises(FileNotFoundError, match="absent.mat"):
        load_mat_features(tmp_path / "absent.mat")


# ---------------------------------------------------------------- pools files
def test_round_trip_of_mined_pools_and_baseline(tmp_path):
    p = mine(_features(), SMALL, device="cpu")
    out = save_release(p, tmp_path / "rel")
    assert out == tmp_path / "rel"
    assert {f.name for f in out.iterdir()} == {"anchors.txt", "pos.txt", "neg.txt", "posw.txt",
                                               "negw.txt", "mom.json", "euclidean"}
    q = load_release(out)
    _assert_same_pools(p, q)
    _assert_same_pools(p.baseline, q.baseline)
    assert q.method == "mom" and q.baseline.method == "euclidean" and q.baseline.baseline is None
    assert q.config == p.config and q.n_skipped == p.n_skipped
    # load_pools on a folder or a .npz; Pools itself knows no release format (mom.mining
    # sits below mom.release, which builds Pools)
    assert not hasattr(Pools, "save_release") and not hasattr(Pools, "load_release")
    p.save(tmp_path / "p.npz")
    _assert_same_pools(p, load_pools(tmp_path / "rel"))
    np.testing.assert_array_equal(load_pools(tmp_path / "p.npz").pos_weights, p.pos_weights)


def test_files_have_the_release_layout(tmp_path):
    p = Pools(anchors=np.array([4, 0]), pos_offsets=np.array([0, 2, 3]),
              pos_ids=np.array([1, 9, 2]), pos_weights=np.array([0.5, 0.25, 1 / 3], np.float32),
              neg_offsets=np.array([0, 1, 3]), neg_ids=np.array([7, 2, 3]))
    save_release(p, tmp_path)
    read = {name: (tmp_path / name).read_text() for name in
            ("anchors.txt", "pos.txt", "neg.txt", "posw.txt", "negw.txt")}
    assert read == {"anchors.txt": "5\n1\n", "pos.txt": "2, 10\n3\n", "neg.txt": "8\n3, 4\n",
                    "posw.txt": "0.500000, 0.250000\n0.333333\n",
                    "negw.txt": "0.000000\n0.000000, 0.000000\n"}
    meta = json.loads((tmp_path / "mom.json").read_text())
    assert meta["method"] == "mom" and meta["has_baseline"] is False


def _write(folder, **files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


HAND = {  # three anchors as mom_CUB.m writes them (1-based, "%d, " / "%.6f, ")
    "anchors": "3\n1\n7\n",
    "pos": "1, 5, 2\n3\n2, 4\n",
    "neg": "6, 7\n4, 5, 6\n1\n",
    "posw": "0.912345, 0.500000, 0.100001\n1.000000\n0.250000, 0.125000\n",
    "negw": "0.000012, 0.000003\n0.000100, 0.000000, 0.000001\n0.002000\n",
}


@pytest.mark.parametrize("with_negw", [True, False])
def test_a_hand_written_release_folder(tmp_path, with_negw):
    files = dict(HAND) if with_negw else {k: v for k, v in HAND.items() if k != "negw"}
    p = load_release(_write(tmp_path / "data", **files))
    np.testing.assert_array_equal(p.anchors, [2, 0, 6])
    assert [list(x) for x in p.positives] == [[0, 4, 1], [2], [1, 3]]
    assert [list(x) for x in p.negatives] == [[5, 6], [3, 4, 5], [0]]
    np.testing.assert_array_equal(p.positive_weights[0],
                                  np.array([0.912345, 0.5, 0.100001], np.float32))
    np.testing.assert_array_equal(p.pos_weights,
                                  np.array([0.912345, 0.5, 0.100001, 1, 0.25, 0.125], np.float32))
    assert p.method == "mom" and p.baseline is None and p.n_skipped == 0
    assert p.config == MiningConfig()  # no mom.json: the defaults


def test_tolerant_whitespace_crlf_and_empty_pools(tmp_path):
    folder = _write(tmp_path / "d", anchors="2\r\n1\r\n\r\n", pos="1,3\r\n\r\n",
                    neg=" 3 ,  4\r\n2\r\n", posw="0.5,0.25\r\n\r\n")
    p = load_release(folder)
    assert [list(x) for x in p.positives] == [[0, 2], []]
    assert [list(x) for x in p.negatives] == [[2, 3], [1]]
    q = load_release(save_release(p, tmp_path / "again"))  # an empty pool round-trips
    _assert_same_pools(p, q)


@pytest.mark.parametrize("files, message", [
    ({"pos": "1, 5, 2\n3\n"}, r"pos\.txt'?: 2 lines but .*anchors\.txt'? has 3 anchors \(line 3"),
    ({"anchors": "3\n1\n7\n8\n"}, r"pos\.txt'?: 3 lines but .*4 anchors \(line 4"),
    ({"posw": "0.9, 0.5\n1.0\n0.25, 0.125\n"}, r"posw\.txt'? line 1: 2 weights but .*pos\.txt'? line 1 has 3"),
    ({"negw": "0.1, 0.1\n0.1, 0.1\n0.1\n"}, r"negw\.txt'? line 2: 2 weights but .*neg\.txt'? line 2 has 3"),
    ({"negw": "0.1, 0.1\n0.1, 0.1, 0.1\n"}, r"negw\.txt'?: 2 lines"),
    ({"pos": "1, 5, 2\n0\n2, 4\n"}, r"pos\.txt'? line 2: index 0 < 1"),
    ({"neg": "6, 7\n4, -5, 6\n1\n"}, r"neg\.txt'? line 2: index -5 < 1"),
    ({"neg": "6, 7\n4, 5, 6\n1.5\n"}, r"neg\.txt'? line 3: '1\.5' is not an integer"),
    ({"pos": "1, 5, x\n3\n2, 4\n"}, r"pos\.txt'? line 1: 'x' is not an integer"),
    ({"pos": "1, , 2\n3\n2, 4\n"}, r"pos\.txt'? line 1: '' is not an integer"),
    ({"anchors": "3\n0\n7\n"}, r"anchors\.txt'? line 2: index 0 < 1"),
    ({"anchors": "3\n\n7\n"}, r"anchors\.txt'? line 2: expected one anchor index, got 0"),
    ({"anchors": "3\n1, 2\n7\n"}, r"anchors\.txt'? line 2: expected one anchor index, got 2"),
    ({"anchors": "3\n1\n3\n"}, r"anchors\.txt'? line 3: anchor 3 already on line 1"),
    ({"posw": "0.9, 0.5, abc\n1.0\n0.25, 0.125\n"}, r"posw\.txt'? line 1: 'abc' is not a number"),
    ({"posw": "0.9, 0.5, nan\n1.0\n0.25, 0.125\n"}, r"posw\.txt'? line 1: weight 'nan' is not finite"),
])
def test_bad_release_files(tmp_path, files, message):
    folder = _write(tmp_path / "bad", **{**HAND, **files})
    with pytest.raises(ValueError, match=message):
        load_release(folder)


def test_missing_release_files_and_folders(tmp_path):
    folder = _write(tmp_path / "d", **{k: v for k, v in HAND.items() if k != "posw"})
    with pytest.raises(ValueError, match=r"posw\.txt'? does not exist"):
        load_release(folder)
    with pytest.raises(ValueError, match="nowhere"):
        load_release(tmp_path / "nowhere")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="emptydir.*without anchors.txt"):
        load_pools(tmp_path / "emptydir")
    with pytest.raises(ValueError, match="absent.npz"):
        load_pools(tmp_path / "absent.npz")


# ---------------------------------------------------------------- compare_pools
def test_compare_identical_pools_gives_one(tmp_path):
    p = mine(_features(), SMALL, device="cpu")
    r = compare_pools(p, load_release(save_release(p, tmp_path)))
    assert r["n_common"] == len(p) and r["n_only_a"] == r["n_only_b"] == 0
    assert r["jaccard_pos_mean"] == 1.0 and r["jaccard_neg_mean"] == 1.0
    np.testing.assert_array_equal(r["jaccard_pos"], 1.0)
    finite = np.isfinite(r["spearman_pos_weights"])
    assert finite.any()
    np.testing.assert_allclose(r["spearman_pos_weights"][finite], 1.0)
    assert "P+ Jaccard" in format_comparison(r) and "1.000" in format_comparison(r)


def test_compare_a_hand_made_pair(tmp_path):
    a = load_release(_write(tmp_path / "a", anchors="1\n2\n3\n",
                            pos="2, 3, 4, 5\n1, 3\n1\n", posw="4, 3, 2, 1\n1, 1\n1\n",
                            neg="6, 7\n5\n2\n"))
    b = load_release(_write(tmp_path / "b", anchors="4\n2\n1\n",
                            pos="1\n3, 6\n5, 4, 3, 9\n", posw="1\n1, 1\n0.1, 0.3, 0.5, 0.7\n",
                            neg="2\n5, 7\n8\n"))
    r = compare_pools(a, b)
    np.testing.assert_array_equal(r["anchors"], [0, 1])  # 0-based: images 1 and 2
    np.testing.assert_array_equal(r["only_a"], [2])
    np.testing.assert_array_equal(r["only_b"], [3])
    # anchor 1: {2,3,4,5} vs {5,4,3,9}: 3 shared of 5; anchor 2: {1,3} vs {3,6}: 1 of 3
    np.testing.assert_allclose(r["jaccard_pos"], [3 / 5, 1 / 3])
    # P-: {6,7} vs {8}: 0; {5} vs {5,7}: 1/2
    np.testing.assert_allclose(r["jaccard_neg"], [0.0, 0.5])
    # shared P+ of anchor 1: images 3, 4, 5 weighted 3, 2, 1 in a and 0.5, 0.3, 0.1 in b
    assert r["spearman_pos_weights"][0] == pytest.approx(1.0)
    assert np.isnan(r["spearman_pos_weights"][1])  # one shared member
    np.testing.assert_array_equal(r["n_common_pos"], [3, 1])
    assert r["jaccard_pos_mean"] == pytest.approx((3 / 5 + 1 / 3) / 2)
    assert r["spearman_pos_weights_mean"] == pytest.approx(1.0) and r["n_spearman"] == 1
    text = format_comparison(r, ("ours", "release"))
    assert "2 common anchors, 1 only in ours, 1 only in release" in text


def test_spearman_sign_and_ties(tmp_path):
    a = load_release(_write(tmp_path / "a", anchors="1\n", pos="2, 3, 4\n",
                            posw="0.3, 0.2, 0.1\n", neg="5\n"))
    b = load_release(_write(tmp_path / "b", anchors="1\n", pos="2, 3, 4\n",
                            posw="0.1, 0.2, 0.3\n", neg="5\n"))
    c = load_release(_write(tmp_path / "c", anchors="1\n", pos="2, 3, 4\n",
                            posw="0.5, 0.5, 0.5\n", neg="5\n"))
    assert compare_pools(a, b)["spearman_pos_weights"][0] == pytest.approx(-1.0)
    assert np.isnan(compare_pools(a, c)["spearman_pos_weights"][0])  # constant weights


# ---------------------------------------------------------------- the command line
def test_cli_mine_a_mat_file_to_a_release_folder_and_compare(tmp_path, capsys):
    x = _features()
    _save_v73(tmp_path / "feats.mat", "V", x.T)
    np.save(tmp_path / "feats.npy", x)
    flags = ["--k-graph", "6", "--k-pos", "8", "--k-neg", "20", "--pool-size", "4"]
    rel = tmp_path / "rel"
    assert main(["-q", "mine", str(tmp_path / "feats.mat"), "--format", "release",
                 "--out", str(rel), *flags]) == 0
    assert (rel / "anchors.txt").is_file() and (rel / "negw.txt").is_file()
    assert main(["-q", "mine", str(tmp_path / "feats.npy"), "--out", str(tmp_path / "p.npz"),
                 *flags]) == 0
    _assert_same_pools(Pools.load(tmp_path / "p.npz"), load_release(rel))
    capsys.readouterr()
    out_json = tmp_path / "cmp.json"
    assert main(["-q", "compare-pools", str(tmp_path / "p.npz"), str(rel),
                 "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "P+ Jaccard" in printed and "0 only in" in printed
    result = json.loads(out_json.read_text())
    assert result["jaccard_pos_mean"] == 1.0 and result["jaccard_neg_mean"] == 1.0
    assert len(result["jaccard_pos"]) == result["n_common"] > 0
    assert result["a"] == str(tmp_path / "p.npz")


def test_cli_mine_mat_variable_and_errors(tmp_path, capsys):
    x = _features()
    scipy.io.savemat(tmp_path / "f.mat", {"X": x.T})
    out = tmp_path / "p.npz"
    assert main(["-q", "mine", str(tmp_path / "f.mat"), "--out", str(out)]) == 2
    assert "f.mat" in capsys.readouterr().err and not out.exists()
    assert main(["-q", "mine", str(tmp_path / "f.mat"), "--var", "X", "--out", str(out),
                 "--k-graph", "6", "--k-pos", "8", "--k-neg", "20", "--pool-size", "4"]) == 0
    assert len(Pools.load(out)) > 0
    scipy.io.savemat(tmp_path / "raw.mat", {"V": 2 * x.T})  # columns not normalised
    assert main(["-q", "mine", str(tmp_path / "raw.mat"), "--out", str(out)]) == 2
    assert "raw.mat" in capsys.readouterr().err


def test_cli_compare_pools_bad_input(tmp_path, capsys):
    _write(tmp_path / "bad", **{**HAND, "pos": "1\n"})
    assert main(["-q", "compare-pools", str(tmp_path / "bad"), str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mom compare-pools: error:") and "pos.txt" in err
    assert main(["-q", "compare-pools", str(tmp_path / "x.npz"), str(tmp_path / "bad")]) == 2
    assert "x.npz" in capsys.readouterr().err


def test_cli_train_takes_a_release_folder(tmp_path, monkeypatch, capsys):
    """`mom train --pools DIR` up to the training call: the pools it gets are the folder's."""
    import mom.train
    from mom.datasets.splits import build_splits
    from mom.config import load_params

    n = len(build_splits(load_params("smoke"))[0])
    feats = _features(n=n)
    np.save(tmp_path / "f.npy", feats)
    p = mine(feats, MiningConfig(k_graph=6, k_pos=6, k_neg=20, pool_size=5), device="cpu")
    save_release(p, tmp_path / "rel")
    seen = {}

    def fake_train(model, ds, pools, cfg, embed_cfg, **kwargs):
        seen["pools"], seen["cfg"] = pools, cfg
        return mom.train.TrainResult(model=model, history=[])

    monkeypatch.setattr(mom.train, "train", fake_train)
    monkeypatch.setattr(mom.train, "build_model", lambda *a, **k: None)
    base = ["-q", "train", "--params", "smoke", "--features", str(tmp_path / "f.npy")]
    assert main([*base, "--pools", str(tmp_path / "rel"), "--out", str(tmp_path / "o")]) == 0
    _assert_same_pools(p, seen["pools"])
    _assert_same_pools(p.baseline, seen["pools"].select("euclidean"))
    # a real release folder (no mom.json, no baseline) works too
    _write(tmp_path / "plain", **{name: (tmp_path / "rel" / f"{name}.txt").read_text()
                                  for name in ("anchors", "pos", "neg", "posw")})
    assert main([*base, "--pools", str(tmp_path / "plain"), "--out", str(tmp_path / "o2")]) == 0
    assert seen["pools"].baseline is None and seen["pools"].config == MiningConfig()
    capsys.readouterr()
    _write(tmp_path / "broken", **{**HAND, "anchors": "3\n1\n"})
    assert main([*base, "--pools", str(tmp_path / "broken"), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mom train: error:") and "anchors" in err
