"""The ``mom`` command: ``run`` does every stage; ``embed``, ``mine``, ``train``,
``evaluate`` do one stage each from files; ``reproduce`` runs the notebooks.

Examples::

    mom run --params default --out runs/default          # again: reuses what is done
    mom run --params default --out runs/default --force  # recompute every stage
    mom run --params paper --data-root ~/data/cub --out runs/paper --set train.epochs=2
    mom embed --params default --split train --out feats.npy
    mom mine feats.npy --out pools.npz --k-pos 200 --k-neg 2500   (or --k-pos auto --k-neg auto)
    mom train --params default --pools pools.npz --features feats.npy --out runs/mom
    mom evaluate --params default --checkpoint runs/mom/<checkpoint> --out metrics.json
    mom evaluate test_emb.npy --labels test_labels.npy

Heavy modules (torch) are imported inside the sub-commands, so ``mom --help``
and ``mom mine`` start quickly. A mistake in the input (a parameter, a file, an
output path) is one line on stderr, ``mom CMD: error: ...``, and exit status 2,
before any heavy work and before any output is written; an error that one setting
would fix names it as a ``--set`` (:class:`mom.errors.NeedsSetting`). Ctrl-C ends
with one line saying what was kept and how to continue, exit status 130 (``mom run``
writes the traceback to ``run.log``). ``-q`` and ``--version`` work before or after
the sub-command. ``python -m mom`` is the same command.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from .version import __version__
from .config import MiningConfig, RunConfig, apply_overrides, choices, load_params, parse_bool
from .errors import NeedsSetting

__all__ = ["main", "build_parser", "mining_config_from_args", "config_from_args"]

log = logging.getLogger("mom")


# ---------------------------------------------------------------- helpers
def _field_type(f: dataclasses.Field):
    """argparse type for a dataclass field, from its default's type."""
    default = f.default
    if default is None and f.name == "knn_nlist":  # a number; unset: the index's default
        return int
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, (int, float)):
        if f.name in ("k_pos", "k_neg"):  # a number, or auto (docs/method.md §6a)
            return _int_or_auto
        return type(default)
    return str


def _int_or_auto(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or auto, got {text!r}") from None


def _add_config_args(p: argparse.ArgumentParser, params_default: str | None = "default") -> None:
    p.add_argument("--params", default=params_default,
                   help="parameter file: smoke | default | paper | a YAML path"
                        + (f" (default: {params_default})" if params_default else ""))
    p.add_argument("--data-root", default=None, help="dataset folder (sets data.root)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SEC.FIELD=VALUE",
                   help="override one parameter, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | mps (sets embed.device and train.device)")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """--data-root, --device and --set as one list of SEC.FIELD=VALUE overrides."""
    extra = []
    if getattr(args, "data_root", None):
        extra.append(f"data.root={args.data_root}")
    if getattr(args, "device", None):
        extra += [f"embed.device={args.device}", f"train.device={args.device}"]
    # --set comes last so that it wins over the convenience flags
    return extra + list(args.overrides)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig named by --params with --data-root, --device and --set applied."""
    return apply_overrides(load_params(args.params), overrides_from_args(args))


def _mining_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def mining_config_from_args(args: argparse.Namespace) -> MiningConfig:
    """MiningConfig: --params' mining section (or the defaults, docs/method.md §16), then
    each flag given."""
    base = load_params(args.params).mining if args.params else MiningConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(MiningConfig)
             if getattr(args, f.name) is not None}
    try:
        return dataclasses.replace(base, **given)
    except ValueError as exc:  # "MiningConfig.k_pos: ..." -> "--k-pos: MiningConfig.k_pos: ..."
        name = str(exc).split(":", 1)[0].removeprefix("MiningConfig.")
        if name in given:
            raise ValueError(f"{_mining_flag(name)}: {exc}") from None
        raise


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# ---------------------------------------------------------------- parser
DESCRIPTION = """\
Mining on Manifolds (Iscen, Tolias, Avrithis, Chum; CVPR 2018): fine-tune an image
embedding on hard positives and negatives mined from a kNN graph, without labels.
"run" does every stage; embed, mine, train and evaluate do one stage each from files;
study repeats the trainings over seeds; reproduce runs the notebooks."""

EPILOG = """\
examples:
  mom run --params default --out runs/default         again: reuses what is done
  mom run --params default --out runs/x --set train.epochs=2
  mom embed --params default --split train --out feats.npy
  mom mine feats.npy --out pools.npz --k-pos auto --k-neg auto
  mom train --params default --pools pools.npz --out runs/mom
  mom evaluate test_emb.npy --labels test_labels.npy
  mom reproduce --params default

"mom COMMAND --help" lists a command's options. Parameter files: smoke, default,
paper, paper_oxford, or a YAML path; --set SECTION.FIELD=VALUE changes one field."""


def _global_flags(top: bool) -> argparse.ArgumentParser:
    """-q and --version, for the top-level parser and (``top=False``) every sub-command:
    there they default to SUPPRESS, so that a flag given before the sub-command is kept."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-q", "--quiet", action="store_true",
                       default=False if top else argparse.SUPPRESS,
                       help="no progress bars or log lines")
    flags.add_argument("--version", action="version", version=f"mom {__version__}",
                       help="print the version and exit")
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mom", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[_global_flags(top=True)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = functools.partial(sub.add_parser, parents=[_global_flags(top=False)])

    p = command("run", help="embed, mine, train and evaluate: initial, euclidean, mom")
    _add_config_args(p)
    p.add_argument("--out", default=None,
                   help="output folder (results.json and the rest); default: "
                        "runs/PARAMS/NAME-KEY under the current folder, the run the "
                        "notebooks reuse when started from the repository")
    p.add_argument("--cache-dir", default=None, help="cache the mining descriptors here")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", dest="force", action="store_false", default=False,
                       help="reuse the stages an earlier run left in --out whose configuration "
                            "matches, and continue a killed training (the default)")
    again.add_argument("--force", dest="force", action="store_true", default=False,
                       help="recompute every stage, ignoring what an earlier run left in --out")

    p = command("embed", help="descriptors of one split -> FEATURES.npy")
    _add_config_args(p)
    p.add_argument("--split", default="train", choices=("train", "test"))
    p.add_argument("--out", required=True, help="features .npy (N, D)")
    p.add_argument("--labels-out", default=None, help="also write the split's labels .npy")
    p.add_argument("--checkpoint", default=None,
                   help="embed with a trained model (test transform) instead of the embed config")
    p.add_argument("--cache-dir", default=None)

    p = command("mine", help="FEATURES.npy -> POOLS.npz (every MiningConfig field is a flag)")
    p.add_argument("features", nargs="?", default=None,
                   help="features .npy (N, D), rows L2-normalised, or a MAT-file "
                        "(.mat, v5 or v7.3) whose variable --var is D x N")
    p.add_argument("--features", dest="features_flag", default=None, metavar="FILE",
                   help="the same as the FEATURES argument (e.g. --features googlenet_rmac_ms_"
                        "pcaw512_CUB.mat)")
    p.add_argument("--var", default="V", help="variable of a .mat features file (default: V)")
    p.add_argument("--out", required=True, help="pools .npz, or a folder with --format release")
    p.add_argument("--format", default="npz", choices=("npz", "release"),
                   help="npz (Pools.save) or release: the authors' anchors/pos/neg/posw/negw.txt")
    p.add_argument("--params", default=None,
                   help="take the mining section of this parameter file "
                        "(default: the paper's values)")
    p.add_argument("--labels", default=None,
                   help="labels .npy, used ONLY to print pool diagnostics")
    group = p.add_argument_group("mining parameters (default: --params, else the paper's values)")
    for f in dataclasses.fields(MiningConfig):
        names = choices(MiningConfig, f.name)
        group.add_argument(_mining_flag(f.name), dest=f.name, type=_field_type(f), default=None,
                           metavar=("INT|auto" if f.name in ("k_pos", "k_neg")
                                    else "INT" if f.default is None
                                    else type(f.default).__name__.upper()),
                           help=(f"{' | '.join(names)}; " if names else "") + f"default {f.default!r}")

    p = command("train", help="fine-tune on a pools file -> checkpoint + train.json")
    _add_config_args(p)
    p.add_argument("--pools", required=True,
                   help="pools .npz written by mom mine, or a release folder (with anchors.txt)")
    p.add_argument("--features", default=None,
                   help="training-split descriptors .npy used to initialise the head (pca init); "
                        "embedded afresh when omitted")
    p.add_argument("--method", default=None, choices=("mom", "euclidean"),
                   help="which pools to train on (sets train.pools)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")

    p = command("evaluate", help="Recall@K and NMI of embeddings or of a checkpoint")
    _add_config_args(p)
    p.add_argument("embeddings", nargs="?", default=None, help="embeddings .npy (N, d)")
    p.add_argument("--labels", default=None, help="labels .npy for EMBEDDINGS")
    p.add_argument("--checkpoint", default=None, help="evaluate this trained model on --split")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--out", default=None, help="also write the metrics as JSON")

    p = command("study", help="multi-seed comparison of initial, euclidean and mom "
                                     "(selection on validation classes, CIs, paired tests)")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="study folder (study.json, runs.csv, figures/)")
    p.add_argument("--seeds", type=int, default=None,
                   help="training seeds per row (default: the study file's, else 5)")
    p.add_argument("--grid", default=None,
                   help="YAML grid of section.field: [values] (default: the grid of the bundled "
                        "study file params/studies/NAME.yaml, when there is one)")
    p.add_argument("--no-grid", action="store_true", help="no grid: the parameter file's setting only")
    p.add_argument("--select", default="validation", choices=("validation", "none", "rows"),
                   help="validation: choose each row's setting on held-out training classes; "
                        "none: the parameter file's settings, no labels used (its rows "
                        "section left out); rows: each row at the parameter file's own "
                        "setting (its rows section)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of the training classes held out for validation, at least 2 "
                        "classes (default 0.2)")
    p.add_argument("--select-seeds", type=int, default=None,
                   help="seeds per setting on validation (default 1)")
    p.add_argument("--select-metric", default=None,
                   help="validation score that picks the setting (default recall@1+nmi: "
                        "the mean of the two)")
    p.add_argument("--work-dir", default=None,
                   help="descriptors, pools and finished trainings (default OUT/work); "
                        "studies sharing it reuse each other's trainings")

    p = command("compare-pools", help="per-anchor Jaccard of P+/P- and Spearman of weights")
    p.add_argument("a", metavar="A", help="pools .npz or release folder")
    p.add_argument("b", metavar="B", help="pools .npz or release folder")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the comparison as JSON")

    p = command("reproduce", help="execute the notebooks for a parameter file (papermill)")
    _add_config_args(p)
    p.add_argument("--out", default=None,
                   help="output folder (default: the repository's figures/, results/, "
                        "notebooks/executed/, runs/ and build/executed/, or build/ for the smoke "
                        "parameters; outside a source checkout, the current folder)")
    p.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                   help="only these notebooks (default: all, in order)")
    p.add_argument("--timeout", type=int, default=None, help="seconds per notebook cell")
    return parser


# ---------------------------------------------------------------- commands
def _check_outputs(args, **kinds: str) -> None:
    """check_output_path for each given argument: ``_check_outputs(args, out="dir")``."""
    from .io import check_output_path  # numpy: not for `mom --help`
    for name, kind in kinds.items():
        if getattr(args, name, None):
            check_output_path(getattr(args, name), kind, what="--" + name.replace("_", "-"))


def _cmd_run(args) -> int:
    from .pipeline import format_results, run
    cfg = config_from_args(args)
    if args.out is None:  # where a notebook of these parameters looks for their run
        from .companion.runs import run_dir_for
        args.out = str(run_dir_for(cfg, Path("runs") / Path(args.params).stem))
    _check_outputs(args, out="dir", cache_dir="dir")
    out = Path(args.out)
    # run() makes the folder once the input is known to be good: run.log opens with its
    # first line, so a mistake found before that leaves nothing behind. A resumed run
    # appends to the log of the run it continues.
    handler = logging.FileHandler(out / "run.log", mode="w" if args.force else "a", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("mom").addHandler(handler)
    try:
        results = run(cfg, out, progress=not args.quiet, cache_dir=args.cache_dir,
                      resume=not args.force)
    except BaseException as exc:
        if out.is_dir():  # the error goes to run.log too (main prints it on stderr)
            what = ("interrupted (Ctrl-C)", ()) if isinstance(exc, KeyboardInterrupt) else \
                ("error: %s", (_one_line(exc),))
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, *what,
                                          (type(exc), exc, exc.__traceback__)))
        raise
    finally:
        logging.getLogger("mom").removeHandler(handler)
        handler.close()
    print(format_results(results))
    notes = [f"{results['timings_s']['total']:.0f} s"]
    if results["reused"]:
        notes.append(f"reused {len(results['reused'])} stage(s): {', '.join(results['reused'])}")
    for stage, at in results.get("resumed", {}).items():
        notes.append(f"{stage} resumed from its checkpoint at epoch {at['from_epoch']} "
                     f"of {at['epochs']}")
    print(f"wrote {out / 'results.json'} ({'; '.join(notes)})")
    return 0


def _cmd_embed(args) -> int:
    import numpy as np

    from .datasets import build_dataset
    from .distributed import launched_by_torchrun
    from .io import save_npy
    from .datasets.splits import train_split
    from .pipeline import check_config, embed_split, embed_with_model
    cfg = config_from_args(args)
    _check_outputs(args, out="file", labels_out="file", cache_dir="dir")
    if args.labels_out and Path(args.labels_out).resolve() == Path(args.out).resolve():
        raise ValueError(f"--labels-out {args.labels_out!r} is the --out file")
    check_config(cfg)
    ds = train_split(cfg) if args.split == "train" else build_dataset(cfg.data, args.split)
    # under torchrun every rank embeds its shard of the split (mom/extract.py); rank 0 writes
    sharded = launched_by_torchrun()
    main = not sharded or int(os.environ["RANK"]) == 0
    progress, desc = not args.quiet, f"embed {args.split}"
    if args.checkpoint and sharded:
        feats = _embed_checkpoint_sharded(args, cfg, ds, progress, desc)  # written by rank 0
    elif args.checkpoint:
        from .pipeline import load_model
        feats = embed_with_model(load_model(args.checkpoint, device=cfg.train.device), ds, cfg,
                                 progress=progress, desc=desc)
        save_npy(args.out, feats)
    elif sharded and not args.cache_dir:
        if cfg.embed.whitening and args.split != "train":
            raise ValueError(f"mom embed --split {args.split} with embed.whitening under torchrun: "
                             "the whitening is fitted on the training split; run this split "
                             "without torchrun, or with --cache-dir")
        feats = _embed_sharded(args.out, cfg, ds, progress, desc)  # written by rank 0
    else:  # under torchrun the shards go beside the cache entry
        # the whitening is always fitted on the training split, never on the one embedded
        fit_on = train_split(cfg) if cfg.embed.whitening and args.split != "train" else None
        feats = embed_split(cfg, ds, cache_dir=args.cache_dir, progress=progress, desc=desc,
                            whiten_on=fit_on)[0]
        if main:
            save_npy(args.out, feats)
    if args.labels_out and main:
        save_npy(args.labels_out, np.asarray(ds.labels))
    if main:
        print(f"wrote {args.out}: {feats.shape[0]} x {feats.shape[1]} ({ds.name}, {args.split})")
    return 0


def _embed_sharded(out: str, cfg: RunConfig, ds, progress: bool, desc: str):
    """``mom embed --out`` under torchrun: the shards merge into ``out`` itself (or, with
    ``embed.whitening``, into ``<out>.raw.npy``, whitened into ``out`` by rank 0 and removed)."""
    import numpy as np

    from .extract import embed_to_file
    from .io import save_npy
    from .whitening import apply_whitening, learn_whitening
    raw_cfg = dataclasses.replace(cfg.embed, whitening=False)
    if not cfg.embed.whitening:
        return embed_to_file(ds, out, raw_cfg, progress=progress, desc=desc)
    import time

    raw_path = Path(out).with_name(Path(out).name + ".raw.npy")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    # each rank marks that it holds its copy; rank 0 removes the raw file after all have
    # (the process group is gone once embed_to_file returns, so the marks are files; a
    # killed run's marks go first: no rank marks before embed_to_file's merge, which waits
    # for rank 0)
    marks = [raw_path.with_name(raw_path.name + f".read{r}") for r in range(world)]
    if rank == 0:
        for m in marks:
            m.unlink(missing_ok=True)
    raw = np.array(embed_to_file(ds, raw_path, raw_cfg, progress=progress, desc=desc))  # a copy
    marks[rank].touch()
    mean, P = learn_whitening(raw, cfg.embed.whiten_dim)  # as pipeline.embed_split
    feats = np.asarray(apply_whitening(raw, mean, P), dtype=np.float32)
    if rank == 0:
        save_npy(out, feats)
        deadline = time.monotonic() + 600
        while not all(m.exists() for m in marks) and time.monotonic() < deadline:
            time.sleep(0.05)
        raw_path.unlink(missing_ok=True)
        for m in marks:
            m.unlink(missing_ok=True)
    return feats


def _embed_checkpoint_sharded(args, cfg: RunConfig, ds, progress: bool, desc: str):
    """``mom embed --checkpoint`` under torchrun: :func:`mom.extract.extract_to_file`
    with the test transform of ``pipeline.embed_with_model``, keyed by the weights file."""
    import hashlib

    from .extract import extract_to_file, make_transform
    from .io import sha256_file
    from .pipeline import load_model
    from .train import WEIGHTS
    model = load_model(args.checkpoint, device=cfg.train.device)
    weights = Path(args.checkpoint)
    weights = weights / WEIGHTS if weights.is_dir() else weights
    key = hashlib.sha256(json.dumps({
        "weights_sha256": sha256_file(weights), "image_size": cfg.train.image_size,
        "dataset": ds.fingerprint(), "n": len(ds)}, sort_keys=True).encode()).hexdigest()
    return extract_to_file(model, ds, make_transform(model.backbone.meta, cfg.train.image_size, train=False),
                           args.out, key=key, device=cfg.train.device, batch_size=cfg.embed.batch_size,
                           num_workers=cfg.embed.num_workers, progress=progress, desc=desc)


def _load_npy(path: str, what: str, mmap: bool = False):
    import numpy as np
    if not Path(path).is_file():
        raise ValueError(f"{what} file {path!r} does not exist")
    try:  # memory-mapped: a large features file is paged in as the search reads it
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{what} file {path!r} is not a readable .npy: {exc}") from exc


def _cmd_mine(args) -> int:
    import numpy as np

    if (args.features is None) == (args.features_flag is None):
        raise ValueError("give the features file once: FEATURES or --features FILE")
    args.features = args.features or args.features_flag
    cfg = mining_config_from_args(args)
    _check_outputs(args, out="dir" if args.format == "release" else "file")
    from .knn import check_features
    from .mining import mine, pool_diagnostics
    if args.features.lower().endswith(".mat"):
        from .release import load_mat_features
        raw = load_mat_features(args.features, args.var)
    else:
        raw = _load_npy(args.features, "features", mmap=True)
    feats = check_features(raw, f"features file {args.features!r}")
    n = feats.shape[0]
    if n <= cfg.k_graph:  # the kNN graph counts each point as its own first neighbour
        fix = f"pass --k-graph {n - 1} or less" if n > 2 else "mining needs at least 3 rows"
        raise ValueError(f"features file {args.features!r} has {n} rows, too few for "
                         f"--k-graph {cfg.k_graph} (needs more than {cfg.k_graph} rows): {fix}")
    if cfg.k_pos != "auto" and cfg.k_pos > n:
        raise ValueError(f"--k-pos {cfg.k_pos} exceeds the {n} rows of features file "
                         f"{args.features!r}")
    labels = None
    if args.labels:  # checked before mining: a mismatch leaves no pools file behind
        labels = _load_npy(args.labels, "labels")
        if labels.shape != (n,):
            raise ValueError(f"labels file {args.labels!r}: shape {labels.shape}, expected ({n},) "
                             f"to match features file {args.features!r}")
    pools = mine(feats, cfg, progress=not args.quiet)
    if args.format == "release":
        from .release import save_release
        save_release(pools, args.out)
    else:
        pools.save(args.out)
    print(f"wrote {args.out}: {len(pools)} anchors, {pools.n_skipped} skipped")
    if pools.depths is not None and pools.depths.summary():
        print(pools.depths.summary())
    if labels is not None:
        diagnostics = pool_diagnostics(pools, feats, labels)
        _print_json({k: v for k, v in diagnostics.items() if np.ndim(v) == 0})  # means only
    return 0


def _cmd_train(args) -> int:
    from .datasets.splits import build_splits
    from .pipeline import check_config, embed_split, head_features
    from .train import build_model, train
    cfg = config_from_args(args)
    if args.method:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, pools=args.method))
    _check_outputs(args, out="dir")
    check_config(cfg)
    from .release import load_pools
    pools = load_pools(args.pools)  # a .npz or a release folder; names the path when missing
    try:
        chosen = pools.select(cfg.train.pools)  # the baseline may be missing: fail before any work
    except ValueError as exc:
        raise ValueError(f"pools {args.pools!r}: {exc}") from None
    ds = build_splits(cfg)[0]
    top = max((int(a.max()) for a in (chosen.anchors, chosen.pos_ids, chosen.neg_ids) if a.size),
              default=-1)
    if top >= len(ds):
        raise ValueError(f"pools {args.pools!r} refer to image {top}, but the training "
                         f"split has {len(ds)} images: it was mined from other features")
    feats = _load_npy(args.features, "features") if args.features else None
    if feats is not None and (feats.ndim != 2 or feats.shape[0] != len(ds)):
        raise ValueError(f"features file {args.features!r}: shape {feats.shape}, expected "
                         f"({len(ds)}, C) for the {len(ds)} images of the training split")
    if feats is None:
        feats = head_features(cfg, ds, embed_split(cfg, ds, progress=not args.quiet,
                                                   desc="embed train")[1],
                              progress=not args.quiet, desc="embed train (head init)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg.embed, cfg.train, init_features=feats)
    result = train(model, ds, pools, cfg.train, cfg.embed, out_dir=out, resume=args.resume,
                   progress=not args.quiet)
    last = result.history[-1] if result.history else {}
    print(f"trained {cfg.train.pools} for {len(result.history)} epoch(s) -> {out}  {last}")
    return 0


def _cmd_evaluate(args) -> int:
    import numpy as np

    from .metrics import evaluate_embeddings
    from .io import save_json
    cfg = config_from_args(args)
    _check_outputs(args, out="file")
    if args.checkpoint:
        from .datasets.splits import build_splits
        from .pipeline import check_config, evaluate_model, load_model
        check_config(cfg)
        # retrieval datasets: "test" is the benchmark (queries ranked against the database)
        ds = dict(zip(("train", "test"), build_splits(cfg)))[args.split]
        model = load_model(args.checkpoint, device=cfg.train.device)
        metrics, _ = evaluate_model(model, ds, cfg, progress=not args.quiet,
                                    desc=f"embed {args.split}")
    elif args.embeddings:
        if not args.labels:
            raise ValueError("evaluate EMBEDDINGS needs --labels LABELS.npy")
        emb = _load_npy(args.embeddings, "embeddings")
        labels = _load_npy(args.labels, "labels")
        if emb.ndim != 2 or labels.shape != (emb.shape[0],):
            raise ValueError(f"embeddings {emb.shape} and labels {labels.shape} do not match")
        metrics = evaluate_embeddings(np.asarray(emb, np.float32), labels, cfg.eval)
    else:
        raise ValueError("evaluate needs EMBEDDINGS.npy --labels LABELS.npy, or --checkpoint")
    if args.out:
        save_json(args.out, metrics)
    _print_json(metrics)
    return 0


def _cmd_study(args) -> int:
    from .studies import load_study, study, summary_table
    cfg = config_from_args(args)
    _check_outputs(args, out="dir", work_dir="dir")
    scfg = load_study(args.params, select=args.select, seeds=args.seeds,
                      grid={} if args.no_grid else args.grid)
    scfg = dataclasses.replace(scfg, **{k: v for k, v in (
        ("val_fraction", args.val_fraction), ("select_seeds", args.select_seeds),
        ("select_metric", args.select_metric)) if v is not None})
    result = study(cfg, args.out, scfg, work_dir=args.work_dir, progress=not args.quiet)
    try:  # matplotlib and seaborn come with the notebooks extra
        from .companion.viz import save_study_figures
    except ImportError as exc:
        print(f"no figures ({exc.name} is not installed)")
    else:
        save_study_figures(result, Path(args.out) / "figures")
    print(summary_table(result))
    print("selected:", json.dumps(result["selected"], sort_keys=True))
    print(f"wrote {Path(args.out) / 'study.json'} ({result['timings_s']['total']:.0f} s)")
    return 0


def _cmd_compare_pools(args) -> int:
    from .io import save_json
    from .release import compare_pools, format_comparison, load_pools
    _check_outputs(args, json="file")
    result = compare_pools(load_pools(args.a), load_pools(args.b))
    print(format_comparison(result, (args.a, args.b)))
    if args.json:
        save_json(args.json, {"a": args.a, "b": args.b, **result})
        print(f"wrote {args.json}")
    return 0


def _cmd_reproduce(args) -> int:
    from .companion.reproduce import NotebookError, reproduce
    _check_outputs(args, out="dir")
    try:  # reproduce checks the parameters before any notebook starts
        done = reproduce(args.params, args.out, notebooks=args.notebooks,
                         overrides=overrides_from_args(args),
                         timeout=args.timeout, progress=not args.quiet)
    except NotebookError as exc:
        print(f"mom reproduce: {exc}", file=sys.stderr)
        return 1
    for name, info in done.get("notebooks", {}).items():
        print(f"{name}: {info.get('published')} ({info.get('seconds', 0):.0f} s; HTML "
              f"{info.get('html')})")
    if done.get("index"):
        print(f"index of the notebooks (HTML) and figures: {done['index']}")
    moved = done.get("moved", [])
    for m in moved:
        print(f"moved beyond the cross-machine tolerance ({m['tolerance']}): {m['file']} "
              f"{m['key']}: {m['before']:.2f} -> {m['after']:.2f}")
    if not moved:
        print("no committed number moved beyond the cross-machine tolerance")
    return 0


_COMMANDS = {"run": _cmd_run, "embed": _cmd_embed, "mine": _cmd_mine, "train": _cmd_train,
             "evaluate": _cmd_evaluate, "study": _cmd_study, "reproduce": _cmd_reproduce,
             "compare-pools": _cmd_compare_pools}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mom`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.quiet and not logging.getLogger("mom").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        logging.getLogger("mom").addHandler(handler)
    logging.getLogger("mom").setLevel(logging.INFO)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, OSError) as exc:  # bad input, or a file that cannot be read or written
        print(f"mom {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, what was kept and how to go on
        print(f"mom {args.command}: interrupted; {_after_interrupt(args)}", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it


def _after_interrupt(args) -> str:
    """What an interrupted command kept and how to continue, in one sentence."""
    again = "the same command continues"
    if args.command == "run":
        from .pipeline import kept_stages
        out = Path(args.out)
        kept = kept_stages(out) if out.is_dir() else {"done": [], "checkpoints": {}}
        parts = [f"{len(kept['done'])} finished stage(s) ({', '.join(kept['done'])})"] \
            if kept["done"] else []
        parts += [f"{stage}'s checkpoint" + (f" (epoch {n})" if n is not None else "")
                  for stage, n in kept["checkpoints"].items()]
        if not parts:
            return f"no stage had finished in {out}; the same command starts again"
        log_note = f" (details in {out / 'run.log'})" if (out / "run.log").is_file() else ""
        return f"kept in {out}: {' and '.join(parts)}; {again} from there{log_note}"
    if args.command == "train":
        if (Path(args.out) / "checkpoint.pt").is_file():
            return f"the last finished epoch is in {Path(args.out) / 'checkpoint.pt'}; " \
                   "the same command with --resume continues from it"
        return "no epoch had finished; the same command starts again"
    if args.command == "study":
        work = Path(args.work_dir) if args.work_dir else Path(args.out) / "work"
        return f"every finished training is kept in {work}; {again} from there"
    if args.command == "reproduce":
        from .companion.reproduce import output_dirs
        return f"the finished pipeline runs are kept in {output_dirs(args.params, args.out)['runs']}; " \
               "the same command reuses them"
    return "nothing was written (every output is written whole or not at all)"


def _one_line(exc: BaseException) -> str:
    """The error as one line, in the command line's words: an OSError names its file(s)
    and says what went wrong; a NeedsSetting gives its fix as ``--set``."""
    if isinstance(exc, NeedsSetting):
        text = exc.for_command_line()
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        files = " -> ".join(repr(os.fsdecode(f)) for f in (exc.filename, exc.filename2)
                            if f is not None)
        text = f"{files}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # python -m mom.cli (or python -m mom)
    sys.exit(main())
