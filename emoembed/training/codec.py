"""Stage 1: train the codec on paired datasets (``emoembed map``); the pairwise FFN baseline it is compared with
lives in :mod:`emoembed.training.baseline`.

Objective per step, on a batch of one paired dataset (items labelled in formats a and b), with e_a = E_a(y_a)
and e_b = E_b(y_b)::

    L = w_auto · f_a·ℓ_a(D_a(e_a), y_a) + w_auto · f_b·ℓ_b(D_b(e_b), y_b)        autoencoding
      + w_map  · f_b·ℓ_b(D_b(e_a), y_b) + w_map  · f_a·ℓ_a(D_a(e_b), y_a)        cross-format mapping
      + w_emb  · MSE(e_a, e_b)                                                 embedding agreement
      + w_tie  · mean (1 − cos) over tied head rows                            soft parameter sharing
      + w_anchor · anchor loss (formats in islands no pair joins; emoembed.anchors)

where f_x is the recipe's per-format weight. Every weight is applied (the reference ignored two).

With ``codec.domain_dim > 0`` every pair is also a *domain*: a learned vector appended to both label encoders'
inputs (E_a(y_a; c_pair)), so one codec can follow each dataset's rating habits (arousal correlates with joy
at +.31 in Kapucu's Turkish lexicon and at −.40 in Ferré's Spanish one). A share ``training.domain_dropout`` of the batches uses the
zero vector instead, which trains the pooled mapping used for labels of unknown origin. Heads stay shared and
bias-free, so content encoders are unaffected.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from emoembed.anchors import anchor_loss, anchor_plan, build_anchors, build_profile_anchors, describe, pair_islands, profile_counts
from emoembed.calibration import calibrate_codec, report_table
from emoembed.codec import EmotionCodec, codec_for
from emoembed.data.dataset import PairedDataset
from emoembed.data.registry import DataRegistry
from emoembed.errors import ConfigError, EmoembedError
from emoembed.format_kinds import format_loss
from emoembed.formats import FormatRegistry, LabelFormat
from emoembed.integrity import codec_fingerprint, restoring
from emoembed.io import atomic_write_json, atomic_write_text
from emoembed.metrics import evaluate_format
from emoembed.training.scaffold import (
    STATE_NAME,
    BestKeeper,
    load_training_state,
    check_resume_target,
    resume_fields,
    save_training_state,
    seed_everything,
    snapshot,
)

# ---------------------------------------------------------------------------------------------- data
def load_pairs(recipe: Mapping[str, Any], data: DataRegistry, log=print) -> list[PairedDataset]:
    pairs = []
    for name in recipe["pairs"]:
        pairs.append(data.pair(name))
    for name in recipe["optional_pairs"]:
        if data.is_present(name):
            pairs.append(data.pair(name))
        else:
            log(f"skipping optional pair {name!r}: its data is not present")
    cap = recipe["training"].get("max_train_items")
    if cap:
        pairs = [_cap_train(p, int(cap), recipe["seed"]) for p in pairs]
    for p in pairs:
        if p.split_sizes()["train"] == 0 or p.split_sizes()["dev"] == 0:
            raise EmoembedError(f"pair {p.name!r} has no train or no dev items ({p.split_sizes()})")
    return pairs


def _cap_train(p: PairedDataset, cap: int, seed: int) -> PairedDataset:
    train = np.flatnonzero(p.split == "train")
    if len(train) <= cap:
        return p
    drop = np.random.default_rng(seed).choice(train, len(train) - cap, replace=False)
    return p.select(np.setdiff1d(np.arange(len(p)), drop))


def recipe_formats(pairs: list[PairedDataset]) -> list[str]:
    out: list[str] = []
    for p in pairs:
        for f in (p.format_a.name, p.format_b.name):
            if f not in out:
                out.append(f)
    return out


# ---------------------------------------------------------------------------------------------- losses
def codec_step_loss(codec: EmotionCodec, fa: LabelFormat, fb: LabelFormat, ya: torch.Tensor, yb: torch.Tensor,
                    weights: Mapping[str, float], format_weights: Mapping[str, float],
                    domain: str | None = None, anchors=None) -> tuple[torch.Tensor, dict[str, float]]:
    wa, wb = float(format_weights.get(fa.name, 1.0)), float(format_weights.get(fb.name, 1.0))
    ea, eb = codec.encode_labels(fa.name, ya, domain), codec.encode_labels(fb.name, yb, domain)
    terms = {
        "autoencode": wa * format_loss(codec.decode(fa.name, ea), ya, fa) + wb * format_loss(codec.decode(fb.name, eb), yb, fb),
        "mapping": wb * format_loss(codec.decode(fb.name, ea), yb, fb) + wa * format_loss(codec.decode(fa.name, eb), ya, fa),
        "embedding": F.mse_loss(ea, eb),
        "tie": codec.tie_loss(),
    }
    if anchors is not None and float(weights.get("anchor", 0.0)):
        a = anchor_loss(codec, anchors)
        if a is not None:
            terms["anchor"] = a
    total = sum(float(weights.get(k, 0.0)) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------- sampling
class PairSampler:
    """Chooses a paired dataset per step (uniform, proportional to size, or ∝ sqrt(size)) and cycles through
    each one's training items in freshly shuffled order, so small pairs are not drowned by large ones."""

    def __init__(self, pairs: list[PairedDataset], batch_size: int, mode: str, rng: np.random.Generator):
        self.pairs = [p.subset("train") for p in pairs]
        sizes = np.array([len(p) for p in self.pairs], dtype=np.float64)
        weights = {"uniform": np.ones_like(sizes), "proportional": sizes, "sqrt": np.sqrt(sizes)}[mode]
        self.probs = weights / weights.sum()
        self.batch_size = batch_size
        self.rng = rng
        self._order = [rng.permutation(len(p)) for p in self.pairs]
        self._pos = [0] * len(self.pairs)

    def next(self) -> tuple[int, np.ndarray]:
        k = int(self.rng.choice(len(self.pairs), p=self.probs))
        n = len(self.pairs[k])
        if self._pos[k] + self.batch_size > n:
            self._order[k] = self.rng.permutation(n)
            self._pos[k] = 0
        idx = self._order[k][self._pos[k]:self._pos[k] + self.batch_size]
        self._pos[k] += self.batch_size
        return k, idx

    def state(self) -> dict:
        return {"order": [torch.as_tensor(o) for o in self._order], "pos": torch.as_tensor(self._pos),
                "rng": self.rng.bit_generator.state}


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_codec(codec: EmotionCodec, pairs: list[PairedDataset], split: str, use_domains: bool = True) -> list[dict]:
    """Every direction of every pair on ``split``; a pair the codec has a domain for is encoded in that domain
    unless ``use_domains`` is False (the pooled mapping, as for labels of unknown origin)."""
    codec.eval()
    rows = []
    for p in pairs:
        s = p.subset(split)
        if len(s) == 0:
            continue
        domain = p.name if use_domains and p.name in codec.domains else None
        for src, tgt, x, y in ((p.format_a, p.format_b, s.labels_a, s.labels_b), (p.format_b, p.format_a, s.labels_b, s.labels_a)):
            emb = codec.encode_labels(src.name, torch.as_tensor(x), domain)
            pred = codec.activate(tgt.name, codec.decode(tgt.name, emb)).numpy()
            rows.append({"pair": p.name, "source": src.name, "target": tgt.name, **evaluate_format(pred, y, tgt)})
    codec.train()
    return rows


def mean_primary(rows: list[dict]) -> float:
    vals = [r["primary"] for r in rows if not math.isnan(r["primary"])]
    return float(np.mean(vals)) if vals else float("nan")


# ---------------------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    codec: EmotionCodec
    best_epoch: int
    dev_score: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_codec(recipe: Mapping[str, Any], pairs: list[PairedDataset], formats: FormatRegistry,
                state_dir: Path | None = None, resume: bool = False, progress: bool = True, log=print,
                codec: EmotionCodec | None = None, on_start: Callable[[], None] | None = None) -> TrainResult:
    """Train a codec for the recipe's pairs; or, given ``codec`` (e.g. an extended one with frozen formats),
    train only its parameters that require gradients. ``on_start`` is called once the resume checks have passed,
    right before the first epoch (``run_map`` writes ``recipe.json`` there, so a refused resume changes nothing)."""
    t0 = time.perf_counter()
    rng = seed_everything(int(recipe["seed"]))
    base_fp = codec_fingerprint(codec.state_dict()) if codec is not None else None  # map --extend: the start codec
    if codec is None:
        c = recipe["codec"]
        codec = codec_for(recipe_formats(pairs), formats, c["dim"], c["hidden"], c["dropout"],
                          domains=[p.name for p in pairs] if c["domain_dim"] else (), domain_dim=c["domain_dim"])
    tr = recipe["training"]
    trainable = [p for p in codec.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=tr["lr"], weight_decay=tr["weight_decay"])
    sampler = PairSampler(pairs, int(tr["batch_size"]), tr["sampling"], rng)
    train_sets = sampler.pairs
    unknown = sorted(set(recipe["codec"].get("anchor_bipolar_pairs") or ()) - {p.name for p in pairs})
    if unknown:
        raise ConfigError(f"codec.anchor_bipolar_pairs: {', '.join(unknown)} not among the recipe's pairs "
                          f"({', '.join(p.name for p in pairs)})")
    tensors = [(torch.as_tensor(p.labels_a), torch.as_tensor(p.labels_b)) for p in train_sets]
    keeper = BestKeeper(int(tr["patience"]))
    start_epoch = 0
    history: list[dict] = []
    state_path = state_dir / STATE_NAME if state_dir else None
    if resume and state_path and state_path.exists():
        st = load_training_state(state_path, keeper, recipe, base_fp, "base codec (--extend)", log)
        with restoring(state_path):
            codec.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            start_epoch, history = st["epoch"] + 1, st["history"]
            sampler._order = [o.numpy() for o in st["sampler"]["order"]]
            sampler._pos = st["sampler"]["pos"].tolist()
            sampler.rng.bit_generator.state = st["sampler"]["rng"]
        log(f"resumed from {state_path} at epoch {start_epoch}")
    if on_start is not None:
        on_start()
    weights, fweights = recipe["loss_weights"], recipe["format_weights"]
    frozen = sorted(codec.frozen_formats)  # map --extend: the base codec's formats are one space already
    islands = pair_islands([(p.format_a.name, p.format_b.name) for p in pairs] + [(f, frozen[0]) for f in frozen])
    found = build_anchors(codec.formats, codec.equivalences, islands) if float(weights.get("anchor", 0.0)) else []
    shape = recipe["codec"]
    profiles = []
    if found and shape.get("anchor_profiles"):
        rating_pairs = shape.get("anchor_bipolar_pairs")  # None: every pair's ratings make bipolar profiles

        def partner(p, fmt):  # a pair left out of anchor_bipolar_pairs gives its ratings no partner class
            return fmt if rating_pairs is None or p.name in rating_pairs else None

        sides = [(p.format_a.name, p.labels_a, partner(p, p.format_b.name), p.labels_b) for p in train_sets]
        sides += [(p.format_b.name, p.labels_b, partner(p, p.format_a.name), p.labels_a) for p in train_sets]
        profiles = build_profile_anchors(sides, codec.formats, codec.equivalences, islands,
                                         min_items=int(shape.get("anchor_profile_min", 20)),
                                         bipolar=bool(shape.get("anchor_bipolar")),
                                         bipolar_exclude=shape.get("anchor_bipolar_exclude", ()))
    anchors = anchor_plan(codec.formats, codec.equivalences, found + profiles,
                          float(shape.get("anchor_profile_weight", 1.0))) if found else None
    if anchors is not None:
        log(f"{len(islands)} islands of formats no pair joins ({' | '.join(', '.join(sorted(s)) for s in islands)}); "
            f"anchored by {describe(found)}" + (f"; profiles: {profile_counts(profiles)}" if profiles else ""))
    domain_dropout = float(tr["domain_dropout"])
    codec.train()
    for epoch in range(start_epoch, int(tr["epochs"])):
        sums: dict[str, float] = {}
        bar = tqdm(range(int(tr["steps_per_epoch"])), desc=f"codec epoch {epoch + 1}/{tr['epochs']}", disable=not progress, leave=False)
        for _ in bar:
            k, idx = sampler.next()
            p = train_sets[k]
            ya, yb = tensors[k][0][idx], tensors[k][1][idx]
            domain = p.name if p.name in codec.domains and sampler.rng.random() >= domain_dropout else None
            loss, parts = codec_step_loss(codec, p.format_a, p.format_b, ya, yb, weights, fweights, domain, anchors)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, v in parts.items():
                sums[key] = sums.get(key, 0.0) + v
        dev = mean_primary(evaluate_codec(codec, pairs, "dev"))
        entry = {"epoch": epoch + 1, "dev": dev, **{k: v / tr["steps_per_epoch"] for k, v in sums.items()}}
        history.append(entry)
        keeper.update(dev, epoch + 1, lambda: snapshot(codec))
        if state_path:
            save_training_state(state_path, epoch, keeper, history, model=codec.state_dict(), optimizer=opt.state_dict(),
                                sampler=sampler.state(), **resume_fields(recipe, base_fp))
        if keeper.should_stop:
            log(f"early stop after epoch {epoch + 1}: best dev {keeper.best_score:.4f} at epoch {keeper.best_epoch}")
            break
    if keeper.best_state is not None:
        codec.load_state_dict(keeper.best_state)
    codec.eval()
    return TrainResult(codec, keeper.best_epoch, keeper.best_score, history, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- reporting
def results_table(codec_rows: list[dict], baseline_rows: list[dict] | None = None, pooled_rows: list[dict] | None = None) -> str:
    """Markdown: one line per direction, the metric, the codec's score (in the pair's domain when it has
    domains, then pooled), the baseline beside it, and the codec's per-variable scores."""
    def keyed(rows: list[dict] | None) -> dict:
        return {(r["pair"], r["source"], r["target"]): r for r in rows or []}

    base, pooled = keyed(baseline_rows), keyed(pooled_rows)
    head = ("| pair | direction | n | metric | codec | " + ("pooled | " if pooled_rows else "")
            + ("baseline | Δ | " if baseline_rows else "") + "per variable (codec) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in codec_rows:
        key = (r["pair"], r["source"], r["target"])
        per = " ".join(f"{v[:4]} {_per_var_value(m):.3f}" for v, m in r["per_variable"].items())
        cell = f"| {r['pair']} | {r['source']} → {r['target']} | {r['n']} | {r['metric']} | {r['primary']:.3f} | "
        if pooled_rows:
            cell += f"{pooled[key]['primary']:.3f} | " if key in pooled else "– | "
        if baseline_rows:
            b = base.get(key)
            cell += f"{b['primary']:.3f} | {r['primary'] - b['primary']:+.3f} | " if b else "– | – | "
        lines.append(cell + per + " |")
    mean_c = mean_primary(codec_rows)
    cell = f"| **mean** | | | | **{mean_c:.3f}** | " + (f"{mean_primary(pooled_rows):.3f} | " if pooled_rows else "")
    if baseline_rows:
        cell += f"**{mean_primary(baseline_rows):.3f}** | {mean_c - mean_primary(baseline_rows):+.3f} | "
    lines.append(cell + " |")
    return "\n".join(lines)


def _per_var_value(m: Mapping[str, float]) -> float:
    for key in ("pearson", "f1"):
        if key in m:
            return float(m[key])
    return float("nan")


def run_map(recipe: Mapping[str, Any], out_dir: Path, data: DataRegistry, baseline: bool = False, resume: bool = False,
            progress: bool = True, log=print, extend: str | Path | None = None) -> dict:
    """Train, evaluate on test, write the run directory; returns the metrics dict. With ``extend`` (a codec
    directory), only the formats of the recipe's pairs that codec lacks are trained; its own stay frozen."""
    from emoembed import extend as ext
    from emoembed.training import baseline as baseline_mod

    check_resume_target(out_dir, resume, "map")
    pairs = load_pairs(recipe, data, log)
    log("pairs: " + ", ".join(f"{p.name} ({p.format_a.name}×{p.format_b.name}, {len(p)} items: {p.split_sizes()})" for p in pairs))
    start, extension = None, None
    if extend is not None:
        base = EmotionCodec.from_pretrained(extend)
        added = ext.new_formats(base, pairs)
        how = ext.anchors(base, pairs, added, data.formats.equivalences)
        seed_everything(int(recipe["seed"]))
        start = ext.extended_codec(base, added, data.formats)
        if start.domain_dim:  # the new pairs get domains of their own; the base's stay frozen
            start.add_domains([p.name for p in pairs])
        extension = {"base": str(extend), "base_formats": list(base.formats), "new_formats": added, "anchored_by": how,
                     "frozen_fingerprints": base.format_fingerprints(), "frozen_domains": base.domain_fingerprints(),
                     "dims_from_base": {"dim": base.dim, "hidden": base.hidden, "domain_dim": base.domain_dim}}
        log(f"extending {extend}: new formats {', '.join(f'{n} (via {how[n]})' for n in added)}; "
            f"frozen: {', '.join(base.formats)}")
    def write_recipe() -> None:  # only once the run is under way (after the resume checks)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(dict(recipe), out_dir / "recipe.json")

    result = train_codec(recipe, pairs, data.formats, state_dir=out_dir, resume=resume, progress=progress, log=log,
                         codec=start, on_start=write_recipe)
    if extension is not None:
        ext.check_frozen(extension["frozen_fingerprints"], result.codec, extension["frozen_domains"])
    test_rows = evaluate_codec(result.codec, pairs, "test")
    pooled_rows = evaluate_codec(result.codec, pairs, "test", use_domains=False) if result.codec.domain_dim else None
    base_rows = baseline_mod.evaluate_baseline(pairs, recipe["baseline"], int(recipe["seed"]), "test", progress) if baseline else None
    metrics = {"recipe": recipe.get("name"), "best_epoch": result.best_epoch, "dev_score": result.dev_score,
               "train_seconds": round(result.seconds, 2), "test": test_rows, "test_mean": mean_primary(test_rows),
               "history": result.history, "pairs": {p.name: {"formats": [p.format_a.name, p.format_b.name], "sizes": p.split_sizes()} for p in pairs}}
    if pooled_rows is not None:
        metrics["test_pooled"] = pooled_rows
        metrics["test_pooled_mean"] = mean_primary(pooled_rows)
    if extension is not None:
        metrics["extension"] = extension
    if base_rows is not None:
        metrics["baseline_test"] = base_rows
        metrics["baseline_test_mean"] = mean_primary(base_rows)
    calibrate_codec(result.codec, pairs, metrics, log)
    extra = {"recipe": dict(recipe)} | ({"extended_from": extension} if extension else {})
    result.codec.save_pretrained(out_dir, extra_config=extra)
    atomic_write_json(metrics, out_dir / "metrics.json")
    table = results_table(test_rows, base_rows, pooled_rows)
    if metrics.get("calibration_test"):
        table += "\n\nMultilabel decisions (test; thresholds fitted on dev, see docs/codec.md):\n" + report_table(metrics["calibration_test"])
    atomic_write_text(table + "\n", out_dir / "results.md")
    (out_dir / STATE_NAME).unlink(missing_ok=True)
    metrics["table"] = table
    return metrics
