"""mom.losses: against per-tuple Python loops, gradcheck, edge cases, errors."""
import math

import pytest
import torch

from mom.losses import ContrastiveLoss, TripletLoss, contrastive_loss, triplet_loss

torch.set_num_threads(1)


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def loop_triplet(za, zp, zn, w, m):
    """Reference: one triplet at a time, plain Python floats."""
    total = 0.0
    for a, p, n, wi in zip(za.tolist(), zp.tolist(), zn.tolist(), w):
        dp = sum((x - y) ** 2 for x, y in zip(a, p))
        dn = sum((x - y) ** 2 for x, y in zip(a, n))
        total += wi * max(0.0, m + dp - dn)
    return total / len(za)


def loop_contrastive(za, zp, zn, m):
    """Reference: mean over every (anchor, positive) and (anchor, negative) pair."""
    terms = []
    for a, p, negs in zip(za.tolist(), zp.tolist(), zn.tolist()):
        terms.append(sum((x - y) ** 2 for x, y in zip(a, p)))
        for n in negs:
            d = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, n)))
            terms.append(max(0.0, m - d) ** 2)
    return sum(terms) / len(terms)


# ----------------------------------------------------------------- triplet
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
def test_triplet_matches_loop(margin):
    za, zp, zn = rand(7, 5, seed=1), rand(7, 5, seed=2), rand(7, 5, seed=3)
    w = rand(7, seed=4).abs()
    got = triplet_loss(za, zp, zn, w, margin=margin)
    assert got.item() == pytest.approx(loop_triplet(za, zp, zn, w.tolist(), margin), rel=1e-12)
    unweighted = triplet_loss(za, zp, zn, margin=margin)
    assert unweighted.item() == pytest.approx(loop_triplet(za, zp, zn, [1.0] * 7, margin))


def test_triplet_reductions_and_weight_scaling():
    za, zp, zn = rand(6, 4, seed=5), rand(6, 4, seed=6), rand(6, 4, seed=7)
    per = triplet_loss(za, zp, zn, margin=20.0, reduction="none")  # (6,)
    assert per.shape == (6,) and (per > 0).all()
    assert triplet_loss(za, zp, zn, margin=20.0, reduction="sum").item() == pytest.approx(per.sum().item())
    # mean divides by B, not by the sum of the weights
    w = torch.full((6,), 0.25, dtype=torch.float64)
    assert triplet_loss(za, zp, zn, w, margin=20.0).item() == pytest.approx(0.25 * per.mean().item())
    w2 = torch.tensor([1.0, 0.0, 2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert triplet_loss(za, zp, zn, w2, margin=20.0).item() == pytest.approx(
        (per[0] + 2 * per[2]).item() / 6)


def test_triplet_zero_when_well_separated():
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zp = torch.tensor([[0.99, 0.141], [0.141, 0.99]])
    zn = -za  # squared distance 4 >> margin + ~0.02
    za.requires_grad_(True)
    loss = triplet_loss(za, zp, zn, margin=0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(za.grad, torch.zeros_like(za))


def test_triplet_gradcheck():
    za, zp, zn = (rand(4, 3, seed=s).requires_grad_(True) for s in (8, 9, 10))
    w = rand(4, seed=11).abs().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, p, n, w: triplet_loss(a, p, n, w, margin=1.5),
                                    (za, zp, zn, w))


def test_triplet_module_equals_function():
    za, zp, zn = rand(5, 3, seed=12), rand(5, 3, seed=13), rand(5, 3, seed=14)
    w = rand(5, seed=15).abs()
    mod = TripletLoss(margin=0.8)
    assert torch.equal(mod(za, zp, zn, w), triplet_loss(za, zp, zn, w, margin=0.8))
    assert "margin=0.8" in repr(mod)


# ----------------------------------------------------------------- contrastive
@pytest.mark.parametrize("n_neg", [1, 5])
def test_contrastive_matches_loop(n_neg):
    za, zp = rand(6, 4, seed=20) * 0.3, rand(6, 4, seed=21) * 0.3
    zn = rand(6, n_neg, 4, seed=22) * 0.3  # small scale: some negatives inside the margin
    got = contrastive_loss(za, zp, zn, margin=0.7)
    assert got.item() == pytest.approx(loop_contrastive(za, zp, zn, 0.7), rel=1e-12)
    per = contrastive_loss(za, zp, zn, margin=0.7, reduction="none")
    assert per.shape == (6, 1 + n_neg)
    assert (per[:, 1:] > 0).any() and (per[:, 1:] == 0).any()  # both sides of the hinge


def test_contrastive_two_dim_negatives_equal_one_negative():
    za, zp, zn = rand(5, 3, seed=23), rand(5, 3, seed=24), rand(5, 3, seed=25)
    assert torch.equal(contrastive_loss(za, zp, zn), contrastive_loss(za, zp, zn[:, None]))


def test_contrastive_weights_and_separated_case():
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    zn = -za[:, None, :].repeat(1, 3, 1)  # distance 2 > margin 0.7: no negative loss
    assert contrastive_loss(za, za.clone(), zn).item() == 0.0
    zp, zn2 = rand(2, 2, seed=26), rand(2, 3, 2, seed=27) * 0.1
    w = torch.tensor([2.0, 0.5], dtype=torch.float64)
    per = contrastive_loss(za, zp, zn2, reduction="none")
    assert contrastive_loss(za, zp, zn2, weights=w).item() == pytest.approx(
        (w[:, None] * per).mean().item())


def test_contrastive_gradcheck_and_duplicate_negative():
    za, zp = rand(3, 4, seed=28) * 0.2, rand(3, 4, seed=29) * 0.2
    zn = (rand(3, 2, 4, seed=30) * 0.2)
    args = tuple(t.requires_grad_(True) for t in (za, zp, zn))
    assert torch.autograd.gradcheck(lambda a, p, n: contrastive_loss(a, p, n, margin=0.7), args)
    # a negative identical to its anchor: finite loss m^2 and finite gradients
    a = rand(2, 3, seed=31).requires_grad_(True)
    loss = contrastive_loss(a, a.detach() + 0.1, a.detach()[:, None, :], reduction="none")
    assert torch.allclose(loss[:, 1], torch.full((2,), 0.49, dtype=torch.float64))
    loss.sum().backward()
    assert torch.isfinite(a.grad).all()


def test_contrastive_module_equals_function():
    za, zp, zn = rand(4, 3, seed=32), rand(4, 3, seed=33), rand(4, 5, 3, seed=34)
    assert torch.equal(ContrastiveLoss(margin=0.9)(za, zp, zn),
                       contrastive_loss(za, zp, zn, 0.9))  # margin is the 4th argument
    w = rand(4, seed=35).abs()
    assert torch.equal(ContrastiveLoss(margin=0.9)(za, zp, zn, w),
                       contrastive_loss(za, zp, zn, 0.9, weights=w))


# ----------------------------------------------------------------- errors
def test_losses_reject_bad_shapes_and_settings():
    za, zp, zn = rand(4, 3), rand(4, 3, seed=1), rand(4, 3, seed=2)
    with pytest.raises(ValueError, match="zp"):
        triplet_loss(za, zp[:3], zn)
    with pytest.raises(ValueError, match="zn"):
        triplet_loss(za, zp, rand(4, 2, 3))
    with pytest.raises(ValueError, match="za"):
        triplet_loss(za[0], zp[0], zn[0])
    with pytest.raises(ValueError, match="weights"):
        triplet_loss(za, zp, zn, torch.ones(3))
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(za, zp, zn, margin=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        contrastive_loss(za, zp, zn, reduction="avg")
    with pytest.raises(ValueError, match="zn"):
        contrastive_loss(za, zp, rand(4, 2, 5))
    with pytest.raises(ValueError, match="negatives"):
        contrastive_loss(za, zp, rand(4, 0, 3))
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=-1.0)
