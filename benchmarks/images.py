"""Benchmark: the image encoder on FER2013, FER+ and OASIS, beside the reference numbers.

    EMOEMBED_DATA=../shared/data python benchmarks/images.py --codec runs/map-full [--out runs/bench-images]
    ... --full      # the reference-sized run (224 px, all of FER2013 train, 42 epochs): meant for a GPU

The codec must know fer7, ferplus8, va and vad (``emoembed map --recipe mappings/full.yaml``). Conditions, as
in the reference (Buechel & Hahn 2023, image table), all with the same backbone, data and budget:

* ``bsl`` — the no-codec baseline: the same encoder with a trainable linear fer7 head (``heads: direct``);
* ``sng`` — the encoder through the codec's frozen fer7 head;
* ``aug`` — ``sng`` plus codec-made synthetic vad labels (label augmentation, as the reference's FER-BE → vad).

Rows: FER2013 test accuracy (fer7); zero-shot, i.e. formats the encoder never saw gold labels of: FER+
distribution (ferplus8, FER2013 test faces with FER+ votes; accuracy of the majority and mean r of the
probabilities) and OASIS valence/arousal (va and vad heads, all 900 images, mean r). The zero-shot baseline is
the pipeline: ``bsl``'s fer7 probabilities → a pairwise FFN mapper (``emoembed.training.baseline``). fer7 → ferplus8 uses the
gold FER2013 × FER+ pair. No image set has fer7 and va/vad gold together, so for va/vad the fer7 probabilities
are renamed to be6 (happy→joy, angry→anger, sad→sadness, fear, disgust, surprise; neutral dropped) and fed to a
be6 → va (vad) mapper trained on the word/headline pairs that have both formats: Binder, Speed and Yi × Song
(va); Moors × Speed and EmoBank × Affective Text (vad).

OASIS V/A is also trained directly (5-fold cross-validation over the 900 images; frozen backbone whose features
are computed once; the projection is the ridge regression onto the frozen va head, penalty chosen inside the
training folds; folds keep each OASIS theme together, e.g. "Beach 1" … "Beach 8"; r of the pooled out-of-fold
predictions). Throughput: images/s for a
training step (decode + augment + forward + backward + SGD step) and for inference, at the benchmark's size
and at 224 px.

Prints one Markdown table; writes it to OUT/results.md and every number to OUT/metrics.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emoembed.codec import EmotionCodec
from emoembed.data.dataset import PairedDataset
from emoembed.data.registry import default_data_registry
from emoembed.encoders.image import ImageEncoder
from emoembed.recipes import load_codec_recipe
from emoembed.training.baseline import train_baseline_direction
from emoembed.metrics import evaluate_format
from emoembed.format_kinds import activate
from emoembed.inference import embed_items
from emoembed.recipes import load_encoder_recipe
from emoembed.tasks import Task, task_from_dataset
from emoembed.training.encoder import fit

ROOT = Path(__file__).resolve().parents[1]
FER7_TO_BE6 = ["happy", "angry", "sad", "fear", "disgust", "surprise"]  # be6: joy anger sadness fear disgust surprise
VA_PAIRS = ["binder", "speed", "yi_song"]
VAD_PAIRS = ["moors_speed", "emobank_affectivetext"]
REFERENCE = {  # Buechel & Hahn (2023), FER2013 test (ResNet-34, 224 px, 42 epochs); FER-VAD = Kong et al.'s VAD of FER faces
    "fer7": {"bsl": ".704", "sng": ".644", "aug": ".658", "note": "best single network 73.3 % (Khaireddin & Chen 2021)"},
    "vad_zero": {"bsl": ".784 (BsZ)", "sng": ".714 (SnZ)", "aug": ".808 (AuZ)",
                 "note": "reference: zero-shot FER-BE → FER-VAD on the same faces; ours: into OASIS photos"},
}


# ---------------------------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sub_task(task: Task, n_dev: int, seed: int) -> Task:
    """The task with a seeded subset of its dev split (model selection each epoch), train and test untouched."""
    items, labels = dict(task.items), dict(task.labels)
    if n_dev and len(items["dev"]) > n_dev:
        keep = np.sort(np.random.default_rng(seed).choice(len(items["dev"]), n_dev, replace=False))
        items["dev"] = [items["dev"][i] for i in keep]
        labels["dev"] = labels["dev"][keep]
    return Task(task.name, task.fmt, items, labels, task.scales, task.modality)


def fer_recipe(args: argparse.Namespace) -> dict:
    recipe = load_encoder_recipe(ROOT / "encoders" / "image-effnet-lite0.yaml", "image")
    s = args.size
    grey = {"type": "Grayscale", "num_output_channels": 3}  # FER faces are grey: colour photos are seen grey too
    recipe["encoder"].update({
        "image_size": s,
        "train_transform": [grey, {"type": "RandomResizedCrop", "size": s, "scale": [args.crop_min, 1.0]},
                            {"type": "RandomHorizontalFlip"}],
        "eval_transform": [grey, {"type": "Resize", "size": s}, {"type": "CenterCrop", "size": s}],
        "check": "exists", "freeze_backbone": not args.finetune, "cache_features": True, "dropout": args.dropout})
    if args.agreement is not None:
        recipe["loss_weights"] = {**recipe["loss_weights"], "agreement": args.agreement}
    recipe["training"].update({"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "patience": args.patience or args.epochs,
                               "optimizer": args.optimizer, "weight_decay": args.weight_decay,
                               "max_train_items": args.train_items or None, "eval_batch_size": 128, "device": args.device,
                               "scheduler": {"type": "step", "step_size": max(1, args.step_size), "gamma": 0.5}})
    recipe["name"] = "bench-fer"
    return recipe


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


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", default="runs/map-full", help="codec directory knowing fer7, ferplus8, va, vad")
    ap.add_argument("--out", default="runs/bench-images")
    ap.add_argument("--conditions", default="bsl,sng,aug")
    ap.add_argument("--finetune", action="store_true", help="train the whole backbone (default: frozen backbone, "
                    "features computed once and cached, only the projection trains)")
    ap.add_argument("--size", type=int, help="FER image size (px); default 112")
    ap.add_argument("--train-items", type=int, help="FER2013 train subset (0 = all 28,709; the default)")
    ap.add_argument("--dev-items", type=int, help="FER2013 dev subset for model selection (0 = all; default: all frozen, "
                    "1000 fine-tuned)")
    ap.add_argument("--epochs", type=int, help="default 40 frozen, 3 fine-tuned")
    ap.add_argument("--patience", type=int, help="early stop after this many epochs without a better dev score")
    ap.add_argument("--step-size", type=int, help="StepLR step (epochs), gamma .5; default 15 frozen, 2 fine-tuned")
    ap.add_argument("--batch-size", type=int, help="default 256 frozen, 64 fine-tuned")
    ap.add_argument("--optimizer", default="adamw", choices=["adam", "adamw", "sgd"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--dropout", type=float, default=0.5, help="before the projection")
    ap.add_argument("--crop-min", type=float, default=0.7, help="RandomResizedCrop's smallest area (reference .08)")
    ap.add_argument("--aug-formats", default="vad", help="Aug's codec-made label formats (comma-separated)")
    ap.add_argument("--agreement", type=float, help="weight of the agreement loss (z ≈ the codec's embedding of the gold "
                    "label); default: the recipe's (1.0, see docs/images.md on FER+)")
    ap.add_argument("--resume", action="store_true", help="fine-tuning: continue each condition from OUT/COND/training_state.pt")
    ap.add_argument("--oasis-recipe", default=str(ROOT / "encoders" / "image-effnet-lite0-oasis.yaml"),
                    help="image recipe whose encoder block gives the OASIS CV's frozen features (its widest setting)")
    ap.add_argument("--oasis-size", type=int, help="override the OASIS recipe's resolution (Resize s·8/7 + CenterCrop s)")
    ap.add_argument("--oasis-cv-only", action="store_true", help="only the OASIS cross-validation (no FER conditions)")
    ap.add_argument("--oasis-folds", type=int, default=5)
    ap.add_argument("--skip-oasis-cv", action="store_true")
    ap.add_argument("--full", action="store_true", help="reference size: 224 px, all train, 42 epochs, SGD 1e-3, crop .08")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared CPU, where 2 can be 10x slower)")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    profile = ({"size": 112, "train_items": 0, "dev_items": 1000, "epochs": 3, "step_size": 2, "batch_size": 64} if args.finetune
               else {"size": 112, "train_items": 0, "dev_items": 0, "epochs": 40, "step_size": 15, "batch_size": 256})
    for key, value in profile.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.full:
        args.finetune = True
        args.size, args.train_items, args.dev_items, args.epochs, args.step_size = 224, 0, 0, 42, 7
        args.optimizer, args.lr, args.weight_decay, args.crop_min = "sgd", 1e-3, 0.0, 0.08
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    codec = EmotionCodec.from_pretrained(args.codec)
    missing = [f for f in ("fer7", "ferplus8", "va", "vad") if f not in codec.formats]
    if missing:
        raise SystemExit(f"{args.codec}: the codec lacks {missing}; train one with mappings/full.yaml")
    reg = default_data_registry()
    if args.oasis_cv_only:
        device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        results = {"args": vars(args), "oasis_cv": oasis_cv(args, codec, reg.dataset("oasis"), device),
                   "total_seconds": time.perf_counter() - t_start}
        text = render_oasis_cv(results["oasis_cv"], args) + f"\n\ntotal wall time {results['total_seconds'] / 60:.1f} min"
        print(text)
        (out_dir / "results.md").write_text(text + "\n", encoding="utf-8")
        (out_dir / "metrics.json").write_text(json.dumps(results, indent=1, default=_json_default), encoding="utf-8")
        return
    fer = task_from_dataset(reg.dataset("fer2013_fer7"), "fer7")
    plus = reg.dataset("fer2013").split("test")
    oasis = reg.dataset("oasis")
    recipe = fer_recipe(args)
    conditions = [c for c in args.conditions.split(",") if c]
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    test_items = fer.items["test"]
    pos = {c: i for i, c in enumerate(test_items)}
    plus_idx = np.array([pos[c] for c in plus.content])
    plus_gold = plus.labels("ferplus8")
    va_gold = oasis.labels("va")
    person = oasis_category(oasis) == "Person"  # photos of people: where a face-expression model has something to see
    results_person_n = int(person.sum())
    fmts = codec.formats
    base_cfg = load_codec_recipe(ROOT / "mappings" / "full.yaml")["baseline"]
    results: dict = {"args": vars(args), "conditions": {}, "oasis_person_n": results_person_n}

    for cond in conditions:
        r = copy.deepcopy(recipe)
        if cond == "bsl":
            r["heads"] = "direct"
        elif cond == "aug":
            r["augment"] = [f for f in args.aug_formats.split(",") if f]
        elif cond != "sng":
            raise SystemExit(f"unknown condition {cond!r}")
        task = sub_task(fer, args.dev_items, args.seed)
        log(f"{cond}: training on {min(len(task.items['train']), args.train_items or 10**9)} FER2013 train images, "
            f"{args.size} px, {args.epochs} epochs")
        state_dir = out_dir / cond if args.finetune else None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
        res = fit(r, codec, [task], state_dir=state_dir, resume=args.resume, progress=False,
                  log=lambda m, c=cond: log(f"{c}: {m}"))
        z_test, infer_fer = embed(res.encoder, test_items, device)
        fer_pred = decode(res.heads, fmts["fer7"], z_test, device)
        row: dict = {"fer7": evaluate_format(fer_pred, fer.labels["test"], fmts["fer7"]), "train_seconds": res.seconds,
                     "best_epoch": res.best_epoch, "infer_img_s_fer": infer_fer}
        res.encoder.prepare_items(oasis.content, log=log)  # frozen backbone: OASIS features computed once, then cached
        z_oasis, infer_oasis = embed(res.encoder, oasis.content, device)
        row["infer_img_s_oasis"] = infer_oasis
        if cond == "bsl":
            probs = fer_pred
            log("bsl: training the pipeline mappers (fer7→ferplus8 on FER2013×FER+, be6→va, be6→vad on word pairs)")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # tiny MLPs: more threads only wait on each other
            m_plus, _ = train_baseline_direction(reg.pair("fer2013_ferplus"), False, base_cfg, args.seed)
            m_va, _ = train_baseline_direction(concat_pairs(reg, VA_PAIRS, "be6-va"), True, base_cfg, args.seed)
            m_vad, _ = train_baseline_direction(concat_pairs(reg, VAD_PAIRS, "be6-vad"), True, base_cfg, args.seed)
            torch.set_num_threads(threads)
            plus_pred = map_with(m_plus, probs[plus_idx], fmts["ferplus8"])
            oasis_probs = decode(res.heads, fmts["fer7"], z_oasis, device)
            be6 = oasis_probs[:, [fmts["fer7"].variables.index(v) for v in FER7_TO_BE6]]
            va_pred = np.clip(map_with(m_va, be6, fmts["va"]), -1, 1)
            vad_pred = np.clip(map_with(m_vad, be6, fmts["vad"]), -1, 1)
        else:
            plus_pred = decode(res.heads, fmts["ferplus8"], z_test[plus_idx], device)
            # diagnostics for the FER+ zero-shot gap: the same encoder read through the codec's fer7 → ferplus8 relay
            # (its fer7 probabilities encoded as labels, decoded as ferplus8), and how far z lies from label embeddings
            with torch.no_grad():
                e_pred = codec.encode_labels("fer7", torch.as_tensor(fer_pred[plus_idx]).to(device))
                e_gold = codec.encode_labels("fer7", torch.as_tensor(fer.labels["test"]).to(device))
            row["ferplus8_relay"] = evaluate_format(decode(codec, fmts["ferplus8"], e_pred, device), plus_gold, fmts["ferplus8"])
            row["z_norm"] = float(z_test.norm(dim=1).mean())
            row["label_embedding_norm"] = float(e_gold.norm(dim=1).mean())
            row["z_to_label_embedding"] = float((z_test.to(device) - e_gold).norm(dim=1).mean())
            va_pred = np.clip(decode(res.heads, fmts["va"], z_oasis, device), -1, 1)
            vad_pred = np.clip(decode(res.heads, fmts["vad"], z_oasis, device), -1, 1)
        row["ferplus8"] = evaluate_format(plus_pred, plus_gold, fmts["ferplus8"])
        row["oasis_va"] = r_of(va_pred, va_gold, fmts["va"])
        row["oasis_vad"] = r_of(vad_pred, va_gold, fmts["vad"])
        row["oasis_person_va"] = r_of(va_pred[person], va_gold[person], fmts["va"])
        if cond == "sng" and args.finetune:
            row["throughput"] = throughput(res.encoder, test_items, args.batch_size)
        results["conditions"][cond] = row
        log(f"{cond}: FER2013 test acc {row['fer7']['accuracy']:.3f}; FER+ acc {row['ferplus8']['accuracy']:.3f}; "
            f"OASIS va r {row['oasis_va']['r']:.3f}, vad r {row['oasis_vad']['r']:.3f} ({res.seconds:.0f}s)")
        (out_dir / "metrics.json").write_text(json.dumps(results, indent=1, default=_json_default), encoding="utf-8")

    if not args.skip_oasis_cv:
        log(f"OASIS {args.oasis_folds}-fold CV: frozen backbone (features once), ridge projection, {args.oasis_recipe}")
        results["oasis_cv"] = oasis_cv(args, codec, oasis, device)
    big = None if not args.finetune else ImageEncoder.from_recipe({**recipe["encoder"], "image_size": 224, "freeze_backbone": False,
                                    "train_transform": [{"type": "RandomResizedCrop", "size": 224}],
                                    "eval_transform": [{"type": "Resize", "size": 224}, {"type": "CenterCrop", "size": 224}]}, codec.dim)
    if big is not None:
        results["throughput_224"] = throughput(big, test_items, 16, steps=4)
    results["total_seconds"] = time.perf_counter() - t_start
    table = render(results, args)
    print(table)
    (out_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=1, default=_json_default), encoding="utf-8")


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    return float(x)


def recipe_agreement(args) -> float:
    return float(fer_recipe(args)["loss_weights"]["agreement"])


def render(res: dict, args) -> str:
    c = res["conditions"]
    conds = ("bsl", "sng", "aug")

    def cell(cond: str, key: str, metric: str = "accuracy") -> str:
        return f"{c[cond][key][metric]:.3f}" if cond in c else "–"

    def r_cells(key: str) -> str:
        return " | ".join(f"{c[k][key]['r']:.3f} (V {c[k][key]['r_v']:.2f}, A {c[k][key]['r_a']:.2f})" if k in c else "–"
                          for k in conds)

    not_comparable = ".784 / .714 / .808 on FER faces with VAD gold (not comparable)"
    how = ("fine-tuned end to end" if args.finetune else
           "frozen backbone (features computed once and cached), only the projection trained")
    secs = ", ".join(f"{k} {c[k]['train_seconds'] / 60:.1f} min" for k in conds if k in c)
    header = (f"FER2013: tf_efficientnet_lite0 (packaged ImageNet weights), {how}; {args.size} px, "
              f"{args.train_items or 'all 28,709'} train images, up to {args.epochs} epochs, {args.optimizer} lr {args.lr:g}, "
              f"batch {args.batch_size}, Aug = + codec-made {args.aug_formats}, agreement weight {recipe_agreement(args):g}; "
              f"training wall time {secs}; test = all 3,589 PrivateTest faces.")
    zero_intro = ("Zero-shot (no gold labels of the format in training). The Bsl column is the pipeline baseline "
                  "(Bsl's fer7 probabilities → pairwise FFN mapper):")
    lines = [header, "",
             "| data (metric) | Bsl | Sng | Aug | reference Bsl / Sng / Aug |", "|---|---|---|---|---|",
             (f"| FER2013 test, fer7 (accuracy) | {' | '.join(cell(k, 'fer7') for k in conds)} | "
              ".704 / .644 / .658 (ResNet-34, 224 px, all train, 42 ep.); best single network .733 |"),
             "", zero_intro, "",
             "| data (metric) | pipeline (BsZ) | Sng → head (SnZ) | Aug → head (AuZ) | reference BsZ / SnZ / AuZ |",
             "|---|---|---|---|---|",
             f"| FER+ test, ferplus8 (majority accuracy) | {' | '.join(cell(k, 'ferplus8') for k in conds)} | – |",
             (f"| FER+ test, ferplus8 (mean r of the 8 probabilities) | "
              f"{' | '.join(cell(k, 'ferplus8', 'pearson') for k in conds)} | – |"),
             (f"| FER+ test, majority accuracy via the codec's fer7 → ferplus8 relay | – | "
              f"{' | '.join(cell(k, 'ferplus8_relay') if k in c and 'ferplus8_relay' in c[k] else '–' for k in conds[1:])} | – |"),
             f"| OASIS 900 photos, va head (mean r) | {r_cells('oasis_va')} | {not_comparable} |",
             f"| OASIS 900 photos, vad head, V and A (mean r) | {r_cells('oasis_vad')} | {not_comparable} |",
             f"| OASIS {res.get('oasis_person_n', '?')} photos of people, va head (mean r) | {r_cells('oasis_person_va')} | – |"]
    if "oasis_cv" in res:
        lines += ["", render_oasis_cv(res["oasis_cv"], args)]
    tp = c.get("sng", {}).get("throughput")
    t224 = res.get("throughput_224")
    if tp or t224:
        lines += ["", "Throughput on this machine (images/s, decode + transforms + model; training = forward + backward + step):",
                  "", "| size | train | inference |", "|---|---|---|"]
        if tp:
            lines.append(f"| {args.size} px, batch {args.batch_size} | {tp['train_img_s']:.1f} | {tp['infer_img_s']:.1f} |")
        if t224:
            lines.append(f"| 224 px, batch 16 | {t224['train_img_s']:.1f} | {t224['infer_img_s']:.1f} |")
    lines += ["", f"total wall time {res['total_seconds'] / 60:.1f} min on {args.threads} thread(s)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
