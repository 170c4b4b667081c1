"""The training loop, optimiser, checkpoints, resumption and faults (tiny CPU models)."""
from __future__ import annotations

import dataclasses
import errno
import json
import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

import mom.train as mt
from mom.train import freeze_batchnorm, make_optimizer, train, tuple_loss
from train_fixtures import TinyImages, state_of, tiny_configs, tiny_model, tiny_pools


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_optimizer_is_the_papers():
    _, cfg = tiny_configs(lr=0.01, lr_step_epoch=2, lr_gamma=0.1)
    opt, sched = make_optimizer([nn.Parameter(torch.zeros(2))], cfg)
    g = opt.param_groups[0]
    assert (g["momentum"], g["dampening"], g["weight_decay"]) == (0.9, 0.9, 5e-4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.01, 0.01, 0.001, 0.001])


def test_tuple_loss_dispatch():
    z = nn.functional.normalize(torch.randn(5, 4, 3), dim=2)  # (B, 2+K, D), K = 2
    w = torch.rand(5)
    from mom.losses import contrastive_loss, triplet_loss
    _, cfg = tiny_configs(loss="triplet", margin=0.5)
    ref = (triplet_loss(z[:, 0], z[:, 1], z[:, 2], weights=w, margin=0.5)
           + triplet_loss(z[:, 0], z[:, 1], z[:, 3], weights=w, margin=0.5)) / 2
    torch.testing.assert_close(tuple_loss(z, w, cfg), ref)
    _, cfg = tiny_configs(loss="contrastive", margin=0.7)
    torch.testing.assert_close(tuple_loss(z, w, cfg), contrastive_loss(z[:, 0], z[:, 1], z[:, 2:], margin=0.7))
    with pytest.raises(ValueError, match="loss"):
        tuple_loss(z, w, tiny_configs(loss="hinge")[1])


def test_train_writes_records_and_keeps_bn_frozen(tmp_path):
    embed_cfg, cfg = tiny_configs(epochs=2, lr_step_epoch=1, lr_gamma=0.5)
    model = tiny_model(embed_cfg, cfg)
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in bn]
    w0 = model.head.weight.detach().clone()
    seen = []
    res = train(model, TinyImages(), tiny_pools(), cfg, embed_cfg, out_dir=tmp_path, progress=False,
                eval_fn=lambda m, e: seen.append(e) or {"probe": float(e)})
    assert res.model is model and seen == [1, 2]
    for m, b in zip(bn, before):
        torch.testing.assert_close(m.running_mean, b)  # statistics frozen
    assert not torch.equal(model.head.weight, w0)  # but the weights trained
    h = res.history
    assert [r["epoch"] for r in h] == [1, 2] and [r["probe"] for r in h] == [1.0, 2.0]
    assert [r["lr"] for r in h] == [0.05, 0.025] and all(r["steps"] == 2 for r in h)
    assert all(np.isfinite(r["loss"]) and r["tuples_per_s"] > 0 for r in h)
    log = json.loads((tmp_path / "train.json").read_text())
    assert log["finished"] and log["train_config"]["epochs"] == 2 and len(log["history"]) == 2
    assert log["pools"]["method"] == "mom" and "torch" in log["env"] and "git_commit" in log["env"]
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert saved["meta"]["name"] == "tiny"
    torch.testing.assert_close(saved["state_dict"]["head.weight"], model.head.weight)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng", "history"} <= set(ck)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "model.pt", "train.json"]


def test_bn_statistics_move_without_freeze():
    embed_cfg, cfg = tiny_configs(epochs=1, freeze_bn=False)
    model = tiny_model(embed_cfg, cfg)
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    train(model, TinyImages(), tiny_pools(), cfg, embed_cfg, progress=False)
    assert not torch.allclose(bn.running_mean, before)
    assert freeze_batchnorm(model.train()) == 2 and not bn.training


def test_baseline_pools_run_through_the_same_code(monkeypatch):
    embed_cfg, cfg = tiny_configs(epochs=1, pools="euclidean")
    used = []
    real = mt.sample_epoch
    monkeypatch.setattr(mt, "sample_epoch", lambda p, *a: used.append(p.method) or real(p, *a))
    train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg, progress=False)
    assert used == ["euclidean"]


def test_contrastive_with_several_negatives_trains():
    embed_cfg, cfg = tiny_configs(epochs=1, loss="contrastive", margin=0.7, n_negatives=2,
                                  hard_negatives=4, augment=False)
    res = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg, progress=False)
    assert np.isfinite(res.history[0]["loss"])
    # on a separable toy set (pools = the true classes) the loss must fall
    ds = TinyImages(n=24)
    pools = tiny_pools()
    classes = [np.flatnonzero(ds.labels == c) for c in range(3)]
    pos = [np.setdiff1d(classes[ds.labels[a]], [a])[:3] for a in range(24)]
    neg = [np.setdiff1d(np.arange(24), classes[ds.labels[a]])[:6] for a in range(24)]
    pools.pos_ids, pools.neg_ids = np.concatenate(pos), np.concatenate(neg)
    pools.pos_weights = np.ones_like(pools.pos_weights)
    sep = dataclasses.replace(cfg, epochs=6, lr=0.05, lr_step_epoch=100)
    hist = train(tiny_model(embed_cfg, sep), ds, pools, sep, embed_cfg, progress=False).history
    losses = [h["loss"] for h in hist]
    assert losses[-1] < 0.7 * losses[0], losses


def test_resume_matches_an_uninterrupted_run(tmp_path):
    embed_cfg, cfg = tiny_configs(epochs=2)
    ds, pools = TinyImages(), tiny_pools()
    straight = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, out_dir=tmp_path / "a",
                     progress=False)
    # one epoch, then resume for the second
    one = dataclasses.replace(cfg, epochs=1)
    train(tiny_model(embed_cfg, one), ds, pools, one, embed_cfg, out_dir=tmp_path / "b", progress=False)
    resumed = train(tiny_model(embed_cfg, cfg, seed=99), ds, pools, cfg, embed_cfg, out_dir=tmp_path / "b",
                    resume=True, progress=False)
    # a run killed during epoch 2 (before its checkpoint), then resumed
    def kill(model, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return {}
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, out_dir=tmp_path / "c",
              progress=False, eval_fn=kill)
    killed = train(tiny_model(embed_cfg, cfg, seed=5), ds, pools, cfg, embed_cfg, out_dir=tmp_path / "c",
                   resume=True, progress=False)
    ref = state_of(straight.model)
    for other in (resumed, killed):
        for k, v in state_of(other.model).items():
            torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)
        assert [r["loss"] for r in other.history] == pytest.approx([r["loss"] for r in straight.history])
    with pytest.raises(ValueError, match="different settings.*margin"):
        train(tiny_model(embed_cfg, cfg), ds, pools, dataclasses.replace(cfg, margin=0.1), embed_cfg,
              out_dir=tmp_path / "b", resume=True, progress=False)


def test_empty_pools_and_too_few_tuples():
    embed_cfg, cfg = tiny_configs()
    p = tiny_pools()
    empty = dataclasses.replace(p, anchors=p.anchors[:0], pos_offsets=p.pos_offsets[:1],
                                neg_offsets=p.neg_offsets[:1], baseline=None)
    with pytest.raises(ValueError, match="empty"):
        train(tiny_model(embed_cfg, cfg), TinyImages(), empty, cfg, embed_cfg, progress=False)
    with pytest.raises(ValueError, match="resume=True needs"):
        train(tiny_model(embed_cfg, cfg), TinyImages(), p, cfg, embed_cfg, resume=True, progress=False)
    with pytest.raises(ValueError, match="no full batch"):
        train(tiny_model(embed_cfg, cfg), TinyImages(), p, dataclasses.replace(cfg, tuples_per_epoch=5),
              embed_cfg, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    embed_cfg, cfg = tiny_configs(epochs=3)
    real, calls = mt.tuple_loss, []

    def poisoned(z, w, c):
        calls.append(1)
        loss = real(z, w, c)
        return loss * float("nan") if len(calls) == 3 else loss  # epoch 2, step 1

    monkeypatch.setattr(mt, "tuple_loss", poisoned)
    model = tiny_model(embed_cfg, cfg)
    with pytest.raises(FloatingPointError, match="epoch 2, step 1/2.*checkpoint"):
        train(model, TinyImages(), tiny_pools(), cfg, embed_cfg, out_dir=tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_full_disk_while_checkpointing(tmp_path, monkeypatch):
    embed_cfg, cfg = tiny_configs(epochs=2)
    ds, pools = TinyImages(), tiny_pools()
    one = dataclasses.replace(cfg, epochs=1)
    train(tiny_model(embed_cfg, one), ds, pools, one, embed_cfg, out_dir=tmp_path, progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="epoch 2.*No space left.*previous checkpoint is left intact") as ei:
        train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, out_dir=tmp_path, resume=True,
              progress=False)
    assert ei.value.errno == errno.ENOSPC
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "model.pt", "train.json"]  # no tmp
    # space freed: the run resumes from the intact checkpoint
    res = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, out_dir=tmp_path, resume=True,
                progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2]


def _killed_while_checkpointing(out_dir: str) -> None:
    """Child process: train 2 epochs; SIGKILL itself half-way through writing epoch 2's checkpoint."""
    real_save, saves = torch.save, []

    def dying_save(obj, f, *a, **k):
        saves.append(1)
        if len(saves) == 2:
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(obj, f, *a, **k)

    torch.save = dying_save
    embed_cfg, cfg = tiny_configs(epochs=2)
    train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg, out_dir=out_dir,
          progress=False)


def test_resume_after_sigkill_during_checkpoint_write(tmp_path):
    embed_cfg, cfg = tiny_configs(epochs=2)
    straight = train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg, progress=False)
    child = multiprocessing.get_context("fork").Process(target=_killed_while_checkpointing,
                                                         args=(str(tmp_path),))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the half-written temp file; checkpoint.pt is still epoch 1
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 1
    resumed = train(tiny_model(embed_cfg, cfg, seed=7), TinyImages(), tiny_pools(), cfg, embed_cfg,
                    out_dir=tmp_path, resume=True, progress=False)
    ref = state_of(straight.model)
    for k, v in state_of(resumed.model).items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "model.pt", "train.json"]


def test_scoring_after_each_epoch_does_not_change_training():
    # the study reads epochs=1 off a 2-epoch run that is scored after every epoch
    embed_cfg, cfg = tiny_configs(epochs=2)
    ds, pools = TinyImages(), tiny_pools()
    seen = {}

    def score(model, epoch):
        from mom.extract import extract, make_transform
        tf = make_transform(model.backbone.meta, cfg.image_size, train=False)
        extract(model, ds, tf, device="cpu", batch_size=5, progress=False)  # a DataLoader pass
        seen[epoch] = state_of(model)
        return {"score": float(epoch)}

    two = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, progress=False, eval_fn=score)
    one_cfg = dataclasses.replace(cfg, epochs=1)
    one = train(tiny_model(embed_cfg, one_cfg), ds, pools, one_cfg, embed_cfg, progress=False)
    plain = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, progress=False)
    for k, v in state_of(one.model).items():
        torch.testing.assert_close(seen[1][k], v, rtol=0, atol=0)
    for k, v in state_of(plain.model).items():
        torch.testing.assert_close(state_of(two.model)[k], v, rtol=0, atol=0)
    assert [h["score"] for h in two.history] == [1.0, 2.0]


def test_mean1_weights_rescale_the_step_and_leave_unit_weights_alone():
    from mom.sampler import rescale_weights
    w = np.array([0.1, 0.2, 0.3], np.float32)
    assert rescale_weights(w, "raw") is not None and np.array_equal(rescale_weights(w, "raw"), w)
    np.testing.assert_allclose(rescale_weights(w, "mean1"), w / w.mean())
    assert np.array_equal(rescale_weights(np.ones(4, np.float32), "mean1"), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="mean 0"):
        rescale_weights(np.zeros(3), "mean1")
    with pytest.raises(ValueError, match="train.weights"):
        rescale_weights(w, "sum1")

    embed_cfg, cfg = tiny_configs(epochs=1)
    ds, pools = TinyImages(), tiny_pools()
    raw = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, progress=False)
    m1_cfg = dataclasses.replace(cfg, weights="mean1")
    m1 = train(tiny_model(embed_cfg, m1_cfg), ds, pools, m1_cfg, embed_cfg, progress=False)
    assert m1.history[0]["loss"] != pytest.approx(raw.history[0]["loss"])  # MoM weights < 1: bigger loss
    assert m1.history[0]["mean_raw_weight"] == pytest.approx(raw.history[0]["mean_raw_weight"])
    # the Euclidean baseline's weights are all 1: mean1 is the same training, bit for bit
    eu, eu1 = (dataclasses.replace(c, pools="euclidean") for c in (cfg, m1_cfg))
    a = train(tiny_model(embed_cfg, eu), ds, pools, eu, embed_cfg, progress=False)
    b = train(tiny_model(embed_cfg, eu1), ds, pools, eu1, embed_cfg, progress=False)
    for k, v in state_of(a.model).items():
        torch.testing.assert_close(state_of(b.model)[k], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="weights"):  # refused when the config is built
        train(tiny_model(embed_cfg, cfg), ds, pools, dataclasses.replace(cfg, weights="x"),
              embed_cfg, progress=False)


@pytest.mark.parametrize("loss,negatives", [("triplet", 1), ("contrastive", 2)])
def test_micro_batches_give_the_whole_batch_step(loss, negatives):
    # frozen BN: each image's forward is independent of the batch, so accumulating the
    # scaled micro-batch gradients is the whole batch's gradient (up to rounding)
    embed_cfg, cfg = tiny_configs(epochs=2, loss=loss, n_negatives=negatives, hard_negatives=4,
                                  margin=0.7)
    ds, pools = TinyImages(), tiny_pools()
    whole = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, progress=False)
    for m in (1, 4):  # 6 tuples a batch: micro-batches of 1 and of 4 + 2
        part_cfg = dataclasses.replace(cfg, micro_batch=m)
        part = train(tiny_model(embed_cfg, part_cfg), ds, pools, part_cfg, embed_cfg,
                     progress=False)
        np.testing.assert_allclose([h["loss"] for h in part.history],
                                   [h["loss"] for h in whole.history], rtol=1e-5)
        for k, v in state_of(whole.model).items():
            torch.testing.assert_close(state_of(part.model)[k], v, rtol=1e-4, atol=1e-6)
    # a micro-batch as large as the batch is the plain path, bit for bit
    same_cfg = dataclasses.replace(cfg, micro_batch=6)
    same = train(tiny_model(embed_cfg, same_cfg), ds, pools, same_cfg, embed_cfg, progress=False)
    for k, v in state_of(whole.model).items():
        torch.testing.assert_close(state_of(same.model)[k], v, rtol=0, atol=0)


def test_micro_batches_need_frozen_batchnorm():
    from mom.config import TrainConfig
    with pytest.raises(ValueError, match=r"TrainConfig.micro_batch: 4 needs freeze_bn true"):
        TrainConfig(micro_batch=4, freeze_bn=False)
    with pytest.raises(ValueError, match=r"TrainConfig.micro_batch: must be >= 1, got 0"):
        TrainConfig(micro_batch=0)
