"""mom.device: the one resolver of device="auto"."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mom.device import rank_device, resolve_device


def test_auto_follows_the_kinds_in_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", kinds=("mps", "cuda", "cpu")) == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("auto", kinds=("cuda", "cpu")) == torch.device("cpu")  # the diffusion's
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no device"):
        resolve_device("auto", kinds=("cuda", "mps"))
    with pytest.raises(ValueError, match="unknown"):
        resolve_device("auto", kinds=("tpu", "cpu"))


def test_explicit_devices_pass_through():
    assert resolve_device("cpu", kinds=("cuda",)) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # no check that it exists
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_extract_reexports_the_resolver():
    from mom import extract

    assert extract.resolve_device is resolve_device


def test_import_does_not_load_torch():
    root = Path(__file__).resolve().parents[1]
    code = "import sys, mom.device; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_rank_device_only_moves_cuda_under_torchrun():
    from types import SimpleNamespace

    cpu = torch.device("cpu")
    assert rank_device(cpu, SimpleNamespace(active=True, local_rank=1)) == cpu
    cuda = torch.device("cuda")
    assert rank_device(cuda, SimpleNamespace(active=False, local_rank=1)) == cuda
