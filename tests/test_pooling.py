"""Pooling functions against explicit loops over the feature map."""
import numpy as np
import pytest
import torch

from mom.pooling import Pooling, gap, gem, l2n, mac, rmac, rmac_regions


def _feature_map(b=2, c=5, h=6, w=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)  # post-ReLU-like, >= 0


def test_gap_mac_gem_match_loops():
    x = _feature_map()
    a = x.numpy().astype(np.float64)
    ref_gap = np.array([[a[i, j].sum() / a[i, j].size for j in range(a.shape[1])] for i in range(a.shape[0])])
    ref_mac = np.array([[max(a[i, j].ravel()) for j in range(a.shape[1])] for i in range(a.shape[0])])
    ref_gem = np.array([[np.mean([v ** 3 for v in a[i, j].ravel()]) ** (1 / 3) for j in range(a.shape[1])]
                        for i in range(a.shape[0])])
    np.testing.assert_allclose(gap(x).numpy(), ref_gap, rtol=1e-5)
    np.testing.assert_allclose(mac(x).numpy(), ref_mac, rtol=1e-6)
    np.testing.assert_allclose(gem(x, 3.0).numpy(), ref_gem, rtol=1e-4)


def test_gem_limits():
    x = _feature_map() + 0.1
    torch.testing.assert_close(gem(x, 1.0), gap(x), rtol=1e-5, atol=1e-6)
    # large p tends to the maximum (from below)
    g = gem(x.double(), 200.0)
    assert (g <= mac(x.double()) + 1e-9).all()
    torch.testing.assert_close(g, mac(x.double()), rtol=0.02, atol=0)


def test_rmac_regions_square_by_hand():
    # 7x7: level 1 side 7 at 0; level 2 side 4 at 0,3; level 3 side 3 at 0,2,4
    got = rmac_regions(7, 7, levels=3)
    want = [(0, 0, 7, 7)]
    want += [(y, x, 4, 4) for y in (0, 3) for x in (0, 3)]
    want += [(y, x, 3, 3) for y in (0, 2, 4) for x in (0, 2, 4)]
    assert got == want


def test_rmac_regions_wide_by_hand():
    # 5x8: side-5 regions overlap (5 - 3) / 5 = 0.4 with one extra region, so
    # the long side gets l + 1 regions at every level
    got = rmac_regions(5, 8, levels=3)
    want = [(0, x, 5, 5) for x in (0, 3)]
    want += [(y, x, 3, 3) for y in (0, 2) for x in (0, 2, 5)]
    want += [(y, x, 2, 2) for y in (0, 1, 3) for x in (0, 2, 4, 6)]
    assert got == want
    # a tall map is the transpose
    assert sorted(rmac_regions(8, 5)) == sorted((x, y, s, s) for y, x, s, _ in got)


@pytest.mark.parametrize("h,w", [(1, 1), (2, 2), (3, 17), (14, 10)])
def test_rmac_regions_inside_map(h, w):
    regions = rmac_regions(h, w)
    assert regions
    for y, x, hh, ww in regions:
        assert 0 <= y and y + hh <= h and 0 <= x and x + ww <= w and hh >= 1 and ww >= 1


def test_rmac_matches_explicit_region_loop():
    x = _feature_map(b=3, c=4, h=6, w=9, seed=1)
    a = x.numpy().astype(np.float64)
    b, c, h, w = a.shape
    ref = np.zeros((b, c))
    for i in range(b):
        total = np.zeros(c)
        for y, x0, hh, ww in [(0, 0, h, w)] + rmac_regions(h, w):
            v = np.array([max(a[i, j, yy, xx] for yy in range(y, y + hh) for xx in range(x0, x0 + ww))
                          for j in range(c)])
            total += v / np.linalg.norm(v)
        ref[i] = total / np.linalg.norm(total)
    np.testing.assert_allclose(rmac(x).numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rmac(x).numpy(), axis=1), 1.0, rtol=1e-6)


def test_l2n_zero_row_stays_zero():
    z = l2n(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    torch.testing.assert_close(z, torch.tensor([[0.0, 0.0], [0.6, 0.8]]))


def test_pooling_module_dispatch_and_params():
    x = _feature_map()
    torch.testing.assert_close(Pooling("gap")(x), gap(x))
    torch.testing.assert_close(Pooling("mac")(x), mac(x))
    torch.testing.assert_close(Pooling("gem", p=2.0)(x), gem(x, 2.0))
    torch.testing.assert_close(Pooling("rmac", levels=2)(x), rmac(x, 2))
    assert Pooling("gem", p=2.5).params() == {"name": "gem", "p": 2.5}
    assert Pooling("rmac").params() == {"name": "rmac", "levels": 3, "overlap": 0.4}
    assert not Pooling("gem").p.requires_grad and Pooling("gem", learn_p=True).p.requires_grad
    assert list(Pooling("gap").parameters()) == []
    from mom.config import EmbedConfig
    assert Pooling.from_config(EmbedConfig(pooling="gem", gem_p=4.0)).params() == {"name": "gem", "p": 4.0}
    assert Pooling.from_config(EmbedConfig(pooling="rmac", rmac_levels=2)).levels == 2


def test_pooling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown pooling 'avg'"):
        Pooling("avg")
    with pytest.raises(ValueError, match="p must be > 0"):
        Pooling("gem", p=0.0)
    with pytest.raises(ValueError, match="empty feature map"):
        rmac_regions(0, 3)
