"""Stage 2: the one training loop for every content encoder (word, text, image).

The codec's heads are frozen (``requires_grad`` off, outside the optimizer, checked unchanged at the end). For a
batch of dataset X in format A with gold labels y_A and content embeddings z = enc(x)::

    L = w_gold · ℓ_A(D_A(z), y_A)                                           supervised, through A's frozen head
      + w_aug  · mean_B ℓ_B(D_B(z), ŷ_B),  ŷ_B = act_B(D_B(E_A(y_A)))       label augmentation (frozen codec)
      + w_agr  · MSE(z, E_A(y_A))                                           embedding agreement (optional)
      + auxiliary objective (e.g. CARL), if the recipe has one

ŷ_B is soft (values / probabilities) or hard (argmax one-hot, multilabel > .5) as ``augment_targets`` says.
With ``heads: direct`` the same loop trains the no-codec baseline: a trainable linear head per format.

Multi-dataset runs shuffle the batches of all datasets together each epoch (the reference's multitask
setting). Model selection: the mean primary dev metric over the datasets, early stopping with patience.
Each epoch writes ``training_state.pt`` atomically; ``resume`` continues bit-identically. Under ``torchrun``
the encoder is wrapped in DistributedDataParallel; every rank draws the same global batch and takes its
share, so N processes match one process on the same global batch.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from emoembed.codec import EmotionCodec, tensors_fingerprint
from emoembed.data.dataset import Dataset
from emoembed.data.registry import DataRegistry
from emoembed.encoders.base import (
    AuxiliaryObjective,
    ContentEncoder,
    StepContext,
    encoder_class,
    objective_class,
)
from emoembed.errors import ConfigError, DataError, EmoembedError
from emoembed.formats import LabelFormat
from emoembed.io import atomic_torch_save, atomic_write_json, load_training_state
from emoembed.mapping import format_loss
from emoembed.metrics import evaluate_format
from emoembed.recipes import merge_over_defaults, read_recipe_file
from emoembed.settings import resource_dir

DEFAULTS: dict[str, Any] = {
    "name": "encoder",
    "modality": None,
    "seed": 13,
    "encoder": {},
    "objective": None,
    "heads": "codec",
    "training": {"epochs": 30, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
                 "momentum": 0.9, "scheduler": None, "patience": 8, "accumulate": 1, "max_steps_per_epoch": None,
                 "max_train_items": None, "eval_batch_size": 256, "num_workers": 0, "bf16": True,
                 "grad_clip": None, "pretrain_epochs": 0, "device": "auto", "drop_last": False},
    "loss_weights": {"gold": 1.0, "augment": 1.0, "agreement": 0.0},
    "augment_targets": "soft",
    "data": [],
    "augment": [],
}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
DEFAULT_RECIPES = {"word": "word-glove50.yaml", "text": "text-minilm.yaml", "image": "image-effnet-lite0.yaml"}
STATE_NAME = "training_state.pt"


# ---------------------------------------------------------------------------------------------- recipe
def load_encoder_recipe(path: str | Path | None = None, modality: str | None = None) -> dict[str, Any]:
    if path is None:
        if modality not in DEFAULT_RECIPES:
            raise ConfigError(f"no recipe given and no default recipe for modality {modality!r}; "
                              f"defaults exist for {sorted(DEFAULT_RECIPES)}")
        path = resource_dir("encoders") / DEFAULT_RECIPES[modality]
    path = Path(path)
    recipe = resolve_encoder_recipe(read_recipe_file(path), str(path))
    if modality and recipe["modality"] and recipe["modality"] != modality:
        raise ConfigError(f"{path}: the recipe is for modality {recipe['modality']!r}, not {modality!r}")
    recipe["modality"] = recipe["modality"] or modality
    return recipe


def resolve_encoder_recipe(raw: Mapping[str, Any], source: str = "<recipe>") -> dict[str, Any]:
    recipe = merge_over_defaults(raw, DEFAULTS, source, ("training", "loss_weights"))
    if recipe["heads"] not in ("codec", "direct"):
        raise ConfigError(f"{source}: heads must be 'codec' or 'direct', got {recipe['heads']!r}")
    if recipe["augment_targets"] not in ("soft", "hard"):
        raise ConfigError(f"{source}: augment_targets must be 'soft' or 'hard', got {recipe['augment_targets']!r}")
    if recipe["training"]["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{source}: training.optimizer must be one of {sorted(OPTIMIZERS)}")
    for key in ("epochs", "batch_size", "accumulate"):
        v = recipe["training"][key]
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{source}: training.{key} must be a positive integer, got {v!r}")
    if recipe["objective"] is not None and not (isinstance(recipe["objective"], Mapping) and "name" in recipe["objective"]):
        raise ConfigError(f"{source}: objective must be a mapping with a 'name' (e.g. carl)")
    for key in ("data", "augment"):
        if isinstance(recipe[key], str):
            recipe[key] = [s for s in recipe[key].split(",") if s]
    return recipe


# ---------------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """One dataset in one label format: its items and normalised labels per split, and its source scales."""

    name: str
    fmt: LabelFormat
    items: dict[str, list]
    labels: dict[str, np.ndarray]
    scales: dict[str, list[float]] = field(default_factory=dict)
    modality: str | None = None

    def size(self, split: str) -> int:
        return len(self.items.get(split, []))


def parse_data_spec(spec: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """``"warriner,goemotions:ekman7"`` → [("warriner", None), ("goemotions", "ekman7")]."""
    parts = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not parts:
        raise ConfigError("no dataset given (use --data NAME[,NAME] or the recipe's 'data')")
    out = []
    for p in parts:
        name, _, fmt = p.partition(":")
        out.append((name.strip(), fmt.strip() or None))
    return out


def task_from_dataset(ds: Dataset, fmt_name: str | None, known_formats: Sequence[str] | None = None) -> Task:
    fmts = list(ds.formats)
    if fmt_name is None:
        usable = [f for f in fmts if known_formats is None or f in known_formats]
        if not usable:
            raise ConfigError(f"dataset {ds.name!r} has format(s) {fmts}, none of which the codec knows "
                              f"({', '.join(known_formats or [])})")
        fmt_name = usable[0]
    if fmt_name not in ds.formats:
        raise ConfigError(f"dataset {ds.name!r} has no format {fmt_name!r}; it has {fmts}")
    fmt = ds.formats[fmt_name]
    items, labels = {}, {}
    for split in ("train", "dev", "test"):
        sub = ds.split(split)
        y = sub.labels(fmt_name)
        keep = ~np.isnan(y).any(axis=1)
        items[split] = [c for c, k in zip(sub.content, keep) if k]
        labels[split] = y[keep]
    scales = {}
    spec = ds.card.formats.get(fmt_name, {})
    if fmt.kind == "regression" and isinstance(spec, Mapping):
        for var in fmt.variables:
            if isinstance(spec.get(var), Mapping) and "scale" in spec[var]:
                scales[var] = [float(x) for x in spec[var]["scale"]]
    return Task(ds.name, fmt, items, labels, scales, ds.card.modality)


def build_tasks(data: DataRegistry, spec: str | Sequence[str], known_formats: Sequence[str] | None = None,
                modality: str | None = None) -> list[Task]:
    tasks = []
    for name, fmt in parse_data_spec(spec):
        card = data.get(name)
        if card.type != "dataset":
            raise ConfigError(f"{name!r} is a {card.type} card; stage 2 trains on dataset cards")
        if modality and card.modality and card.modality != modality and not (modality == "text" and card.modality == "word"):
            raise ConfigError(f"dataset {name!r} holds {card.modality}s, not {modality}s")
        tasks.append(task_from_dataset(data.dataset(name), fmt, known_formats))
    return tasks


# ---------------------------------------------------------------------------------------------- heads
class DirectHeads(nn.Module):
    """The no-codec baseline: one trainable linear layer (with bias) per format on the encoder output."""

    def __init__(self, formats: Mapping[str, LabelFormat], dim: int):
        super().__init__()
        self.formats = dict(formats)
        self.layers = nn.ModuleDict({n: nn.Linear(dim, f.size) for n, f in self.formats.items()})

    def decode(self, fmt: str, z: torch.Tensor) -> torch.Tensor:
        if fmt not in self.layers:
            raise ConfigError(f"this baseline model was trained for {sorted(self.layers)}; it cannot predict {fmt!r} "
                              "(zero-shot needs codec heads)")
        return self.layers[fmt](z)


def activate(fmt: LabelFormat, raw: torch.Tensor) -> torch.Tensor:
    if fmt.kind == "multilabel":
        return torch.sigmoid(raw)
    if fmt.kind in ("multiclass", "distribution"):
        return torch.softmax(raw, dim=-1)
    return raw


def hard_targets(fmt: LabelFormat, probs: torch.Tensor) -> torch.Tensor:
    if fmt.kind == "multilabel":
        return (probs > 0.5).to(probs.dtype)
    if fmt.kind in ("multiclass", "distribution"):
        return F.one_hot(probs.argmax(-1), fmt.size).to(probs.dtype)
    return probs


@torch.no_grad()
def synthetic_labels(codec: EmotionCodec, source: LabelFormat, y: torch.Tensor, target: str, mode: str = "soft") -> torch.Tensor:
    """Labels in ``target`` made by the frozen codec from gold labels ``y`` in ``source``."""
    tgt = codec.formats[target]
    out = activate(tgt, codec.decode(target, codec.encode_labels(source.name, y)))
    if tgt.kind == "regression":
        out = out.clamp(tgt.range[0], tgt.range[1])
    return hard_targets(tgt, out) if mode == "hard" else out


def head_fingerprint(codec: EmotionCodec) -> str:
    return tensors_fingerprint(codec.state_dict())


# ---------------------------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str = "auto", dist: DistInfo | None = None) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" and dist is not None and dist.world > 1:
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def _move(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------- batching
def epoch_batches(tasks: Sequence[Task], masks: Sequence[np.ndarray], batch_size: int, seed: int, epoch: int,
                  drop_last: bool, max_steps: int | None) -> list[tuple[int, np.ndarray]]:
    """Global batches of every task's training items, shuffled together; deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    batches = []
    for t, mask in enumerate(masks):
        idx = rng.permutation(np.flatnonzero(mask))
        stop = len(idx) - (len(idx) % batch_size if drop_last else 0)
        batches += [(t, idx[i:i + batch_size]) for i in range(0, stop, batch_size) if len(idx[i:i + batch_size])]
    order = rng.permutation(len(batches))
    batches = [batches[i] for i in order]
    return batches[:max_steps] if max_steps else batches


def shard(idx: np.ndarray, dist: DistInfo) -> np.ndarray:
    return idx[dist.rank::dist.world] if dist.world > 1 else idx


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def embed_items(encoder: ContentEncoder, items: Sequence[Any], batch_size: int, device: torch.device,
                progress: bool = False, desc: str = "encode") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Embeddings (N, dim) on CPU in input order, batched by the encoder's sort key; and the rows whose
    output is undefined (e.g. OOV under skip), or None."""
    was = encoder.training
    encoder.eval()
    keys = [encoder.sort_key(x) for x in items]
    order = np.argsort(keys, kind="stable") if any(keys) else np.arange(len(items))
    out = torch.empty(len(items), encoder.dim)
    undefined = torch.zeros(len(items), dtype=torch.bool)
    any_undef = False
    try:
        for i in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress, leave=False):
            sel = order[i:i + batch_size]
            batch = _move(encoder.collate([items[j] for j in sel], train=False), device)
            with autocast_for(device):
                z = encoder(batch)
            out[torch.as_tensor(sel)] = z.float().cpu()
            mask_fn = getattr(encoder, "output_mask", None)
            m = mask_fn(batch) if mask_fn else None
            if m is not None:
                undefined[torch.as_tensor(sel)] = m.cpu()
                any_undef = True
    finally:
        encoder.train(was)
    return out, (undefined if any_undef else None)


def autocast_for(device: torch.device, enabled: bool = True):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def decode_with(heads: nn.Module, fmt: str, z: torch.Tensor) -> torch.Tensor:
    return heads.decode(fmt, z)


@torch.no_grad()
def evaluate_task(encoder: ContentEncoder, heads: nn.Module, task: Task, split: str, batch_size: int,
                  device: torch.device, fmt: LabelFormat | None = None) -> dict:
    """Metrics of ``task``'s ``split`` in ``fmt`` (default: the task's own format)."""
    fmt = fmt or task.fmt
    items = task.items.get(split, [])
    if not items:
        return {"n": 0, "primary": float("nan"), "metric": fmt.metric, "per_variable": {}}
    z, undefined = embed_items(encoder, items, batch_size, device)
    pred = activate(fmt, heads.decode(fmt.name, z.to(device)).float()).cpu().numpy()
    gold = task.labels[split]
    if undefined is not None and undefined.any():
        keep = ~undefined.numpy()
        pred, gold = pred[keep], gold[keep]
    if fmt.kind == "regression":
        pred = np.clip(pred, fmt.range[0], fmt.range[1])
    out = evaluate_format(pred, gold, fmt)
    out["coverage"] = float(len(gold) / len(items))
    out["format"] = fmt.name
    return out


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class FitResult:
    encoder: ContentEncoder
    heads: nn.Module
    best_epoch: int
    dev_score: float
    history: list[dict]
    seconds: float
    reports: dict[str, dict]


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _frozen_codec(codec: EmotionCodec, device: torch.device) -> EmotionCodec:
    codec = codec.to(device)
    codec.requires_grad_(False)
    codec.eval()
    return codec


def fit(recipe: Mapping[str, Any], codec: EmotionCodec, tasks: Sequence[Task], state_dir: Path | None = None,
        resume: bool = False, progress: bool = True, log: Callable[[str], None] = print,
        encoder: ContentEncoder | None = None) -> FitResult:
    """Train a content encoder on ``tasks`` through the frozen codec heads (or direct heads)."""
    t0 = time.perf_counter()
    tr = recipe["training"]
    seed = int(recipe["seed"])
    seed_all(seed)
    dist = init_distributed(torch.device("cuda") if tr["device"] in ("auto", "cuda") and torch.cuda.is_available() else torch.device("cpu"))
    device = pick_device(tr["device"], dist)
    log_main = log if dist.main else (lambda *_: None)
    modality = recipe["modality"]
    if not tasks:
        raise ConfigError("no training datasets")
    for t in tasks:
        if t.fmt.name not in codec.formats:
            raise ConfigError(f"dataset {t.name!r} is in format {t.fmt.name!r}, which the codec does not know "
                              f"(it knows {', '.join(codec.formats)})")
        if t.size("train") == 0 or t.size("dev") == 0:
            raise DataError(f"dataset {t.name!r} has no train or no dev items ({ {s: t.size(s) for s in ('train', 'dev', 'test')} })")
    augment = [f for f in recipe["augment"]]
    for f in augment:
        codec.format(f)  # clear error for an unknown format
    if encoder is None:
        encoder = encoder_class(modality).from_recipe(recipe["encoder"], codec.dim)
    encoder = encoder.to(device)

    # data: validate items, cap, report — on copies, so the caller's tasks keep every item
    tasks = [replace(t, items=dict(t.items), labels=dict(t.labels)) for t in tasks]
    reports: dict[str, dict] = {}
    masks: list[np.ndarray] = []
    for t in tasks:
        for split in ("train", "dev", "test"):
            t.items[split] = encoder.check_items(t.items[split], where=f"{t.name} ({split})")
        if tr["max_train_items"] and t.size("train") > int(tr["max_train_items"]):
            keep = np.sort(np.random.default_rng(seed).choice(t.size("train"), int(tr["max_train_items"]), replace=False))
            t.items["train"] = [t.items["train"][i] for i in keep]
            t.labels["train"] = t.labels["train"][keep]
        rep = encoder.input_report(t.items["train"] + t.items["dev"] + t.items["test"])
        reports[t.name] = rep
        if rep:
            log_main(f"{t.name}: " + ", ".join(f"{k} {_fmt_report(v)}" for k, v in rep.items()))
        mask_fn = getattr(encoder, "training_mask", None)
        masks.append(mask_fn(t.items["train"]) if mask_fn else np.ones(t.size("train"), dtype=bool))

    codec = _frozen_codec(codec, device)
    fingerprint = head_fingerprint(codec)
    if recipe["heads"] == "direct":
        heads: nn.Module = DirectHeads({t.fmt.name: t.fmt for t in tasks}, encoder.dim).to(device)
        augment = []
    else:
        heads = codec
    objective: AuxiliaryObjective | None = None
    if recipe["objective"]:
        cfg = dict(recipe["objective"])
        objective = objective_class(cfg.pop("name"))(**cfg).to(device)
        objective.setup(encoder)

    params = [p for p in encoder.parameters() if p.requires_grad]
    extra_params: list[torch.nn.Parameter] = []  # trained outside DDP: their gradients are averaged by hand
    if recipe["heads"] == "direct":
        extra_params += list(heads.parameters())
    if objective is not None:
        extra_params += list(objective.trainable_parameters())
    params += extra_params
    opt_cls = OPTIMIZERS[tr["optimizer"]]
    opt_kwargs: dict[str, Any] = {"lr": float(tr["lr"]), "weight_decay": float(tr["weight_decay"])}
    if tr["optimizer"] == "sgd":
        opt_kwargs["momentum"] = float(tr["momentum"])
    opt = opt_cls(params, **opt_kwargs)
    sched = None
    if tr["scheduler"]:
        s = dict(tr["scheduler"])
        if s.get("type", "step") != "step":
            raise ConfigError("training.scheduler: only {type: step, step_size, gamma} is supported")
        sched = torch.optim.lr_scheduler.StepLR(opt, int(s.get("step_size", 7)), float(s.get("gamma", 0.5)))

    train_module: nn.Module = encoder
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_module = DDP(encoder, device_ids=[device.index] if device.type == "cuda" else None)

    state_path = state_dir / STATE_NAME if state_dir else None
    best_score, best_epoch, bad_epochs, start_epoch, step = -math.inf, -1, 0, 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict] = []
    if resume and state_path is not None and state_path.exists():
        st = load_training_state(state_path)
        encoder.load_state_dict(st["encoder"])
        if recipe["heads"] == "direct":
            heads.load_state_dict(st["heads"])
        if objective is not None and st.get("objective") is not None:
            objective.load_state_dict(st["objective"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler"):
            sched.load_state_dict(st["scheduler"])
        best_state, best_score, best_epoch = st["best_state"], st["best_score"], st["best_epoch"]
        bad_epochs, start_epoch, step, history = st["bad_epochs"], st["epoch"] + 1, st["step"], st["history"]
        torch.set_rng_state(st["torch_rng"])
        random.setstate(_py_state_from(st["py_rng"]))
        log_main(f"resumed from {state_path} after epoch {start_epoch}")
    elif resume:
        log_main(f"nothing to resume in {state_dir}; starting fresh")

    w = recipe["loss_weights"]
    mode = recipe["augment_targets"]
    epochs, accumulate = int(tr["epochs"]), int(tr["accumulate"])
    steps_per_epoch = len(epoch_batches(tasks, masks, int(tr["batch_size"]), seed, 0, bool(tr["drop_last"]), tr["max_steps_per_epoch"]))
    total_steps = max(1, epochs * math.ceil(steps_per_epoch / accumulate))
    use_bf16 = bool(tr["bf16"])
    encoder.train()
    for epoch in range(start_epoch, epochs):
        pretraining = epoch < int(tr["pretrain_epochs"])
        head_w = 0.0 if pretraining else 1.0
        batches = epoch_batches(tasks, masks, int(tr["batch_size"]), seed, epoch, bool(tr["drop_last"]), tr["max_steps_per_epoch"])
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"{recipe['name']} epoch {epoch + 1}/{epochs}" + (" (pretrain)" if pretraining else ""),
                   disable=not progress or not dist.main, leave=False)
        opt.zero_grad(set_to_none=True)
        for i, (t_idx, gidx) in enumerate(bar):
            task = tasks[t_idx]
            idx = shard(gidx, dist)
            batch = _move(encoder.collate([task.items["train"][j] for j in idx], train=True), device)
            y = torch.as_tensor(task.labels["train"][idx], device=device)
            last_micro = (i + 1) % accumulate == 0 or i + 1 == len(batches)
            sync = contextlib.nullcontext() if last_micro or dist.world == 1 else train_module.no_sync()
            with sync:
                with autocast_for(device, use_bf16):
                    z = train_module(batch)
                    loss, parts = _step_loss(heads, codec, task.fmt, z, y, augment, w, mode, head_w, recipe["heads"] == "direct")
                    if objective is not None:
                        ctx = StepContext(train_module, encoder, batch, z, task.fmt.name, y, codec,
                                          lambda f, _y=y, _fmt=task.fmt: synthetic_labels(codec, _fmt, _y, f, "soft"),
                                          step, total_steps, {"pretraining": pretraining, "device": device})
                        aux, aux_parts = objective.loss(ctx)
                        loss = loss + aux
                        parts.update(aux_parts)
                if not torch.isfinite(loss):
                    raise EmoembedError(f"loss became {float(loss)} at epoch {epoch + 1}, step {i + 1} (dataset {task.name}); "
                                        "lower the learning rate or check the data")
                (loss / accumulate).backward()
            if last_micro:
                if dist.world > 1:
                    _average_gradients(extra_params, dist.world)
                if tr["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(params, float(tr["grad_clip"]))
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if objective is not None:
                    objective.after_step(encoder, step, total_steps)
            parts["loss"] = float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
        if sched is not None:
            sched.step()
        dev_rows = {t.name: evaluate_task(encoder, heads, t, "dev", int(tr["eval_batch_size"]), device) for t in tasks}
        dev = float(np.nanmean([r["primary"] for r in dev_rows.values()]))
        entry = {"epoch": epoch + 1, "dev": dev, **{f"dev_{k}": r["primary"] for k, r in dev_rows.items()},
                 **{k: v / max(1, len(batches)) for k, v in sums.items()}}
        history.append(entry)
        if not pretraining:  # while the heads are not trained yet, the dev score selects no model
            if dev > best_score + 1e-6:
                best_score, best_epoch, bad_epochs = dev, epoch + 1, 0
                best_state = _snapshot(encoder, heads if recipe["heads"] == "direct" else None)
            else:
                bad_epochs += 1
        log_main(f"epoch {epoch + 1}: loss {entry['loss']:.4f}, dev {dev:.4f}" + (" (pretrain)" if pretraining else "")
                 + (f" [best {best_score:.4f} @ {best_epoch}]" if best_epoch > 0 else ""))
        if state_path is not None and dist.main:
            atomic_torch_save({"encoder": encoder.state_dict(), "heads": heads.state_dict() if recipe["heads"] == "direct" else None,
                               "objective": objective.state_dict() if objective is not None else None,
                               "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
                               "best_state": best_state, "best_score": best_score, "best_epoch": best_epoch,
                               "bad_epochs": bad_epochs, "epoch": epoch, "step": step, "history": history,
                               "torch_rng": torch.get_rng_state(), "py_rng": _py_state_to(random.getstate())}, state_path)
        if bad_epochs >= int(tr["patience"]):
            log_main(f"early stop after epoch {epoch + 1}: best dev {best_score:.4f} at epoch {best_epoch}")
            break
    if best_state is not None:
        _restore(best_state, encoder, heads if recipe["heads"] == "direct" else None)
    encoder.eval()
    if head_fingerprint(codec) != fingerprint:
        raise EmoembedError("internal error: the frozen codec changed during encoder training")
    return FitResult(encoder, heads, best_epoch, best_score, history, time.perf_counter() - t0, reports)


def _step_loss(heads: nn.Module, codec: EmotionCodec, fmt: LabelFormat, z: torch.Tensor, y: torch.Tensor,
               augment: Sequence[str], w: Mapping[str, float], mode: str, head_w: float, direct: bool
               ) -> tuple[torch.Tensor, dict[str, float]]:
    parts: dict[str, float] = {}
    z32 = z.float()
    gold = format_loss(heads.decode(fmt.name, z32), y, fmt)
    total = head_w * float(w["gold"]) * gold
    parts["gold"] = float(gold.detach())
    if augment and float(w["augment"]) > 0:
        aug_terms = []
        for b in augment:
            if b == fmt.name:
                continue
            target = synthetic_labels(codec, fmt, y, b, mode)
            aug_terms.append(format_loss(codec.decode(b, z32), target, codec.formats[b]))
        if aug_terms:
            aug = torch.stack(aug_terms).mean()  # a mean, so adding formats does not drown the gold term
            total = total + head_w * float(w["augment"]) * aug
            parts["augment"] = float(aug.detach())
    if not direct and float(w["agreement"]) > 0:
        with torch.no_grad():
            e = codec.encode_labels(fmt.name, y)
        agr = F.mse_loss(z32, e)
        total = total + head_w * float(w["agreement"]) * agr
        parts["agreement"] = float(agr.detach())
    return total, parts


def _average_gradients(params: Sequence[torch.nn.Parameter], world: int) -> None:
    import torch.distributed as tdist

    for p in params:
        if p.grad is not None:
            tdist.all_reduce(p.grad)
            p.grad /= world


def _snapshot(encoder: nn.Module, heads: nn.Module | None) -> dict[str, torch.Tensor]:
    state = {f"encoder.{k}": v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    if heads is not None:
        state.update({f"heads.{k}": v.detach().cpu().clone() for k, v in heads.state_dict().items()})
    return state


def _restore(state: Mapping[str, torch.Tensor], encoder: nn.Module, heads: nn.Module | None) -> None:
    encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    if heads is not None:
        heads.load_state_dict({k[len("heads."):]: v for k, v in state.items() if k.startswith("heads.")})


def _py_state_to(state: tuple) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": torch.as_tensor(internal, dtype=torch.int64), "gauss": gauss}


def _py_state_from(d: Mapping[str, Any]) -> tuple:
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])


def _fmt_report(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2%}" if 0 <= v <= 1 else f"{v:.3g}"
    return str(v)


# ---------------------------------------------------------------------------------------------- run directory
def run_fit_encoder(recipe: dict[str, Any], codec_dir: Path, data: DataRegistry, out_dir: Path, resume: bool = False,
                    progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """``emoembed fit-encoder``: train, evaluate on test (and zero-shot in every other codec format where a
    dataset provides gold labels — see ``evaluate``), write the run directory; returns the metrics."""
    from emoembed.model import EmotionModel

    codec = EmotionCodec.from_pretrained(codec_dir)
    tasks = build_tasks(data, recipe["data"], list(codec.formats), recipe["modality"])
    dist_main = int(os.environ.get("RANK", "0")) == 0
    if dist_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json({**recipe, "codec": str(codec_dir)}, out_dir / "recipe.json")
    log("datasets: " + ", ".join(f"{t.name} ({t.fmt.name}: {t.size('train')}/{t.size('dev')}/{t.size('test')})" for t in tasks)
        + (f"; augment: {', '.join(recipe['augment'])}" if recipe["augment"] else ""))
    result = fit(recipe, codec, tasks, out_dir, resume=resume, progress=progress, log=log)
    model = EmotionModel.from_training(result, codec, tasks, recipe)
    device = next(result.encoder.parameters()).device
    test = {t.name: evaluate_task(result.encoder, result.heads, t, "test", int(recipe["training"]["eval_batch_size"]), device)
            for t in tasks}
    metrics = {"recipe": recipe["name"], "modality": recipe["modality"], "best_epoch": result.best_epoch,
               "dev_score": result.dev_score, "train_seconds": round(result.seconds, 2), "inputs": result.reports,
               "test": test, "test_mean": float(np.nanmean([r["primary"] for r in test.values()])), "history": result.history}
    if dist_main:
        model.save_pretrained(out_dir)
        atomic_write_json(metrics, out_dir / "metrics.json")
        (out_dir / STATE_NAME).unlink(missing_ok=True)
    return metrics
