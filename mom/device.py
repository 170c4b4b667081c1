"""Where torch work runs: the one resolver of ``device="auto"`` (docs/design.md §11).

Importing this module is cheap: torch is imported inside :func:`resolve_device`.
faiss has its own notion of a GPU (``mom/knn.py: faiss_device``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "rank_device", "KINDS"]

KINDS = ("cuda", "mps", "cpu")  # the kinds "auto" may choose, in this order by default


def resolve_device(device: str | torch.device = "auto",
                   kinds: tuple[str, ...] = KINDS) -> torch.device:
    """A ``torch.device`` for ``device``.

    ``"auto"`` is the first of ``kinds`` that is available: CUDA where torch sees a
    GPU, MPS where torch has it, the CPU always. Callers narrow ``kinds`` where a
    kind cannot serve them (the diffusion's sparse CG: ``("cuda", "cpu")``). Any
    other name (``"cpu"``, ``"cuda:1"``, ``"mps"``) or a ``torch.device`` is returned
    as given, whatever ``kinds``. ValueError for a kind not in ``KINDS``, or when
    none of ``kinds`` is available.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    if device != "auto":
        return torch.device(device)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"resolve_device: unknown device kind(s) {unknown}; expected some of {KINDS}")
    for kind in kinds:
        if kind == "cuda" and torch.cuda.is_available():
            return torch.device("cuda")
        if kind == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
        if kind == "cpu":
            return torch.device("cpu")
    raise ValueError(f"resolve_device: no device of kinds {tuple(kinds)} is available")


def rank_device(device: torch.device, info) -> torch.device:
    """This process's device under torch.distributed: ``cuda:LOCAL_RANK`` (made the
    current CUDA device) when ``info.active`` (a ``mom.distributed.DistInfo``) and
    ``device`` is CUDA; otherwise ``device`` unchanged. Training and sharded embedding."""
    if info.active and device.type == "cuda":
        import torch

        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return device
