"""Benchmark: the image encoder on FER2013, FER+ and OASIS, beside the reference numbers.

    EMOEMBED_DATA=../shared/data python benchmarks/images.py --out runs/bench-images --resume
    ... --profile frozen | short-finetune | reference | smoke      # the other sizes (below)

Default profile ``full-cpu``: each condition is trained with the measured CPU recipe
``encoders/image-effnet-lite0-fer-60min.yaml`` (the packaged EfficientNet-Lite0 fine-tuned whole at 112 px, grey,
RandomResizedCrop .7–1 + flip, AdamW 1e-3, batch 64, one cosine schedule over 1,800 steps in 8 resumable "epochs"
of 225; about an hour of a 2-core CPU per condition) on the packaged codec ``emoembed/codec-full``. Each condition
is an ordinary ``emoembed fit-encoder`` run (:func:`emoembed.training.encoder.run_fit_encoder`, the same recipe
and flags as the command line) in ``OUT/COND``, so ``OUT/aug`` is what

    emoembed fit-encoder --modality image --codec emoembed/codec-full \\
        --recipe encoders/image-effnet-lite0-fer-60min.yaml --augment vad --out OUT/aug --resume --threads 1

writes, and either command continues the other's run with ``--resume``. A condition whose folder already holds
a finished model (``model.safetensors`` + ``metrics.json``) is **not retrained**: the benchmark loads and scores
it. So ``OUT/bsl`` may be a symlink to a run trained elsewhere; its ``recipe.json`` must be the condition's
(``heads: direct`` for bsl, the codec heads and no augmentation for sng, augmentation for aug), and a run made with
another recipe than the profile's is scored as it is, with a note and its recipe named in the table.

Other profiles (``--profile``): ``frozen`` (the backbone frozen, its features of all FER2013 faces computed once
and cached, 40 epochs of the projection; minutes once the features are cached), ``short-finetune`` (the whole
network, 3 epochs of all train faces, StepLR), ``reference`` (``--full``: the reference's recipe, 224 px, 42 epochs,
SGD 1e-3, crop .08–1, batch 32: meant for a GPU) and ``smoke`` (``encoders/image-tiny-test.yaml``: random-init
resnet10t at 32 px, 1 epoch on 256 faces: seconds, for checking the plumbing; its numbers mean nothing).
``--size``, ``--epochs``, ``--lr`` … shape the frozen / short-finetune / reference recipes; ``--set KEY=VALUE``
overrides any profile's recipe, as in ``fit-encoder``.

The codec must know fer7, ferplus8, va and vad (``emoembed/codec-full`` or ``emoembed map --recipe
mappings/full.yaml``). Conditions, as in the reference (Buechel & Hahn 2023, image table), all with the same
backbone, data and budget:

* ``bsl`` — the no-codec baseline: the same encoder with a trainable linear fer7 head (``heads: direct``);
* ``sng`` — the encoder through the codec's frozen fer7 head;
* ``aug`` — ``sng`` plus codec-made synthetic vad labels (label augmentation, as the reference's FER-BE → vad).

Rows: FER2013 test accuracy (fer7); zero-shot, i.e. formats the encoder never saw gold labels of: FER+
distribution (ferplus8, FER2013 test faces with FER+ votes; accuracy of the majority and mean r of the
probabilities) and OASIS valence/arousal (va and vad heads, all 900 images, mean r); each condition's training
wall time and CPU time (from its ``metrics.json``: the per-epoch ``seconds`` / ``cpu_seconds`` summed over every
session of a resumed run; runs written before those were recorded give ``train_seconds``, the wall time of the
session that finished the run, and no CPU time) and best epoch. The zero-shot baseline is the pipeline:
``bsl``'s fer7 probabilities → a pairwise FFN mapper (``emoembed.training.baseline``). fer7 → ferplus8 uses the
gold FER2013 × FER+ pair. No image set has fer7 and va/vad gold together, so for va/vad the fer7 probabilities
are renamed to be6 (happy→joy, angry→anger, sad→sadness, fear, disgust, surprise; neutral dropped) and fed to a
be6 → va (vad) mapper trained on the word/headline pairs that have both formats: Binder, Speed and Yi × Song
(va); Moors × Speed and EmoBank × Affective Text (vad). Reference numbers (Buechel & Hahn 2023, ResNet-34,
224 px, 42 epochs on a GPU): FER2013 test accuracy Bsl .704, Sng .644, Aug .658 (best single network .733,
Khaireddin & Chen 2021); zero-shot FER-BE → FER-VAD on FER's own faces BsZ .784, SnZ .714, AuZ .808 (Kong et
al.'s VAD gold, which the catalogue lacks: not comparable with OASIS photos).

OASIS V/A is also trained directly (5-fold cross-validation over the 900 images; frozen backbone whose features
are computed once; the projection is the ridge regression onto the frozen va head, penalty chosen inside the
training folds; folds keep each OASIS theme together, e.g. "Beach 1" … "Beach 8"; r of the pooled out-of-fold
predictions; ``--skip-oasis-cv`` leaves it out, ``--oasis-cv-only`` runs it alone). ``--throughput``: images/s
for a training step (decode + augment + forward + backward + SGD step) and for inference, at the benchmark's
size and at 224 px.

Prints one Markdown table; writes it to OUT/results.md and every number to OUT/metrics.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoembed.codec import EmotionCodec
from emoembed.data.dataset import PairedDataset
from emoembed.data.registry import DataRegistry, default_data_registry
from emoembed.encoders.image import ImageEncoder
from emoembed.format_kinds import activate
from emoembed.inference import embed_items
from emoembed.integrity import recipe_differences
from emoembed.metrics import evaluate_format
from emoembed.model import EmotionModel
from emoembed.recipes import load_codec_recipe, load_encoder_recipe, parse_sets, resolve_encoder_recipe
from emoembed.runlock import run_folder_lock
from emoembed.tasks import Task, task_from_dataset
from emoembed.training.baseline import train_baseline_direction
from emoembed.training.encoder import run_fit_encoder

ROOT = Path(__file__).resolve().parents[1]
FULL_CPU_RECIPE = ROOT / "encoders" / "image-effnet-lite0-fer-60min.yaml"
SMOKE_RECIPE = ROOT / "encoders" / "image-tiny-test.yaml"
DEFAULT_CODEC = "emoembed/codec-full"
PROFILES = ("full-cpu", "frozen", "short-finetune", "reference", "smoke")
CONDITIONS = ("bsl", "sng", "aug")
FER7_TO_BE6 = ["happy", "angry", "sad", "fear", "disgust", "surprise"]  # be6: joy anger sadness fear disgust surprise
VA_PAIRS = ["binder", "speed", "yi_song"]
VAD_PAIRS = ["moors_speed", "emobank_affectivetext"]
REFERENCE = {  # Buechel & Hahn (2023), FER2013 test (ResNet-34, 224 px, 42 epochs); FER-VAD = Kong et al.'s VAD of FER faces
    "fer7": {"bsl": ".704", "sng": ".644", "aug": ".658", "note": "best single network 73.3 % (Khaireddin & Chen 2021)"},
    "vad_zero": {"bsl": ".784 (BsZ)", "sng": ".714 (SnZ)", "aug": ".808 (AuZ)",
                 "note": "reference: zero-shot FER-BE → FER-VAD on the same faces; ours: into OASIS photos"},
}
# the knobs of the recipes built here (frozen, short-finetune, reference); full-cpu and smoke read recipe files
BUILT_PROFILES: dict[str, dict[str, Any]] = {
    "frozen": {"size": 112, "train_items": 0, "epochs": 40, "step_size": 15, "batch_size": 256, "optimizer": "adamw",
               "lr": 1e-3, "weight_decay": 0.01, "dropout": 0.5, "crop_min": 0.7},
    "short-finetune": {"size": 112, "train_items": 0, "epochs": 3, "step_size": 2, "batch_size": 64, "optimizer": "adamw",
                       "lr": 1e-3, "weight_decay": 0.01, "dropout": 0.5, "crop_min": 0.7},
    "reference": {"size": 224, "train_items": 0, "epochs": 42, "step_size": 7, "batch_size": 32, "optimizer": "sgd",
                  "lr": 1e-3, "weight_decay": 0.0, "dropout": 0.5, "crop_min": 0.08},
}
# the flags of a recipe file's profile (full-cpu, smoke) → the recipe key they set; the others need --set
FILE_PROFILE_FLAGS = {"epochs": "training.epochs", "train_items": "training.max_train_items",
                      "batch_size": "training.batch_size", "optimizer": "training.optimizer", "lr": "training.lr",
                      "weight_decay": "training.weight_decay", "dropout": "encoder.dropout"}
SMOKE_OVERRIDES = {"data": ["fer2013_fer7"], "training.epochs": 1, "training.max_train_items": 256}


# ---------------------------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def built_recipe(args: argparse.Namespace) -> dict:
    """The raw recipe of a built profile (frozen, short-finetune, reference) from the tuning flags, before overrides."""
    recipe = load_encoder_recipe(ROOT / "encoders" / "image-effnet-lite0.yaml", "image")
    recipe.pop("source", None)
    s = args.size
    grey = {"type": "Grayscale", "num_output_channels": 3}  # FER faces are grey: colour photos are seen grey too
    recipe["encoder"].update({
        "image_size": s,
        "train_transform": [grey, {"type": "RandomResizedCrop", "size": s, "scale": [args.crop_min, 1.0]},
                            {"type": "RandomHorizontalFlip"}],
        "eval_transform": [grey, {"type": "Resize", "size": s}, {"type": "CenterCrop", "size": s}],
        "check": "exists", "freeze_backbone": args.profile == "frozen", "cache_features": True, "dropout": args.dropout})
    recipe["training"].update({"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "patience": args.patience or args.epochs,
                               "optimizer": args.optimizer, "weight_decay": args.weight_decay,
                               "max_train_items": args.train_items or None, "eval_batch_size": 128,
                               "scheduler": {"type": "step", "step_size": max(1, args.step_size), "gamma": 0.5}})
    recipe["data"] = ["fer2013_fer7"]
    recipe["name"] = f"bench-fer-{args.profile}"
    return recipe


def condition_flags(cond: str, aug_formats: list[str]) -> dict[str, Any]:
    """What makes a condition, as the ``fit-encoder`` flags set it: bsl ``--heads direct``, aug ``--augment``."""
    if cond == "bsl":
        return {"heads": "direct"}
    if cond == "sng":
        return {}
    if cond == "aug":
        return {"augment": aug_formats}
    raise SystemExit(f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}")


def condition_recipe(args: argparse.Namespace, cond: str) -> dict:
    """The resolved recipe of condition ``cond`` under ``args.profile``: the recipe file's (full-cpu, smoke) or the
    built one (frozen, short-finetune, reference), with the condition's flags, ``--seed``, ``--device``,
    ``--agreement`` and ``--set`` applied (as ``fit-encoder`` applies its flags, so a resume by either is verified
    against the same recipe)."""
    overrides: dict[str, Any] = {}
    if args.profile in ("full-cpu", "smoke"):
        if args.profile == "smoke":
            overrides.update(SMOKE_OVERRIDES)
        overrides.update({key: getattr(args, flag) for flag, key in FILE_PROFILE_FLAGS.items()
                          if getattr(args, flag) is not None})
        if "training.max_train_items" in overrides:
            overrides["training.max_train_items"] = overrides["training.max_train_items"] or None  # 0 = all
    overrides.update(condition_flags(cond, args.aug_formats))
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device != "auto":
        overrides["training.device"] = args.device
    if args.agreement is not None:
        overrides["loss_weights.agreement"] = args.agreement
    overrides.update(parse_sets(args.set))
    if args.profile in ("full-cpu", "smoke"):
        return load_encoder_recipe(FULL_CPU_RECIPE if args.profile == "full-cpu" else SMOKE_RECIPE, "image", overrides)
    return resolve_encoder_recipe(built_recipe(args), f"benchmarks/images.py --profile {args.profile}", overrides)


def is_finished(run_dir: Path) -> bool:
    """A finished ``fit-encoder`` run: its model and its metrics are written (both come last, after training)."""
    return (run_dir / "model.safetensors").is_file() and (run_dir / "metrics.json").is_file()


def check_condition_run(run_dir: Path, cond: str, profile_recipe: dict) -> tuple[dict | None, list[str]]:
    """A finished run folder used for ``cond``: its ``recipe.json`` (None if it has none) and how it differs from
    the profile's recipe (fields outside what a resume may change). Raises SystemExit when the run is not the
    condition (bsl needs ``heads: direct``; sng and aug the codec heads; sng no augmentation, aug some)."""
    path = run_dir / "recipe.json"
    if not path.is_file():
        return None, ["no recipe.json: the run's recipe is unknown"]
    run = json.loads(path.read_text(encoding="utf-8"))
    heads, augment = run.get("heads", "codec"), list(run.get("augment") or [])
    want = "direct" if cond == "bsl" else "codec"
    if heads != want:
        raise SystemExit(f"{run_dir}: the {cond} condition needs a run trained with heads {want!r}"
                         f"{' (--heads direct)' if want == 'direct' else ''}; its recipe.json has heads {heads!r}")
    if cond == "sng" and augment:
        raise SystemExit(f"{run_dir}: the sng condition needs a run without label augmentation; it was trained with "
                         f"--augment {','.join(augment)} (that is the aug condition)")
    if cond == "aug" and not augment:
        raise SystemExit(f"{run_dir}: the aug condition needs a run with label augmentation (--augment vad); its "
                         "recipe.json has none (that is the sng condition)")
    strip = lambda r: {k: v for k, v in r.items() if k not in ("source", "codec")}  # noqa: E731
    diffs = [d.removesuffix(" now") + " in the profile" if d.endswith(" now") else d
             for d in recipe_differences(strip(run), strip(profile_recipe))]  # outside RESUME_FREE_FIELDS
    return run, diffs


def train_condition(recipe: dict, codec_dir: str, registry: DataRegistry, run_dir: Path, resume: bool,
                    progress: bool) -> dict:
    """``emoembed fit-encoder`` for one condition, into ``run_dir`` (locked while it trains, as the command does)."""
    with run_folder_lock(run_dir, "fit-encoder", log=log):
        return run_fit_encoder(recipe, Path(codec_dir), registry, run_dir, resume=resume, progress=progress, log=log)


def run_timing(metrics: dict) -> dict:
    """Training wall and CPU seconds of a finished run: the per-epoch ``seconds`` / ``cpu_seconds`` of its
    history summed (every session of a resumed run), else ``train_seconds`` (the session that finished it) and
    ``train_cpu_seconds`` when recorded; ``None`` where nothing was recorded."""
    history = metrics.get("history") or []
    wall = (sum(float(h["seconds"]) for h in history) if history and all("seconds" in h for h in history)
            else metrics.get("train_seconds"))
    cpu = (sum(float(h["cpu_seconds"]) for h in history) if history and all("cpu_seconds" in h for h in history)
           else metrics.get("train_cpu_seconds"))
    return {"train_seconds": wall, "train_cpu_seconds": cpu, "epochs_run": len(history),
            "best_epoch": metrics.get("best_epoch"), "dev_score": metrics.get("dev_score")}


@dataclass
class BenchData:
    """What the benchmark scores on.

    ``fer``: the FER2013 fer7 task (the conditions' test split); ``plus_items`` (n,) FER2013 test faces with FER+
    votes (a subset of ``fer.items["test"]``) and ``plus_gold`` (n, 8) their ferplus8 distribution; ``oasis_items``
    (m,) OASIS photos, ``oasis_gold`` (m, 2) their valence/arousal on [-1, 1], ``person`` (m,) bool, the photos of
    people; ``pipeline_pairs``: the pipeline baseline's training pairs, ``{"ferplus8": fer7 × ferplus8, "va": va ×
    be6, "vad": vad × be6}`` (the mapper goes fer7 → ferplus8 and be6 → va / vad); ``oasis``: the OASIS dataset
    for the OASIS CV (None: no CV)."""

    fer: Task
    plus_items: list
    plus_gold: np.ndarray
    oasis_items: list
    oasis_gold: np.ndarray
    person: np.ndarray
    pipeline_pairs: dict[str, PairedDataset]
    oasis: Any = None


def load_bench_data(reg: DataRegistry) -> BenchData:
    """The benchmark's data from the catalogue (EMOEMBED_DATA): fer2013_fer7, fer2013 (FER+ votes), oasis and the
    pipeline's pairs."""
    fer = task_from_dataset(reg.dataset("fer2013_fer7"), "fer7")
    plus = reg.dataset("fer2013").split("test")
    oasis = reg.dataset("oasis")
    pairs = {"ferplus8": reg.pair("fer2013_ferplus"), "va": concat_pairs(reg, VA_PAIRS, "be6-va"),
             "vad": concat_pairs(reg, VAD_PAIRS, "be6-vad")}
    return BenchData(fer, list(plus.content), plus.labels("ferplus8"), list(oasis.content), oasis.labels("va"),
                     oasis_category(oasis) == "Person", pairs, oasis)


def embed(encoder, items, device, batch: int = 128) -> tuple[torch.Tensor, float]:
    t = time.perf_counter()
    z, _ = embed_items(encoder, items, batch, device)
    return z, len(items) / (time.perf_counter() - t)


def decode(heads, fmt, z: torch.Tensor, device) -> np.ndarray:
    with torch.no_grad():
        return activate(fmt, heads.decode(fmt.name, z.to(device)).float()).cpu().numpy()


def concat_pairs(reg, names: list[str], name: str) -> PairedDataset:
    ps = [reg.pair(n) for n in names if reg.is_present(n)]
    if not ps:
        raise SystemExit(f"none of the pairs {names} is present (EMOEMBED_DATA)")
    cat = lambda attr: np.concatenate([getattr(p, attr) for p in ps])
    return PairedDataset(name, ps[0].format_a, ps[0].format_b, cat("items"), cat("split"), cat("labels_a"), cat("labels_b"),
                         (ps[0].sources[0], ps[0].sources[1]))


def oasis_category(oasis) -> np.ndarray:
    """OASIS's Category column (Person, Animal, Object, Scenery) for the dataset's items, read from its csv."""
    import pandas as pd

    table = pd.read_csv(oasis.frame["_file"].iloc[0], dtype=str)
    category = dict(zip(table["Theme"].str.strip(), table["Category"].str.strip()))
    return np.array([category.get(str(item), "") for item in oasis.frame["id"]])


def map_with(mapper, x: np.ndarray, tgt) -> np.ndarray:
    with torch.no_grad():
        return activate(tgt, mapper(torch.as_tensor(x, dtype=torch.float32))).numpy()


def r_of(pred: np.ndarray, gold: np.ndarray, fmt, variables=("valence", "arousal")) -> dict:
    idx = [fmt.variables.index(v) for v in variables]
    from emoembed.metrics import pearson

    per = {v: pearson(pred[:, i], gold[:, j]) for j, (v, i) in enumerate(zip(variables, idx))}
    return {"r": float(np.mean(list(per.values()))), **{f"r_{v[0]}": x for v, x in per.items()}}


# ---------------------------------------------------------------------------------------------- throughput
def throughput(enc: ImageEncoder, items: list, batch: int, steps: int = 6) -> dict:
    """Images/s: training step (collate with augmentation + forward + backward + SGD step) and inference."""
    enc = copy.deepcopy(enc).cpu()
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    enc.train()
    times = []
    for i in range(steps + 1):
        sel = items[(i * batch) % len(items):][:batch]
        t = time.perf_counter()
        loss = enc(enc.collate(sel, train=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    enc.eval()
    inf = []
    with torch.no_grad():
        for i in range(steps // 2 + 1):
            sel = items[(i * 128) % len(items):][:128]
            t = time.perf_counter()
            enc(enc.collate(sel, train=False))
            inf.append(time.perf_counter() - t)
    return {"train_img_s": batch / float(np.median(times[1:])), "infer_img_s": 128 / float(np.median(inf[1:]))}


# ---------------------------------------------------------------------------------------------- OASIS CV
def oasis_recipe_encoder(args) -> dict:
    """The encoder block of the OASIS recipe (``--oasis-recipe``), frozen backbone with cached features, at
    ``--oasis-size`` when given."""
    enc_cfg = dict(load_encoder_recipe(Path(args.oasis_recipe), "image")["encoder"])
    enc_cfg.update({"freeze_backbone": True, "cache_features": True, "dropout": 0.0, "check": "exists"})
    if args.oasis_size:
        s = args.oasis_size
        enc_cfg.update({"image_size": s, "eval_transform": [{"type": "Resize", "size": round(s * 8 / 7)},
                                                            {"type": "CenterCrop", "size": s}]})
    return enc_cfg


def oasis_features(args, codec, oasis, device) -> tuple[dict, dict[bool, torch.Tensor], float]:
    """The frozen backbone's features of all OASIS images under the OASIS recipe's encoder (its widest setting:
    every ``feature_layers`` block), with and without flip averaging when the recipe asks for it; computed once
    and cached (:mod:`emoembed.encoders.feature_cache`): a rerun reads them back."""
    from emoembed.encoders.feature_cache import cached_features

    enc_cfg = oasis_recipe_encoder(args)
    flips = [False, True] if enc_cfg.get("flip_average") else [False]
    t0 = time.perf_counter()
    feats = {}
    for flip in flips:
        enc = ImageEncoder.from_recipe({**enc_cfg, "flip_average": flip}, codec.dim).to(device).eval()
        feats[flip] = torch.from_numpy(np.array(cached_features(enc, list(oasis.content), 64, log=log), dtype=np.float32))
    return enc_cfg, feats, time.perf_counter() - t0


RATING_MULTIPLIERS = (0.1, 0.3, 1.0, 3.0)  # × the recipe's class_ratings.scale; 0 = the block left out
SIZE_WEIGHTS = (0.5, 1.0)  # weight of the blocks at the recipe's extra feature_sizes; 0 = left out


def feature_candidates(enc_cfg: dict, codec) -> list[dict]:
    """The settings the inner CV chooses from: flip averaging on/off (when the recipe has it) × the last k of the
    recipe's ``feature_layers`` (k = 0 … all) with the final pooled features × the ``class_ratings`` block left out
    or weighted by a multiplier of the recipe's ``scale`` (when the recipe has it) × the blocks at the recipe's
    extra ``feature_sizes`` left out or weighted (when it has them). Each candidate's features are columns of the
    widest setting's (blocks are pooled and normalised one by one), times a per-column weight (a weight w on a block
    is a ridge penalty 1/w² on it), so one extraction serves them all: ``blocks`` maps each chosen block's name
    to its weight, ``columns``/``weight`` are the same as columns of the widest features."""
    widest = ImageEncoder.from_config({**enc_cfg, "weights": None, "dim": codec.dim})
    spans = dict(widest.feature_blocks())
    layers = list(enc_cfg.get("feature_layers") or [])
    sizes = list(enc_cfg.get("feature_sizes") or [])
    out = []
    for flip in ([False, True] if enc_cfg.get("flip_average") else [False]):
        for ratings in ([0.0, *RATING_MULTIPLIERS] if enc_cfg.get("class_ratings") else [0.0]):
            for size_weight in ([0.0, *SIZE_WEIGHTS] if sizes else [0.0]):
                for k in range(len(layers) + 1):
                    chosen = layers[len(layers) - k:]
                    base = [*chosen, "final"]
                    blocks = {n: 1.0 for n in base}
                    if size_weight:
                        blocks.update({f"{n}@{s}": size_weight for s in sizes for n in base})
                    if ratings:
                        blocks["class_ratings"] = ratings
                    cols = np.concatenate([np.arange(spans[n].start, spans[n].stop) for n in blocks])
                    weight = np.concatenate([np.full(spans[n].stop - spans[n].start, w, dtype=np.float32)
                                             for n, w in blocks.items()])
                    out.append({"flip_average": flip, "feature_layers": chosen, "class_ratings": ratings,
                                "feature_sizes": sizes if size_weight else [], "size_weight": size_weight,
                                "blocks": blocks, "spans": {n: (spans[n].start, spans[n].stop) for n in blocks},
                                "columns": cols, "weight": weight})
    return out


def ridge_path(gram: np.ndarray, cross: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge regression with an intercept (sklearn's ``Ridge(alpha)``: centred features, unpenalised intercept) for
    every penalty at once, in its dual form: ``gram`` = X Xᵀ of the n fitting rows (n, n), ``cross`` = X' Xᵀ of the
    m rows to predict (m, n), ``y`` (n, k). Returns the predictions (len(alphas), m, k). Exact (one eigendecomposition
    of the centred Gram matrix), so a penalty grid costs one fit."""
    row = gram.mean(0)
    centred = gram - row[None, :] - row[:, None] + row.mean()
    cross_c = cross - cross.mean(1, keepdims=True) - row[None, :] + row.mean()
    lam, q = np.linalg.eigh(centred)
    lam = np.maximum(lam, 0.0)
    mean = y.mean(0)
    qty, cq = q.T @ (y - mean), cross_c @ q
    return np.stack([cq @ (qty / (lam + a)[:, None]) + mean for a in alphas])


def inner_select(feats: dict[bool, torch.Tensor], candidates: list[dict], y: np.ndarray, train: np.ndarray,
                 groups: np.ndarray, alphas: np.ndarray, inner_folds: int = 5) -> dict:
    """Choose the feature setting and the ridge penalty by k-fold cross-validation inside the training rows only,
    folds grouped by theme (the outer test fold is never seen): the candidate with the lowest mean squared error
    of V and A over the inner folds (sklearn's ``GridSearchCV(Ridge(), cv=GroupKFold)`` score, computed exactly
    in the dual form from one Gram matrix per block of the training rows)."""
    from sklearn.model_selection import GroupKFold

    grams: dict[tuple[bool, str], np.ndarray] = {}  # (flip, block) → X Xᵀ of the training rows
    for cand in candidates:
        for name in cand["blocks"]:
            key = (cand["flip_average"], name)
            if key not in grams:
                start, stop = cand["spans"][name]
                x = feats[cand["flip_average"]][train][:, start:stop].numpy().astype(np.float64)
                grams[key] = x @ x.T
    splits = list(GroupKFold(inner_folds).split(train, train, groups[train]))
    yt = y[train]
    best = None
    for cand in candidates:
        gram = sum(w * w * grams[(cand["flip_average"], n)] for n, w in cand["blocks"].items())
        mse = np.zeros(len(alphas))
        for fit_rows, val_rows in splits:
            pred = ridge_path(gram[np.ix_(fit_rows, fit_rows)], gram[np.ix_(val_rows, fit_rows)], yt[fit_rows], alphas)
            mse += ((pred - yt[val_rows]) ** 2).mean(axis=(1, 2))
        score = -mse / len(splits)
        i = int(np.argmax(score))
        if best is None or score[i] > best["inner_score"]:
            best = {**cand, "alpha": float(alphas[i]), "inner_score": float(score[i])}
    return best


def ridge_projection(enc: ImageEncoder, codec, feats: torch.Tensor, y: np.ndarray, train: np.ndarray,
                     alpha: float, column_weight: np.ndarray | None = None) -> dict:
    """Train the encoder's projection on fixed features so that the codec's frozen va head reads the ridge regression
    of the targets: W, c = ridge(features × column_weight → va) with the penalty ``alpha`` (both chosen by
    :func:`inner_select` on the training rows only; a column weight w is a penalty 1/w² on that column); then
    proj = H⁺ (W · diag(column_weight)), bias = H⁺c (H the 2 × d head), the smallest projection of the encoder's own
    (unweighted) features whose decoded output is exactly the ridge prediction."""
    from sklearn.linear_model import Ridge

    x = feats[train].numpy().astype(np.float64)
    w = np.ones(x.shape[1]) if column_weight is None else np.asarray(column_weight, dtype=np.float64)
    ridge = Ridge(alpha=alpha).fit(x * w, y[train])
    head = codec.heads["va"].weight.detach().cpu().double()  # (2, d)
    pinv = torch.linalg.pinv(head)  # (d, 2)
    with torch.no_grad():
        enc.proj.weight.copy_((pinv @ torch.as_tensor(ridge.coef_ * w, dtype=torch.float64)).float())
        enc.proj.bias.copy_((pinv @ torch.as_tensor(ridge.intercept_, dtype=torch.float64)).float())
    return {"alpha": float(alpha)}


def theme_of(items: list[str]) -> np.ndarray:
    """OASIS theme of each item name: "Beach 3" → "beach"."""
    return np.array([re.sub(r"\s*\d+\s*$", "", s).strip().lower() for s in items])


def theme_folds(items: list[str], k: int, seed: int) -> list[np.ndarray]:
    """k folds that keep each OASIS theme together ("Beach 1" … "Beach 8" are near-duplicates): a seeded
    permutation of the themes, cut into k parts of about equal image counts."""
    themes = theme_of(items)
    order = np.random.default_rng(seed).permutation(np.unique(themes))
    sizes = {t: int((themes == t).sum()) for t in order}
    folds: list[list[int]] = [[] for _ in range(k)]
    target, f, filled = len(items) / k, 0, 0
    for t in order:
        if filled >= target * (f + 1) and f < k - 1:
            f += 1
        folds[f] += np.flatnonzero(themes == t).tolist()
        filled += sizes[t]
    return [np.array(sorted(x)) for x in folds]


def oasis_cv(args, codec, oasis, device) -> dict:
    """k-fold CV over the 900 OASIS photos, folds grouped by theme. In each outer fold the feature setting (flip
    averaging, how many of the recipe's feature_layers) and the ridge penalty are chosen by an inner theme-grouped CV
    on the training folds only; the fold's encoder (that setting, frozen backbone) gets the ridge projection into the
    codec's frozen va head and predicts the test fold."""
    gold = oasis.labels("va")
    fmt = codec.formats["va"]
    n = len(gold)
    enc_cfg, feats, feat_seconds = oasis_features(args, codec, oasis, device)
    log(f"OASIS: {n} images → {feats[False].shape[1]} backbone features in {feat_seconds:.0f}s")
    names = oasis.frame["item"].tolist()
    folds = theme_folds(names, args.oasis_folds, args.seed)
    groups = theme_of(names)
    candidates = feature_candidates(enc_cfg, codec)
    alphas = np.logspace(-2, 3, 11)
    pred = np.full((n, 2), np.nan, dtype=np.float32)
    per_fold = []
    t0 = time.perf_counter()
    for k, test_idx in enumerate(folds):
        train = np.setdiff1d(np.arange(n), test_idx)
        best = inner_select(feats, candidates, gold, train, groups, alphas)
        ratings = enc_cfg["class_ratings"] if best["class_ratings"] else None
        enc = ImageEncoder.from_config({**enc_cfg, "weights": None, "dim": codec.dim, "flip_average": best["flip_average"],
                                        "feature_layers": best["feature_layers"], "class_ratings": ratings,
                                        "feature_sizes": best["feature_sizes"]}).to(device).eval()
        x = feats[best["flip_average"]][:, best["columns"]]  # the fold encoder's own features (its blocks, in order)
        assert x.shape[1] == enc.num_features and [n for n, _ in enc.feature_blocks()] == list(best["blocks"])
        info = ridge_projection(enc, codec, x, gold, train, best["alpha"], best["weight"])
        ratings_scale = float(ratings.get("scale", 1.0)) * best["class_ratings"] if ratings else 0.0
        with torch.no_grad():  # the fold's encoder (frozen backbone + trained projection) through the frozen va head
            z = enc.proj(x[test_idx].to(device))
            pred[test_idx] = np.clip(decode(codec, fmt, z, device), -1, 1)
        per_fold.append({**r_of(pred[test_idx], gold[test_idx], fmt), **info, "flip_average": best["flip_average"],
                         "feature_layers": best["feature_layers"], "class_ratings_scale": ratings_scale,
                         "feature_sizes": best["feature_sizes"], "size_weight": best["size_weight"],
                         "inner_mse": -best["inner_score"]})
        log(f"OASIS fold {k + 1}/{args.oasis_folds}: r V {per_fold[-1]['r_v']:.3f} A {per_fold[-1]['r_a']:.3f} "
            f"(inner CV chose layers {best['feature_layers']}, flip {best['flip_average']}, class ratings "
            f"scale {ratings_scale:g}, sizes {best['feature_sizes']} × {best['size_weight']:g}, alpha {best['alpha']:g})")
    out = r_of(pred, gold, fmt)
    out.update({"fold_mean_r": float(np.mean([f["r"] for f in per_fold])),
                "fold_mean_r_v": float(np.mean([f["r_v"] for f in per_fold])),
                "fold_mean_r_a": float(np.mean([f["r_a"] for f in per_fold])), "folds": per_fold, "n": n,
                "image_size": enc_cfg["image_size"], "recipe": str(args.oasis_recipe), "encoder": enc_cfg,
                "feature_seconds": feat_seconds, "seconds": time.perf_counter() - t0 + feat_seconds})
    return out


def render_oasis_cv(o: dict, args) -> str:
    def setting(f: dict) -> str:
        blocks = f["feature_layers"] + ["final"]
        if f.get("feature_sizes"):
            blocks += [f"{b}@{size}×{f['size_weight']:g}" for size in f["feature_sizes"] for b in blocks[:]]
        if f.get("class_ratings_scale"):
            blocks.append(f"class_ratings×{f['class_ratings_scale']:g}")
        return f"{'+'.join(blocks)}, flip {'on' if f['flip_average'] else 'off'}, alpha {f['alpha']:g}"

    chosen = "; ".join(f"fold {i + 1}: {setting(f)}" for i, f in enumerate(o["folds"]))
    return (f"OASIS trained on its own labels ({args.oasis_folds}-fold CV grouped by theme, frozen backbone + "
            f"ridge projection into the va head, {o['image_size']} px, recipe {Path(o['recipe']).name}; feature setting and "
            f"penalty chosen by an inner theme-grouped 5-fold CV on the training folds — {chosen}): pooled out-of-fold "
            f"r = {o['r']:.3f} (V {o['r_v']:.3f}, A {o['r_a']:.3f}); mean of per-fold r {o['fold_mean_r']:.3f} "
            f"(V {o['fold_mean_r_v']:.3f}, A {o['fold_mean_r_a']:.3f}); no reference number in the paper.")


# ---------------------------------------------------------------------------------------------- one condition
def score_condition(cond: str, model: EmotionModel, data: BenchData, device: torch.device, pipeline_cfg: dict,
                    seed: int) -> dict:
    """Score a trained condition's model: FER2013 test fer7 (accuracy, macro-F1, per class); zero-shot FER+
    (ferplus8 majority accuracy and mean r) and OASIS (va and vad heads, mean r of valence and arousal, also on the
    photos of people). For bsl (direct fer7 head) the zero-shot entries are the pipeline baseline's: its fer7
    probabilities through FFN mappers trained on ``data.pipeline_pairs`` with ``pipeline_cfg`` (the codec recipe's
    ``baseline`` block) and ``seed``."""
    codec = model.codec
    missing = [f for f in ("fer7", "ferplus8", "va", "vad") if f not in codec.formats]
    if missing:
        raise SystemExit(f"the {cond} model's codec lacks {missing}; train the conditions on a codec that knows fer7, "
                         "ferplus8, va and vad (emoembed/codec-full, or emoembed map --recipe mappings/full.yaml)")
    fmts = codec.formats
    model = model.to(device).eval()
    encoder, heads = model.encoder, model.heads
    test_items = data.fer.items["test"]
    pos = {c: i for i, c in enumerate(test_items)}
    absent = [c for c in data.plus_items if c not in pos]
    if absent:
        raise SystemExit(f"{len(absent)} FER+ faces are not FER2013 test faces (e.g. {absent[0]!r})")
    plus_idx = np.array([pos[c] for c in data.plus_items], dtype=int)
    z_test, infer_fer = embed(encoder, test_items, device)
    fer_pred = decode(heads, fmts["fer7"], z_test, device)
    row: dict = {"fer7": evaluate_format(fer_pred, data.fer.labels["test"], fmts["fer7"]), "infer_img_s_fer": infer_fer}
    prepare = getattr(encoder, "prepare_items", None)
    if prepare is not None:
        prepare(data.oasis_items, log=log)  # a frozen backbone: the OASIS features computed once, then cached
    z_oasis, row["infer_img_s_oasis"] = embed(encoder, data.oasis_items, device)
    if cond == "bsl":
        log("bsl: training the pipeline mappers (fer7→ferplus8 on FER2013×FER+, be6→va, be6→vad on word pairs)")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny MLPs: more threads only wait on each other
        pairs = data.pipeline_pairs
        m_plus, _ = train_baseline_direction(pairs["ferplus8"], False, pipeline_cfg, seed)
        m_va, _ = train_baseline_direction(pairs["va"], True, pipeline_cfg, seed)
        m_vad, _ = train_baseline_direction(pairs["vad"], True, pipeline_cfg, seed)
        torch.set_num_threads(threads)
        plus_pred = map_with(m_plus, fer_pred[plus_idx], fmts["ferplus8"])
        oasis_probs = decode(heads, fmts["fer7"], z_oasis, device)
        be6 = oasis_probs[:, [fmts["fer7"].variables.index(v) for v in FER7_TO_BE6]]
        va_pred = np.clip(map_with(m_va, be6, fmts["va"]), -1, 1)
        vad_pred = np.clip(map_with(m_vad, be6, fmts["vad"]), -1, 1)
        row["zero_shot_by"] = "pipeline (bsl's fer7 probabilities → FFN mapper)"
    else:
        plus_pred = decode(heads, fmts["ferplus8"], z_test[plus_idx], device)
        # diagnostics for the FER+ zero-shot gap: the same encoder read through the codec's fer7 → ferplus8 relay
        # (its fer7 probabilities encoded as labels, decoded as ferplus8), and how far z lies from label embeddings
        with torch.no_grad():
            e_pred = codec.encode_labels("fer7", torch.as_tensor(fer_pred[plus_idx]).to(device))
            e_gold = codec.encode_labels("fer7", torch.as_tensor(data.fer.labels["test"]).to(device))
        row["ferplus8_relay"] = evaluate_format(decode(codec, fmts["ferplus8"], e_pred, device), data.plus_gold,
                                                fmts["ferplus8"])
        row["z_norm"] = float(z_test.norm(dim=1).mean())
        row["label_embedding_norm"] = float(e_gold.norm(dim=1).mean())
        row["z_to_label_embedding"] = float((z_test.to(device) - e_gold).norm(dim=1).mean())
        va_pred = np.clip(decode(heads, fmts["va"], z_oasis, device), -1, 1)
        vad_pred = np.clip(decode(heads, fmts["vad"], z_oasis, device), -1, 1)
        row["zero_shot_by"] = "the model's own embedding through the codec's heads"
    row["ferplus8"] = evaluate_format(plus_pred, data.plus_gold, fmts["ferplus8"])
    row["oasis_va"] = r_of(va_pred, data.oasis_gold, fmts["va"])
    row["oasis_vad"] = r_of(vad_pred, data.oasis_gold, fmts["vad"])
    row["oasis_person_va"] = r_of(va_pred[data.person], data.oasis_gold[data.person], fmts["va"])
    return row


def pick_device(name: str) -> torch.device:
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def check_codec(codec_dir: str) -> EmotionCodec:
    codec = EmotionCodec.from_pretrained(codec_dir)
    missing = [f for f in ("fer7", "ferplus8", "va", "vad") if f not in codec.formats]
    if missing:
        raise SystemExit(f"{codec_dir}: the codec lacks {missing}; use emoembed/codec-full or train one with "
                         "mappings/full.yaml")
    return codec


def write_results(out_dir: Path, results: dict, table: str | None = None) -> None:
    if table is not None:
        (out_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=1, default=_json_default), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- the benchmark
def run(args: argparse.Namespace, registry: DataRegistry, data: BenchData, pipeline_cfg: dict) -> dict:
    """Every condition of ``args.conditions`` in ``OUT/COND``: trained there by ``fit-encoder``'s code path unless
    the folder already holds a finished run, then loaded and scored (:func:`score_condition`); the OASIS CV unless
    ``--skip-oasis-cv``; throughput with ``--throughput``. Prints the table, writes ``OUT/results.md`` and
    ``OUT/metrics.json``, returns the results."""
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    conditions = [c for c in args.conditions.split(",") if c]
    recipes = {c: condition_recipe(args, c) for c in conditions}  # validates the conditions and the overrides first
    results: dict = {"args": vars(args), "profile": args.profile, "conditions": {},
                     "oasis_n": len(data.oasis_items), "plus_n": len(data.plus_items),
                     "oasis_person_n": int(np.asarray(data.person).sum())}
    codec: EmotionCodec | None = None
    kept_model: tuple[str, EmotionModel, dict] | None = None
    for cond in conditions:
        run_dir = out_dir / cond
        if is_finished(run_dir):
            run_recipe, diffs = check_condition_run(run_dir, cond, recipes[cond])
            where = f" → {run_dir.resolve()}" if run_dir.is_symlink() else ""
            log(f"{cond}: {run_dir}{where} holds a finished run: scored, not retrained")
            if diffs:
                log(f"{cond}: note: the run's recipe is not the {args.profile} profile's: " + "; ".join(diffs[:6])
                    + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else ""))
            trained = False
        else:
            if (run_dir / "training_state.pt").exists() and not args.resume:
                raise SystemExit(f"{run_dir} holds an unfinished run (training_state.pt): pass --resume to continue it "
                                 "(or remove the folder to start the condition afresh)")
            codec = codec or check_codec(args.codec)
            log(f"{cond}: training {recipes[cond]['name']} into {run_dir}" + (" (resuming)" if args.resume else ""))
            train_condition(recipes[cond], args.codec, registry, run_dir, args.resume, not args.quiet)
            run_recipe, diffs, trained = recipes[cond], [], True
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        model = EmotionModel.from_pretrained(run_dir)
        row = score_condition(cond, model, data, device, pipeline_cfg, args.seed)
        row.update(run_timing(metrics))
        row.update({"run_dir": str(run_dir), "run_path": str(run_dir.resolve()), "trained_now": trained,
                    "recipe": (run_recipe or {}).get("name", "unknown"), "recipe_source": (run_recipe or {}).get("source"),
                    "codec": (run_recipe or {}).get("codec", args.codec if trained else None),
                    "recipe_differences": diffs})
        results["conditions"][cond] = row
        if args.throughput and (kept_model is None or cond == "sng"):
            kept_model = (cond, model, run_recipe or recipes[cond])
        wall, cpu = row["train_seconds"], row["train_cpu_seconds"]
        log(f"{cond}: FER2013 test acc {row['fer7']['accuracy']:.3f}; FER+ acc {row['ferplus8']['accuracy']:.3f}; "
            f"OASIS va r {row['oasis_va']['r']:.3f}, vad r {row['oasis_vad']['r']:.3f}; trained in "
            f"{minutes(wall)} wall, {minutes(cpu) if cpu is not None else 'CPU time not recorded'}")
        write_results(out_dir, results)

    if not args.skip_oasis_cv and data.oasis is not None:
        codec = codec or check_codec(args.codec)
        log(f"OASIS {args.oasis_folds}-fold CV: frozen backbone (features once), ridge projection, {args.oasis_recipe}")
        results["oasis_cv"] = oasis_cv(args, codec, data.oasis, device)
    if kept_model is not None:
        cond, model, recipe = kept_model
        test_items = data.fer.items["test"]
        enc = model.encoder
        results["throughput"] = {"condition": cond, "image_size": enc.config().get("image_size"),
                                 "batch_size": int(recipe["training"]["batch_size"]),
                                 **throughput(enc, test_items, int(recipe["training"]["batch_size"]))}
        big = ImageEncoder.from_recipe({**recipe["encoder"], "image_size": 224, "freeze_backbone": False,
                                        "train_transform": [{"type": "RandomResizedCrop", "size": 224}],
                                        "eval_transform": [{"type": "Resize", "size": 224}, {"type": "CenterCrop", "size": 224}]},
                                       model.codec.dim)
        results["throughput_224"] = throughput(big, test_items, 16, steps=4)
    results["total_seconds"] = time.perf_counter() - t_start
    table = render(results, args)
    print(table)
    write_results(out_dir, results, table)
    return results


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return float(x)


# ---------------------------------------------------------------------------------------------- the table
PROFILE_TEXT = {
    "full-cpu": ("the full-size CPU recipe encoders/image-effnet-lite0-fer-60min.yaml: tf_efficientnet_lite0 (packaged "
                 "ImageNet weights) fine-tuned whole at 112 px (grey, RandomResizedCrop .7–1 + flip), batch 64, AdamW "
                 "1e-3, one cosine schedule over 8 epochs of 225 steps (1,800 steps = 4 passes over the 28,709 training faces)"),
    "frozen": "tf_efficientnet_lite0 (packaged ImageNet weights), frozen backbone (features computed once and cached), "
              "only the projection trained",
    "short-finetune": "tf_efficientnet_lite0 (packaged ImageNet weights) fine-tuned end to end, StepLR",
    "reference": "tf_efficientnet_lite0 (packaged ImageNet weights) fine-tuned end to end with the reference's recipe",
    "smoke": "a random-init resnet10t at 32 px, 1 epoch on 256 faces (plumbing check: the numbers mean nothing)",
}
COND_LABEL = {"bsl": "Bsl (trainable fer7 head, `--heads direct`)", "sng": "Sng (the codec's frozen fer7 head)",
              "aug": "Aug (Sng + codec-made {aug})"}


def minutes(seconds: float | None) -> str:
    """``"–"`` for None; seconds under a minute as ``"12.3 s"``, else ``"117.3 min"``."""
    if seconds is None:
        return "–"
    return f"{float(seconds):.1f} s" if float(seconds) < 60 else f"{float(seconds) / 60:.1f} min"


def render(res: dict, args) -> str:
    c = res["conditions"]
    conds = [k for k in CONDITIONS if k in c]
    aug = ",".join(args.aug_formats)

    def cell(cond: str, key: str, metric: str = "accuracy") -> str:
        return f"{c[cond][key][metric]:.3f}" if cond in c and key in c[cond] else "–"

    def r_cell(cond: str, key: str) -> str:
        x = c[cond][key]
        return f"{x['r']:.3f} (V {x['r_v']:.2f}, A {x['r_a']:.2f})"

    def r_cells(key: str) -> str:
        return " | ".join(r_cell(k, key) if k in c else "–" for k in CONDITIONS)

    built = (f"; {args.size} px, {args.train_items or 'all'} train images, up to {args.epochs} epochs, {args.optimizer} "
             f"lr {args.lr:g}, batch {args.batch_size}" if args.profile in BUILT_PROFILES else "")
    first = c[conds[0]] if conds else {}
    header = (f"FER2013, profile `{args.profile}` (what a condition trained here gets): {PROFILE_TEXT[args.profile]}"
              f"{built}; codec `{args.codec}`; Aug = + codec-made {aug}. Each condition is an `emoembed fit-encoder` run "
              f"folder, scored from its saved model with the codec it was trained on; test = "
              f"{first.get('fer7', {}).get('n', '?')} FER2013 test faces (PrivateTest), FER+ = the "
              f"{res.get('plus_n', '?')} of them with FER+ votes, OASIS = {res.get('oasis_n', '?')} photos; training "
              "times from each run's metrics.json (wall and CPU time of all its sessions where recorded).")
    lines = [header, "",
             "| condition | FER2013 test acc (fer7) | reference | FER+ zero-shot: majority acc / mean r | "
             "OASIS zero-shot, va head: mean r (V, A) | training wall time | training CPU time | best epoch / epochs | "
             "run folder (recipe) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k in conds:
        row = c[k]
        zero, oasis = ((f"{cell(k, 'ferplus8')} / {cell(k, 'ferplus8', 'pearson')}", r_cell(k, "oasis_va"))
                       if k != "bsl" else ("– (its head knows fer7 only: pipeline below)", "– (pipeline below)"))
        cpu = minutes(row["train_cpu_seconds"]) if row.get("train_cpu_seconds") is not None else "not recorded"
        lines.append(f"| {COND_LABEL[k].format(aug=aug)} | {cell(k, 'fer7')} | {REFERENCE['fer7'][k]} | {zero} | {oasis} | "
                     f"{minutes(row.get('train_seconds'))} | {cpu} | {row.get('best_epoch', '?')} / {row.get('epochs_run', '?')} | "
                     f"`{row['run_dir']}` ({row['recipe']}; codec `{row.get('codec') or '?'}`) |")
    if "bsl" in c:
        lines.append(f"| Pipeline: Bsl's fer7 probabilities → FFN mapper (the zero-shot baseline) | (Bsl's) | – | "
                     f"{cell('bsl', 'ferplus8')} / {cell('bsl', 'ferplus8', 'pearson')} | {r_cell('bsl', 'oasis_va')} | "
                     "– | – | – | – |")
    lines += ["", f"Reference: Buechel & Hahn (2023), ResNet-34, 224 px, all train, 42 epochs on a GPU; best single network "
              f".733 (Khaireddin & Chen 2021). Their zero-shot numbers (BsZ .784 / SnZ .714 / AuZ .808) are FER-BE → "
              f"FER-VAD on FER's own faces with Kong et al.'s VAD gold, which the catalogue lacks: not comparable with "
              f"OASIS photos."]
    notes = [f"{k} ({len(d)} fields): {'; '.join(d[:3])}{'; …' if len(d) > 3 else ''}"
             for k in conds if (d := c[k].get("recipe_differences"))]
    if notes:
        lines += ["", "Runs whose recipe is not the profile's (scored as they are): " + " — ".join(notes)]
    lines += ["", "Zero-shot details (no gold labels of the format in training). The pipeline column is Bsl's fer7 "
              "probabilities → pairwise FFN mapper:", "",
              "| data (metric) | pipeline (BsZ) | Sng → head (SnZ) | Aug → head (AuZ) |", "|---|---|---|---|",
              f"| FER+ test, majority accuracy via the codec's fer7 → ferplus8 relay | – | "
              f"{' | '.join(cell(k, 'ferplus8_relay') for k in CONDITIONS[1:])} |",
              f"| OASIS {res.get('oasis_n', '?')} photos, vad head, V and A (mean r) | {r_cells('oasis_vad')} |",
              f"| OASIS {res.get('oasis_person_n', '?')} photos of people, va head (mean r) | {r_cells('oasis_person_va')} |"]
    if "oasis_cv" in res:
        lines += ["", render_oasis_cv(res["oasis_cv"], args)]
    tp, t224 = res.get("throughput"), res.get("throughput_224")
    if tp or t224:
        lines += ["", "Throughput on this machine (images/s, decode + transforms + model; training = forward + backward + step):",
                  "", "| size | train | inference |", "|---|---|---|"]
        if tp:
            lines.append(f"| {tp['image_size']} px, batch {tp['batch_size']} ({tp['condition']}) | {tp['train_img_s']:.1f} | "
                         f"{tp['infer_img_s']:.1f} |")
        if t224:
            lines.append(f"| 224 px, batch 16 | {t224['train_img_s']:.1f} | {t224['infer_img_s']:.1f} |")
    lines += ["", f"benchmark wall time {res['total_seconds'] / 60:.1f} min on {args.threads} thread(s)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=PROFILES, help="full-cpu (default): encoders/image-effnet-lite0-fer-60min.yaml "
                    "per condition; frozen; short-finetune; reference (= --full); smoke (tiny, seconds)")
    ap.add_argument("--codec", default=DEFAULT_CODEC, help="codec knowing fer7, ferplus8, va, vad that untrained "
                    "conditions train on (default: the packaged emoembed/codec-full; or a directory from emoembed map)")
    ap.add_argument("--out", default="runs/bench-images", help="OUT/bsl, OUT/sng, OUT/aug are the conditions' "
                    "fit-encoder run folders (or symlinks to finished ones); OUT/results.md, OUT/metrics.json")
    ap.add_argument("--conditions", default="bsl,sng,aug")
    ap.add_argument("--resume", action="store_true", help="continue an unfinished condition from OUT/COND/training_state.pt")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of every condition's recipe, dotted, value as YAML (repeatable)")
    ap.add_argument("--finetune", action="store_true", help="= --profile short-finetune")
    ap.add_argument("--full", action="store_true", help="= --profile reference: 224 px, all train, 42 epochs, SGD 1e-3, "
                    "crop .08, batch 32 (for a GPU)")
    ap.add_argument("--size", type=int, help="frozen / short-finetune / reference: FER image size (px); default 112")
    ap.add_argument("--train-items", type=int, help="FER2013 train subset (0 = all 28,709; the default)")
    ap.add_argument("--epochs", type=int, help="default: the profile's (full-cpu 8 × 225 steps, frozen 40, short-finetune 3)")
    ap.add_argument("--patience", type=int, help="frozen / short-finetune / reference: early stop after this many "
                    "epochs without a better dev score")
    ap.add_argument("--step-size", type=int, help="frozen / short-finetune / reference: StepLR step (epochs), gamma .5")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--dropout", type=float, help="before the projection")
    ap.add_argument("--crop-min", type=float, help="frozen / short-finetune / reference: RandomResizedCrop's smallest "
                    "area (reference .08)")
    ap.add_argument("--aug-formats", default="vad", help="Aug's codec-made label formats (comma-separated)")
    ap.add_argument("--agreement", type=float, help="weight of the agreement loss (z ≈ the codec's embedding of the gold "
                    "label); default: the recipe's (1.0, see docs/images.md on FER+)")
    ap.add_argument("--oasis-recipe", default=str(ROOT / "encoders" / "image-effnet-lite0-oasis.yaml"),
                    help="image recipe whose encoder block gives the OASIS CV's frozen features (its widest setting)")
    ap.add_argument("--oasis-size", type=int, help="override the OASIS recipe's resolution (Resize s·8/7 + CenterCrop s)")
    ap.add_argument("--oasis-cv-only", action="store_true", help="only the OASIS cross-validation (no FER conditions)")
    ap.add_argument("--oasis-folds", type=int, default=5)
    ap.add_argument("--skip-oasis-cv", action="store_true")
    ap.add_argument("--throughput", action="store_true", help="also measure training and inference images/s")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared CPU, where 2 can be 10x slower)")
    ap.add_argument("--seed", type=int, default=13, help="every condition's recipe seed, the pipeline's and the OASIS folds'")
    ap.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines while training")
    args = ap.parse_args(argv)
    implied = [p for p, on in (("short-finetune", args.finetune), ("reference", args.full)) if on]
    if len(implied) > 1 or (implied and args.profile not in (None, implied[0])):
        ap.error(f"--finetune / --full / --profile {args.profile} name different profiles; give one")
    args.profile = args.profile or (implied[0] if implied else "full-cpu")
    args.aug_formats = [f for f in str(args.aug_formats).split(",") if f]
    if args.profile in BUILT_PROFILES:
        for key, value in BUILT_PROFILES[args.profile].items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    else:
        given = [f"--{k.replace('_', '-')}" for k in ("size", "step_size", "crop_min", "patience") if getattr(args, k) is not None]
        if given:
            recipe = FULL_CPU_RECIPE if args.profile == "full-cpu" else SMOKE_RECIPE
            ap.error(f"{', '.join(given)} shape(s) the recipes of the frozen / short-finetune / reference profiles; the "
                     f"{args.profile} profile reads {recipe.relative_to(ROOT)}: override its keys with --set KEY=VALUE "
                     "(e.g. --set training.patience=3)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    reg = default_data_registry()
    if args.oasis_cv_only:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        codec = check_codec(args.codec)
        results = {"args": vars(args), "oasis_cv": oasis_cv(args, codec, reg.dataset("oasis"), pick_device(args.device)),
                   "total_seconds": time.perf_counter() - t_start}
        text = render_oasis_cv(results["oasis_cv"], args) + f"\n\ntotal wall time {results['total_seconds'] / 60:.1f} min"
        print(text)
        write_results(out_dir, results, text)
        return
    pipeline_cfg = load_codec_recipe(ROOT / "mappings" / "full.yaml")["baseline"]
    run(args, reg, load_bench_data(reg), pipeline_cfg)


if __name__ == "__main__":
    main()
