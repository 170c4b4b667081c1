"""Extraction order/normalisation, device choice, the embedding cache, bad images."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import mom.extract as ex
from mom.backbones import Backbone, make_transform
from mom.config import EmbedConfig
from mom.datasets import ArrayDataset, FileDataset
from mom.model import EmbeddingNet
from mom.pooling import Pooling

torch.set_num_threads(1)
META = {"name": "tiny", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "channel_order": "RGB"}


def _tiny_backbone():
    torch.manual_seed(0)
    return Backbone([nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU()),
                     nn.Sequential(nn.Conv2d(8, 6, 3, stride=2), nn.ReLU())], 6, META)


def _images(n=7, size=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)  # grayscale (N, H, W)


def test_resolve_device_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ex.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert ex.resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert ex.resolve_device("auto").type == "cpu"
    assert ex.resolve_device("cpu") == torch.device("cpu")
    assert ex.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_extract_order_shape_and_norm_match_one_by_one():
    ds = ArrayDataset(_images(), np.arange(7), name="tiny")
    net = EmbeddingNet(_tiny_backbone(), Pooling("gem"), head=nn.Linear(6, 4))
    net.train()
    tf = make_transform(META, 32)
    feats = ex.extract(net, ds, tf, device="cpu", batch_size=3, progress=False)  # 3 + 3 + 1
    assert feats.shape == (7, 4) and feats.dtype == np.float32
    assert net.training  # the caller's mode is restored
    net.eval()
    with torch.no_grad():
        ref = np.concatenate([net(tf(ds[i][0])[None]).numpy() for i in range(7)])
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)


def test_multiscale_sums_normalised_scales():
    net = EmbeddingNet(_tiny_backbone(), Pooling("mac"), scales=(1.0, 0.5))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        d1 = net.descriptor(x)
        d2 = net.descriptor(nn.functional.interpolate(x, size=(16, 16), mode="bilinear",
                                                      align_corners=False, antialias=True))
        want = nn.functional.normalize(nn.functional.normalize(d1) + nn.functional.normalize(d2))
        torch.testing.assert_close(net(x), want)
    with pytest.raises(ValueError, match="positive"):
        EmbeddingNet(_tiny_backbone(), Pooling("mac"), scales=(1.0, 0.0))


@pytest.fixture
def counted(monkeypatch):
    """Counts the network passes of embed."""
    calls = []
    real = ex._extract

    def wrapper(*args, **kw):
        calls.append(1)
        return real(*args, **kw)
    monkeypatch.setattr(ex, "_extract", wrapper)
    return calls


def _embed(ds, cache, **kw):
    cfg = EmbedConfig(weights="none", image_size=32, batch_size=4, device="cpu")
    return ex.embed(ds, cfg, cache_dir=cache, progress=False, **kw)


def test_cache_hit_skips_the_network(tmp_path, counted):
    ds = ArrayDataset(_images(5), np.zeros(5), name="tiny")
    first = _embed(ds, tmp_path)
    second = _embed(ds, tmp_path)
    assert len(counted) == 1
    assert isinstance(second, np.memmap)  # loaded memory-mapped
    np.testing.assert_array_equal(first, second)
    side = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert side["inputs"]["dataset"]["fingerprint"] == ds.fingerprint()
    assert side["inputs"]["transform"]["image_size"] == 32 and side["shape"] == [5, 1280]


def test_cache_misses_when_any_keyed_input_changes(tmp_path, counted):
    ds = ArrayDataset(_images(4), np.zeros(4), name="tiny")
    base = EmbedConfig(weights="none", image_size=32, batch_size=4, device="cpu")
    run = lambda d, cfg: ex.embed(d, cfg, cache_dir=tmp_path, progress=False)  # noqa: E731
    run(ds, base)
    run(ds, dataclasses.replace(base, image_size=40))
    run(ds, dataclasses.replace(base, pooling="mac"))
    run(ds, dataclasses.replace(base, pooling="gem", gem_p=2.0))
    run(ds, dataclasses.replace(base, pooling="gem", gem_p=4.0))
    changed = _images(4)
    changed[2, 0, 0] ^= 1  # one pixel of one image
    run(ArrayDataset(changed, np.zeros(4), name="tiny"), base)
    assert len(counted) == 6
    run(ds, base)  # and each of them is a separate entry: the first is still there
    assert len(counted) == 6


def test_cache_misses_when_the_weights_file_changes(tmp_path, counted):
    import timm
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "a.pth")
    with torch.no_grad():
        net.conv_head.weight.add_(torch.randn_like(net.conv_head.weight))
    torch.save(net.state_dict(), tmp_path / "b.pth")
    ds = ArrayDataset(_images(3), np.zeros(3), name="tiny")
    cfg = EmbedConfig(image_size=32, device="cpu")
    fa = ex.embed(ds, dataclasses.replace(cfg, weights=str(tmp_path / "a.pth")),
                  cache_dir=tmp_path / "c", progress=False)
    fb = ex.embed(ds, dataclasses.replace(cfg, weights=str(tmp_path / "b.pth")),
                  cache_dir=tmp_path / "c", progress=False)
    assert len(counted) == 2 and not np.allclose(fa, fb)


def test_settings_come_from_cfg_device_may_override():
    cfg = EmbedConfig(pooling="mac", image_size=48, device="auto")
    seen = {}

    def fake_key(dataset, c, precision, skip_corrupt=False):
        seen["cfg"] = c
        raise RuntimeError("stop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "embed_cache_key", fake_key)
        ds = ArrayDataset(_images(2), np.zeros(2), name="tiny")
        for args, kw, want in [((), {}, ("gap", 64, "cpu")), ((cfg,), {}, ("mac", 48, "cpu")),
                               ((), {"cfg": cfg}, ("mac", 48, "cpu")),
                               ((cfg,), {"device": None}, ("mac", 48, "auto"))]:
            kw = {"device": "cpu", **kw}
            with pytest.raises(RuntimeError):
                ex.embed(ds, *args, progress=False, **kw)
            assert (seen["cfg"].pooling, seen["cfg"].image_size, seen["cfg"].device) == want
        # no keyword mirrors a config field: a setting cannot be silently ignored
        for field in ("backbone", "pooling", "image_size", "batch_size"):
            with pytest.raises(TypeError, match=field):
                ex.embed(ds, cfg, progress=False, **{field: getattr(cfg, field)})


def test_whitening_learned_or_given(tmp_path, counted):
    from mom.whitening import Whitening, apply_whitening, learn_whitening
    ds = ArrayDataset(_images(12), np.zeros(12), name="tiny")
    raw = _embed(ds, tmp_path)
    white = _embed(ds, tmp_path, whitening=Whitening.fit(raw))
    assert white.shape == (12, 11)  # min(D, N - 1)
    np.testing.assert_allclose(np.linalg.norm(white, axis=1), 1.0, rtol=1e-5)
    mean, P = learn_whitening(raw[:8], dim=5)
    given = _embed(ds, tmp_path, whitening=Whitening(mean, P))
    np.testing.assert_allclose(given, apply_whitening(raw, mean, P), rtol=1e-5, atol=1e-6)
    # embed.whitening alone never learns it from the images being embedded: a clear error
    cfg = EmbedConfig(weights="none", image_size=32, batch_size=4, device="cpu", whitening=True)
    with pytest.raises(ValueError, match="Whitening.fit"):
        ex.embed(ds, cfg, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(ex.embed(ds, cfg, cache_dir=tmp_path, progress=False,
                                           whitening=Whitening.fit(raw)), white)
    assert len(counted) == 1  # the error came before any work; the raw entry served the rest


def _write_images(folder):
    """Five readable images in different modes and one truncated PNG (index 2)."""
    folder.mkdir()
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8))
    paths = []
    for i, (mode, ext) in enumerate([("RGB", "png"), ("L", "png"), (None, "png"), ("RGBA", "png"),
                                     ("P", "png"), ("CMYK", "jpg")]):
        p = folder / f"{i}.{ext}"
        if mode is None:
            rgb.save(p)
            p.write_bytes(p.read_bytes()[:60])  # truncated
        else:
            rgb.convert(mode).save(p)
        paths.append(p)
    return FileDataset(paths, np.arange(6), name="modes", root=folder)


def test_corrupt_image_raises_naming_the_file(tmp_path):
    ds = _write_images(tmp_path / "img")
    with pytest.raises(ValueError, match="2.png"):
        _embed(ds, None)


def test_skip_corrupt_reports_and_keeps_the_rest(tmp_path, counted):
    ds = _write_images(tmp_path / "img")
    res = _embed(ds, tmp_path / "cache", skip_corrupt=True)
    assert isinstance(res, ex.EmbedResult)
    assert res.kept.tolist() == [0, 1, 3, 4, 5]
    assert [i for i, _ in res.skipped] == [2] and "2.png" in res.skipped[0][1]
    assert res.features.shape == (5, 1280) and np.isfinite(res.features).all()
    good = FileDataset([ds.paths[i] for i in res.kept], res.kept, name="good", root=tmp_path / "img")
    np.testing.assert_allclose(res.features, _embed(good, None), rtol=1e-4, atol=1e-5)
    again = _embed(ds, tmp_path / "cache", skip_corrupt=True)  # cached, skip list included
    assert again.skipped == res.skipped and again.kept.tolist() == res.kept.tolist()
    assert len(counted) == 2


def test_worker_processes_give_the_same_rows_and_errors(tmp_path):
    ds = ArrayDataset(_images(6), np.arange(6), name="tiny")
    net = EmbeddingNet(_tiny_backbone(), Pooling("mac"))
    tf = make_transform(META, 32)
    serial = ex.extract(net, ds, tf, device="cpu", batch_size=4, progress=False)
    parallel = ex.extract(net, ds, tf, device="cpu", batch_size=4, num_workers=2, progress=False)
    np.testing.assert_array_equal(serial, parallel)
    bad = _write_images(tmp_path / "img")
    with pytest.raises(ValueError, match="2.png"):
        ex.extract(net, bad, tf, device="cpu", batch_size=4, num_workers=2, progress=False)
    with pytest.raises(ValueError, match="empty"):
        ex.extract(net, ArrayDataset(_images(0), [], name="none"), tf, device="cpu", progress=False)


def test_unreadable_cache_entry_is_recomputed(tmp_path, counted):
    ds = ArrayDataset(_images(3), np.zeros(3), name="tiny")
    first = np.array(_embed(ds, tmp_path))
    npy = next(tmp_path.glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:100])  # truncated behind our back
    np.testing.assert_array_equal(_embed(ds, tmp_path), first)
    assert len(counted) == 2
    np.testing.assert_array_equal(_embed(ds, tmp_path), first)  # and the entry was replaced
    assert len(counted) == 2
    with pytest.raises(ValueError, match="mean, P"):
        _embed(ds, tmp_path, whitening="pca")


# ----------------------------------------------------------------------------- shards
def test_shard_ranges_are_whole_batches_in_order():
    for n, b, w in [(11, 4, 2), (10, 4, 3), (5, 4, 2), (1, 4, 3), (100, 7, 4), (12, 4, 4)]:
        parts = ex.shard_ranges(n, b, w)
        assert len(parts) == w and [i for p in parts for i in p] == list(range(n))
        assert all(p.start % b == 0 for p in parts)  # every shard starts a batch
        batches = [-(-len(p) // b) for p in parts]  # balanced to one batch
        assert max(batches) - min(batches) <= 1 and sum(batches) == -(-n // b)
    assert ex.shard_ranges(11, 4, 2) == [range(0, 4), range(4, 11)]
    assert [len(p) for p in ex.shard_ranges(5, 4, 3)] == [0, 4, 1]  # fewer batches than ranks
    assert ex.shard_folder("/x/feats.npy").as_posix() == "/x/feats.npy.shards"
    with pytest.raises(ValueError, match="batch_size"):
        ex.shard_ranges(5, 0, 2)


def test_merged_file_is_what_np_save_writes(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 5), dtype=np.float32), rng.random((4, 5), dtype=np.float32)
    np.save(tmp_path / "ref.npy", np.concatenate([a, b]))
    assert ex._write_rows(tmp_path / "m.npy", [a, b, a[:0]]) == (7, 5)
    assert (tmp_path / "m.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    with pytest.raises(ValueError, match="widths differ"):
        ex._write_rows(tmp_path / "bad.npy", [a, b[:, :4]])


def test_shard_is_reused_only_when_complete_and_matching(tmp_path):
    calls = []

    def shard(rows):
        calls.append(rows)
        return np.full((len(rows), 3), rows.start, np.float32), [(rows.start, "bad image")]
    rows, folder = range(4, 11), tmp_path / "out.npy.shards"
    folder.mkdir()
    npy, side = ex._shard_paths(folder, 1, 2)
    assert ex._ensure_shard(folder, 1, 2, rows, "k", shard) and len(calls) == 1
    assert not ex._ensure_shard(folder, 1, 2, rows, "k", shard) and len(calls) == 1  # reused
    rec = json.loads(side.read_text())
    assert (rec["start"], rec["stop"], rec["shape"], rec["skipped"]) == (4, 11, [7, 3], [[4, "bad image"]])
    good = npy.read_bytes()

    def damage(how):
        if how == "flip":  # same size, other bytes (e.g. written by another run)
            raw = bytearray(good)
            raw[-1] ^= 1
            npy.write_bytes(bytes(raw))
        elif how == "truncate":  # a killed non-atomic copy
            npy.write_bytes(good[:100])
        elif how == "no-sidecar":  # killed between the bytes and the sidecar
            side.unlink()
        elif how == "other-key":
            side.write_text(json.dumps(dict(rec, key="other")))
        elif how == "other-range":
            side.write_text(json.dumps(dict(rec, start=0)))
        elif how == "garbage-sidecar":
            side.write_text("{not json")
    for how in ("flip", "truncate", "no-sidecar", "other-key", "other-range", "garbage-sidecar"):
        n = len(calls)
        damage(how)
        (folder / ".rank1-of-2.npy.abc123.tmp").write_bytes(b"partial")  # a killed atomic write
        assert ex._ensure_shard(folder, 1, 2, rows, "k", shard), how
        assert len(calls) == n + 1 and npy.read_bytes() == good, how
        assert not list(folder.glob(".*.tmp")), how
    assert not ex._ensure_shard(folder, 1, 2, rows, "k", shard)
    assert ex._ensure_shard(folder, 1, 2, rows, "k2", shard)  # another embedding config
    assert ex._ensure_shard(folder, 1, 3, rows, "k2", shard)  # another world size: its own file


def test_embed_to_file_in_one_process_is_embed(tmp_path, counted):
    ds = ArrayDataset(_images(9), np.zeros(9), name="tiny")
    cfg = EmbedConfig(weights="none", image_size=32, batch_size=4, device="cpu")
    ref = ex.embed(ds, cfg, progress=False, distributed=False)
    got = ex.embed_to_file(ds, tmp_path / "f.npy", cfg, progress=False, distributed=False)
    assert isinstance(got, np.memmap) and got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)  # the same batches: the same bits
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]  # shards merged and removed
    bad = _write_images(tmp_path / "img")
    res = ex.embed_to_file(bad, tmp_path / "g.npy", cfg, progress=False, skip_corrupt=True)
    want = _embed(bad, None, skip_corrupt=True)
    assert res.kept.tolist() == want.kept.tolist() and res.skipped == want.skipped
    np.testing.assert_array_equal(res.features, want.features)
    with pytest.raises(ValueError, match="2.png"):
        ex.embed_to_file(bad, tmp_path / "h.npy", cfg, progress=False)
    assert not (tmp_path / "h.npy").exists()
    assert len(counted) == 5
    net = EmbeddingNet(_tiny_backbone(), Pooling("mac"))
    tf = make_transform(META, 32)
    np.testing.assert_array_equal(
        ex.extract_to_file(net, ds, tf, tmp_path / "e.npy", key="tiny", device="cpu", batch_size=4,
                           progress=False, distributed=False),
        ex.extract(net, ds, tf, device="cpu", batch_size=4, progress=False))


def test_a_model_embedded_first_can_still_be_trained():
    # extract runs in inference mode; the parameters it converts (device, channels_last)
    # must not become inference tensors, or a later training step fails
    import torch
    from torch import nn
    from mom.extract import extract
    from PIL import Image

    class Images:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return Image.new("RGB", (8, 8), (40 * i, 0, 0)), 0
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    extract(net, Images(), lambda im: torch.from_numpy(np.asarray(im, np.float32)).permute(2, 0, 1),
            device="cpu", progress=False)
    assert not any(p.is_inference() for p in net.parameters())
    net.train()
    net(torch.randn(2, 3, 8, 8)).sum().backward()  # would raise on inference tensors
