"""train.guard: holdout (mom/guard.py): the held-out loss against a brute-force loop over
the training loss, the epoch choice, and what train() does with it."""
import dataclasses

import numpy as np
import pytest
import torch

from conftest import unit_rows
from mom.guard import choose_epoch, heldout_loss, split_anchors
from mom.losses import triplet_loss
from train_fixtures import TinyImages, state_of, tiny_configs, tiny_model, tiny_pools
from mom.train import train


def test_split_anchors():
    keep, held = split_anchors(50, 0.1, seed=3)
    assert held.size == 5 and keep.size == 45
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(50))
    again = split_anchors(50, 0.1, seed=3)
    assert np.array_equal(again[1], held)
    assert split_anchors(1, 0.1, 0) is None
    assert split_anchors(2, 0.4, 0)[1].size == 1


def test_heldout_loss_matches_the_training_loss_on_every_positive_negative_pair():
    pools = tiny_pools(n=24, seed=1)
    emb = unit_rows(24, 5, seed=2)
    margin, h = 0.5, 2
    za, zp, zn, w = [], [], [], []
    for i, a in enumerate(pools.anchors):
        neg = pools.negatives[i]
        d = ((emb[neg] - emb[a]) ** 2).sum(1)
        hard = neg[np.argsort(d, kind="stable")[:h]]
        for p, wp in zip(pools.positives[i], pools.positive_weights[i]):
            for n in hard:
                za.append(emb[a]); zp.append(emb[p]); zn.append(emb[n]); w.append(wp)
    t = lambda v: torch.tensor(np.array(v), dtype=torch.float64)
    ref = triplet_loss(t(za), t(zp), t(zn), weights=t(w), margin=margin).item()
    assert heldout_loss(emb, pools, margin, h) == pytest.approx(ref, rel=1e-6)


def test_choose_epoch_prefers_the_earlier_of_ties_and_skips_nan():
    assert choose_epoch([0.3, 0.2, 0.25]) == 1
    assert choose_epoch([0.2, 0.2, 0.3]) == 0
    assert choose_epoch([np.nan, 0.4, 0.1]) == 2
    with pytest.raises(ValueError):
        choose_epoch([])


def _run(**kw):
    embed_cfg, cfg = tiny_configs(epochs=3, **kw)
    return train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
                 progress=False), embed_cfg, cfg


def test_guard_keeps_the_lowest_heldout_epoch_and_restores_its_weights(monkeypatch):
    import mom.guard as guard
    # a scripted held-out loss: lowest after epoch 1
    script = iter([0.5, 0.1, 0.3, 0.4])
    monkeypatch.setattr(guard, "heldout_loss", lambda *a, **k: next(script))
    snapshots = {}
    res, embed_cfg, cfg = _run(guard="holdout", guard_fraction=0.25)
    g = res.guard
    assert g["active"] and g["heldout_anchors"] == 6 and g["train_anchors"] == 18
    assert g["losses"] == [0.5, 0.1, 0.3, 0.4] and g["kept_epoch"] == 1 and not g["fell_back"]
    assert [r["heldout_loss"] for r in res.history] == [0.1, 0.3, 0.4]
    # the weights returned are those after epoch 1: train one epoch with the same held-out split
    script2 = iter([0.5, 0.1])
    monkeypatch.setattr(guard, "heldout_loss", lambda *a, **k: next(script2))
    one = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(),
                dataclasses.replace(cfg, epochs=1), embed_cfg, progress=False)
    for k, v in state_of(one.model).items():
        torch.testing.assert_close(state_of(res.model)[k], v, rtol=0, atol=1e-6)


def test_guard_falls_back_to_the_initial_network(monkeypatch):
    import mom.guard as guard
    monkeypatch.setattr(guard, "heldout_loss", lambda *a, **k: 0.2)  # no epoch beats the start
    embed_cfg, cfg = tiny_configs(epochs=2, guard="holdout")
    model = tiny_model(embed_cfg, cfg)
    before = state_of(model)
    res = train(model, TinyImages(), tiny_pools(), cfg, embed_cfg, progress=False)
    assert res.guard["kept_epoch"] == 0 and res.guard["fell_back"]
    for k, v in state_of(res.model).items():
        torch.testing.assert_close(v, before[k].to(v.dtype), rtol=0, atol=0)


def test_guard_off_trains_on_every_anchor_and_holdout_changes_the_training():
    off, _, _ = _run()
    on, _, _ = _run(guard="holdout")
    assert off.guard is None
    assert "heldout_loss" not in off.history[0] and np.isfinite(on.history[0]["heldout_loss"])
    assert on.guard["kept_epoch"] in range(4)


def test_guard_survives_a_resume(tmp_path):
    embed_cfg, cfg = tiny_configs(epochs=2, guard="holdout")
    straight = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
                     out_dir=tmp_path / "a", progress=False)
    one = dataclasses.replace(cfg, epochs=1)
    train(tiny_model(embed_cfg, one), TinyImages(), tiny_pools(), one, embed_cfg,
          out_dir=tmp_path / "b", progress=False)
    resumed = train(tiny_model(embed_cfg, cfg, seed=9), TinyImages(), tiny_pools(), cfg, embed_cfg,
                    out_dir=tmp_path / "b", resume=True, progress=False)
    assert resumed.guard["losses"] == pytest.approx(straight.guard["losses"], rel=1e-4)
    assert resumed.guard["kept_epoch"] == straight.guard["kept_epoch"]
    for k, v in state_of(resumed.model).items():
        torch.testing.assert_close(v, state_of(straight.model)[k], rtol=0, atol=1e-6)


def test_guard_with_one_anchor_is_logged_off():
    pools = tiny_pools().take([0])  # take() keeps the baseline's row too
    assert len(pools) == 1 and len(pools.baseline) == 1
    embed_cfg, cfg = tiny_configs(epochs=1, guard="holdout")
    res = train(tiny_model(embed_cfg, cfg), TinyImages(), pools, cfg, embed_cfg, progress=False)
    assert res.guard == {"active": False, "fraction": 0.1, "reason": "1 anchor(s): none to hold out"}


def test_tuples_per_epoch_fraction():
    from mom.config import TrainConfig
    assert TrainConfig(tuples_per_epoch=0.25).epoch_tuples(2500) == 625
    assert TrainConfig(tuples_per_epoch=0.25, batch_size=42).epoch_tuples(100) == 42
    assert TrainConfig().epoch_tuples(77) == 77 and TrainConfig(tuples_per_epoch=9).epoch_tuples(5) == 9
    with pytest.raises(ValueError, match="tuples_per_epoch: must be >= 1 .* or a fraction"):
        TrainConfig(tuples_per_epoch=1.5)
    with pytest.raises(ValueError, match="guard: expected one of 'none', 'holdout'"):
        TrainConfig(guard="maybe")
    with pytest.raises(ValueError, match="guard_fraction: must be strictly between 0 and 0.5"):
        TrainConfig(guard_fraction=0.5)


def _count_embeddings(monkeypatch) -> list[bool]:
    """The training-set embeddings mom.train makes from now on: one ``after`` flag each
    (True: the guard's, after an epoch's steps; False: an epoch's start)."""
    import mom.train as mt
    calls = []
    real = mt._embed_all

    def counting(*a, **k):
        calls.append(k.get("after", False))
        return real(*a, **k)
    monkeypatch.setattr(mt, "_embed_all", counting)
    return calls


def _assert_same_training(one, other):
    timing = ("embed_s", "sample_s", "train_s", "tuples_per_s")
    strip = lambda h: [{k: v for k, v in r.items() if k not in timing} for r in h]  # noqa: E731
    assert strip(one.history) == strip(other.history)
    assert one.guard["losses"] == other.guard["losses"]
    a, b = state_of(one.model), state_of(other.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_next_epoch_starts_from_the_guards_embedding_and_trains_the_same(monkeypatch):
    # the guard embeds the training set after each epoch's steps; the next epoch starts
    # from that embedding instead of computing it again, with the same random stream
    import mom.train as mt
    calls = _count_embeddings(monkeypatch)
    reused, _, _ = _run(guard="holdout")  # 3 epochs
    n_reused = len(calls)
    calls.clear()
    monkeypatch.setattr(mt, "REUSE_AFTER_EMBEDDING", False)
    fresh, _, _ = _run(guard="holdout")
    assert n_reused == len(calls) - 2  # epochs 2 and 3 start from the guard's embedding
    _assert_same_training(reused, fresh)


def test_a_training_given_its_start_embedding_trains_the_same_without_embedding_it(monkeypatch):
    # the two rows of a run start from the same initial model: the second is handed the
    # first's epoch-0 embedding (TrainResult.start_embedding) and trains bit for bit alike
    embed_cfg, cfg = tiny_configs(epochs=2, guard="holdout")
    fresh = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
                  progress=False)
    assert fresh.start_embedding is not None and fresh.start_embedding.shape[0] == len(TinyImages())
    calls = _count_embeddings(monkeypatch)
    given = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
                  progress=False, start_embedding=fresh.start_embedding)
    assert False not in calls  # no start-of-epoch pass: epoch 0 was given, epoch 1 the guard's
    _assert_same_training(given, fresh)
    with pytest.raises(ValueError, match="start_embedding has 3 rows"):
        train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
              progress=False, start_embedding=fresh.start_embedding[:3])
