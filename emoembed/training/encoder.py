"""Stage 2: the one training loop for every content encoder (word, text, image).

The codec's heads are frozen (``requires_grad`` off, outside the optimizer, checked unchanged at the end). For a
batch of dataset X in format A with gold labels y_A and content embeddings z = enc(x)::

    L = w_gold · ℓ_A(D_A(z), y_A)                                           supervised, through A's frozen head
      + w_aug  · mean_B ℓ_B(D_B(z), ŷ_B),  ŷ_B = act_B(D_B(E_A(y_A)))       label augmentation (frozen codec)
      + w_agr  · MSE(z, E_A(y_A))                                           embedding agreement (optional)
      + w_ccc  · (1 − CCC(D_A(z), y_A))                                     regression formats (optional)
      + auxiliary objective (e.g. CARL), if the recipe has one

ŷ_B is soft (values / probabilities) or hard (argmax one-hot, multilabel > .5) as ``augment_targets`` says.
With ``heads: direct`` the same loop trains the no-codec baseline: a trainable linear head per format.

Multi-dataset runs shuffle the batches of all datasets together each epoch (the reference's multitask
setting). Model selection: the mean primary dev metric over the datasets, early stopping with patience.
Each epoch (and every ``training.checkpoint_every`` optimizer steps) writes ``training_state.pt`` atomically;
``resume`` continues bit-identically, mid-epoch too. Texts of similar length share a batch with
``training.group_by_length`` (``emoembed.batching``); ``training.scheduler`` may be a per-step warm-up schedule
(``emoembed.schedules``). Under ``torchrun``
the encoder is wrapped in DistributedDataParallel; every rank draws the same global batch and takes its
share, so N processes match one process on the same global batch.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from emoembed.codec import EmotionCodec, head_fingerprint
from emoembed.data.registry import DataRegistry
from emoembed.encoders.base import (
    AuxiliaryObjective,
    ContentEncoder,
    StepContext,
    encoder_class,
    objective_class,
)
from emoembed.errors import ConfigError, DataError, EmoembedError
from emoembed.tasks import Task, build_tasks
from emoembed.param_groups import layerwise_lr_groups
from emoembed.format_kinds import activate, ccc_loss, format_loss, hard_targets
from emoembed.formats import LabelFormat
from emoembed.calibration import decide, fit_rule
from emoembed.inference import autocast_for, embed_items, evaluate_task, move_batch, pick_device
from emoembed.integrity import restoring
from emoembed.memory import release_freed_memory
from emoembed.metrics import mean_defined, min_items
from emoembed.io import atomic_write_json
from emoembed.model import DirectHeads, EmotionModel
from emoembed.schedules import build_step_scheduler, is_step_schedule
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

# ---------------------------------------------------------------------------------------------- heads
@torch.no_grad()
def synthetic_labels(codec: EmotionCodec, source: LabelFormat, y: torch.Tensor, target: str, mode: str = "soft") -> torch.Tensor:
    """Labels in ``target`` made by the frozen codec from gold labels ``y`` in ``source``."""
    tgt = codec.formats[target]
    out = activate(tgt, codec.decode(target, codec.encode_labels(source.name, y)))
    if tgt.kind == "regression":
        out = out.clamp(tgt.range[0], tgt.range[1])
    return hard_targets(tgt, out) if mode == "hard" else out


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


# ---------------------------------------------------------------------------------------------- batching
MIN_TRAIN_BATCH = 2  # BatchNorm (and any batch statistic) needs two items per training batch


def epoch_batches(tasks: Sequence[Task], masks: Sequence[np.ndarray], batch_size: int, seed: int, epoch: int,
                  drop_last: bool, max_steps: int | None, lengths: Sequence[np.ndarray] | None = None
                  ) -> list[tuple[int, np.ndarray]]:
    """Global batches of every task's training items, shuffled together; deterministic in (seed, epoch). A last
    batch smaller than ``MIN_TRAIN_BATCH`` joins the one before it (so a batch may hold ``batch_size`` + 1 items).
    With ``lengths`` (one array per task, a length per training item) batches are length-grouped
    (``emoembed.batching.length_grouped_batches``)."""
    from emoembed.batching import length_grouped_batches, shuffled_batches

    rng = np.random.default_rng([seed, epoch])
    batches = []
    for t, mask in enumerate(masks):
        idx = np.flatnonzero(mask)
        if lengths is not None:
            chunks = length_grouped_batches(idx, lengths[t][idx], batch_size, rng, drop_last=drop_last)
        else:
            chunks = shuffled_batches(idx, batch_size, rng, drop_last)
        if len(chunks) > 1 and len(chunks[-1]) < MIN_TRAIN_BATCH:  # a last batch of one breaks BatchNorm: merge it
            chunks[-2:] = [np.concatenate(chunks[-2:])]
        batches += [(t, c) for c in chunks]
    order = rng.permutation(len(batches))
    batches = [batches[i] for i in order]
    return batches[:max_steps] if max_steps else batches


def item_lengths(encoder: ContentEncoder, tasks: Sequence[Task]) -> list[np.ndarray]:
    """Per task, the length of each training item: token counts where the encoder has ``token_lengths``
    (texts), else its ``sort_key``."""
    fn = getattr(encoder, "token_lengths", None)
    return [np.asarray(fn(t.items["train"]) if fn else [encoder.sort_key(x) for x in t.items["train"]], dtype=float)
            for t in tasks]


def shard(idx: np.ndarray, dist: DistInfo) -> np.ndarray:
    return idx[dist.rank::dist.world] if dist.world > 1 else idx


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
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) during this call, like ``seconds`` for wall time


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def _frozen_codec(codec: EmotionCodec, device: torch.device) -> EmotionCodec:
    codec = codec.to(device)
    codec.requires_grad_(False)
    codec.eval()
    return codec


def fit(recipe: Mapping[str, Any], codec: EmotionCodec, tasks: Sequence[Task], state_dir: Path | None = None,
        resume: bool = False, progress: bool = True, log: Callable[[str], None] = print,
        encoder: ContentEncoder | None = None, on_start: Callable[[], None] | None = None) -> FitResult:
    """Train a content encoder on ``tasks`` through the frozen codec heads (or direct heads). ``on_start`` is
    called (on the main rank) once the resume checks have passed, right before the first epoch."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    tr = recipe["training"]
    seed = int(recipe["seed"])
    seed_everything(seed)
    dist = init_distributed(torch.device("cuda") if tr["device"] in ("auto", "cuda") and torch.cuda.is_available() else torch.device("cpu"))
    device = pick_device(tr["device"], dist.local_rank if dist.world > 1 else None)
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
        if t.size("dev") < min_items(t.fmt):
            raise DataError(f"dataset {t.name!r}: too few dev items for model selection ({t.size('dev')}; "
                            f"{t.fmt.metric} needs at least {min_items(t.fmt)})")
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
            t.items[split] = encoder.check_items(t.items[split], where=f"{t.name} ({split})",
                                                 rows=t.rows.get(split) or None)
        cap = tr["max_train_items"]
        cap = cap.get(t.name) if isinstance(cap, Mapping) else cap  # one cap for all, or {dataset: cap}
        if cap and t.size("train") > int(cap):
            keep = np.sort(np.random.default_rng(seed).choice(t.size("train"), int(cap), replace=False))
            t.items["train"] = [t.items["train"][i] for i in keep]
            t.labels["train"] = t.labels["train"][keep]
        prepare = getattr(encoder, "prepare_items", None)  # e.g. frozen image backbones: features computed once
        if prepare is not None:
            prepare(t.items["train"] + t.items["dev"] + t.items["test"], int(tr["eval_batch_size"]), progress, log_main)
        rep = encoder.input_report(t.items["train"] + t.items["dev"] + t.items["test"])
        reports[t.name] = rep
        if rep:
            log_main(f"{t.name}: " + ", ".join(f"{k} {_fmt_report(v)}" for k, v in rep.items()))
        mask_fn = getattr(encoder, "training_mask", None)
        masks.append(mask_fn(t.items["train"]) if mask_fn else np.ones(t.size("train"), dtype=bool))
        if int(masks[-1].sum()) < MIN_TRAIN_BATCH:
            raise DataError(f"dataset {t.name!r}: too few items to train on ({int(masks[-1].sum())} usable in the train "
                            f"split; training needs at least {MIN_TRAIN_BATCH})")

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
    if tr.get("layer_decay") is not None:  # layer-wise rate decay over the backbone (emoembed.param_groups)
        groups = layerwise_lr_groups(encoder.named_parameters(), float(tr["lr"]), float(tr["layer_decay"]),
                                     float(tr["weight_decay"]))
        if extra_params:
            groups.append({"params": extra_params, "lr": float(tr["lr"]), "weight_decay": float(tr["weight_decay"])})
        opt = opt_cls(groups, **opt_kwargs)
    else:
        opt = opt_cls(params, **opt_kwargs)
    sched = step_sched = None
    lengths = item_lengths(encoder, tasks) if tr["group_by_length"] else None
    epochs, accumulate = int(tr["epochs"]), int(tr["accumulate"])
    steps_per_epoch = len(epoch_batches(tasks, masks, int(tr["batch_size"]), seed, 0, bool(tr["drop_last"]), tr["max_steps_per_epoch"], lengths))
    total_steps = max(1, epochs * math.ceil(steps_per_epoch / accumulate))
    if is_step_schedule(tr["scheduler"]):
        sched = step_sched = build_step_scheduler(opt, tr["scheduler"], total_steps)
    elif tr["scheduler"]:
        s = dict(tr["scheduler"])
        if s.get("type", "step") != "step":
            raise ConfigError("training.scheduler.type must be step (per epoch: step_size, gamma) or a per-step schedule: "
                              "linear, cosine, cosine_restarts (warmup, cycles)")
        sched = torch.optim.lr_scheduler.StepLR(opt, int(s.get("step_size", 7)), float(s.get("gamma", 0.5)))

    train_module: nn.Module = encoder
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_module = DDP(encoder, device_ids=[device.index] if device.type == "cuda" else None)

    state_path = state_dir / STATE_NAME if state_dir else None
    keeper = BestKeeper(int(tr["patience"]))
    start_epoch, step = 0, 0
    history: list[dict] = []
    in_epoch: dict[str, Any] | None = None
    ckpt_every = int(tr["checkpoint_every"] or 0)

    def save_state(epoch: int, partial: dict[str, Any] | None = None) -> None:
        """After ``epoch`` (0-based) — or, with ``partial``, in the middle of it (``epoch`` then records the last
        finished one and ``in_epoch`` where to continue)."""
        if state_path is None or not dist.main:
            return
        save_training_state(state_path, epoch if partial is None else epoch - 1, keeper, history, step=step,
                            encoder=encoder.state_dict(), heads=heads.state_dict() if recipe["heads"] == "direct" else None,
                            objective=objective.state_dict() if objective is not None else None,
                            optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched else None, in_epoch=partial,
                            **resume_fields(recipe, fingerprint))

    if resume and state_path is not None and state_path.exists():
        st = load_training_state(state_path, keeper, recipe, fingerprint, "codec (--codec)", log_main)
        with restoring(state_path):
            encoder.load_state_dict(st["encoder"])
            if recipe["heads"] == "direct":
                heads.load_state_dict(st["heads"])
            if objective is not None and st.get("objective") is not None:
                objective.load_state_dict(st["objective"])
            opt.load_state_dict(st["optimizer"])
            if sched is not None and st.get("scheduler"):
                sched.load_state_dict(st["scheduler"])
            start_epoch, step, history = st["epoch"] + 1, st["step"], st["history"]
        in_epoch = st.get("in_epoch")  # a mid-epoch checkpoint (training.checkpoint_every): continue that epoch
        if in_epoch:
            start_epoch = int(in_epoch["epoch"])
        log_main(f"resumed from {state_path} " + (f"in epoch {start_epoch + 1} after batch {in_epoch['next_batch']}"
                                                   if in_epoch else f"after epoch {start_epoch}"))
    if on_start is not None and dist.main:
        on_start()

    w = recipe["loss_weights"]
    mode = recipe["augment_targets"]
    use_bf16 = bool(tr["bf16"])
    encoder.train()
    for epoch in range(start_epoch, epochs):
        epoch_t0, epoch_cpu0 = time.perf_counter(), time.process_time()
        pretraining = epoch < int(tr["pretrain_epochs"])
        head_w = 0.0 if pretraining else 1.0
        batches = epoch_batches(tasks, masks, int(tr["batch_size"]), seed, epoch, bool(tr["drop_last"]), tr["max_steps_per_epoch"], lengths)
        sums: dict[str, float] = dict(in_epoch["sums"]) if in_epoch else {}
        skip = int(in_epoch["next_batch"]) if in_epoch else 0
        in_epoch = None
        bar = tqdm(batches, desc=f"{recipe['name']} epoch {epoch + 1}/{epochs}" + (" (pretrain)" if pretraining else ""),
                   disable=not progress or not dist.main, leave=False)
        opt.zero_grad(set_to_none=True)
        for i, (t_idx, gidx) in enumerate(bar):
            if i < skip:  # done before the mid-epoch checkpoint this run resumed from
                continue
            task = tasks[t_idx]
            idx = shard(gidx, dist)
            batch = move_batch(encoder.collate([task.items["train"][j] for j in idx], train=True), device)
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
                                          step, total_steps, {"pretraining": pretraining, "device": device,
                                                              "split_backward": dist.world == 1})
                        aux, aux_parts = objective.loss(ctx)
                        loss = loss + aux
                        parts.update(aux_parts)
                _check_finite(loss, epoch, i, task.name)
                (loss / accumulate).backward()
                loss_value = float(loss.detach())
                del z, loss  # the training forward's graph is spent: drop it before any deferred forward
                if objective is not None:
                    # terms built after that backward (CARL's PTD forward on perturbed embeddings): the step then
                    # never holds two forward graphs at once
                    with autocast_for(device, use_bf16):
                        deferred = objective.deferred_loss(ctx)
                    if deferred is not None:
                        late, late_parts = deferred
                        _check_finite(late, epoch, i, task.name)
                        (late / accumulate).backward()
                        loss_value += float(late.detach())
                        parts.update(late_parts)
                        del late, deferred
                    del ctx, aux
            if last_micro:
                if dist.world > 1:
                    _average_gradients(extra_params, dist.world)
                if tr["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(params, float(tr["grad_clip"]))
                opt.step()
                opt.zero_grad(set_to_none=True)
                release_freed_memory()  # the step's activations go back to the system (emoembed.memory)
                if step_sched is not None:
                    step_sched.step()
                step += 1
                if objective is not None:
                    objective.after_step(encoder, step, total_steps)
            parts["loss"] = loss_value
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if last_micro and ckpt_every and step % ckpt_every == 0 and i + 1 < len(batches):
                save_state(epoch, {"epoch": epoch, "next_batch": i + 1, "sums": sums})
        if sched is not None and step_sched is None:
            sched.step()
        dev_rows = {t.name: evaluate_task(encoder, heads, t, "dev", int(tr["eval_batch_size"]), device) for t in tasks}
        dev = mean_defined(r["primary"] for r in dev_rows.values())
        entry = {"epoch": epoch + 1, "dev": dev, **{f"dev_{k}": r["primary"] for k, r in dev_rows.items()},
                 **{k: v / max(1, len(batches)) for k, v in sums.items()},
                 # wall and CPU seconds of the epoch (training + dev evaluation), kept across resumes with the history
                 "seconds": round(time.perf_counter() - epoch_t0, 2), "cpu_seconds": round(time.process_time() - epoch_cpu0, 2)}
        history.append(entry)
        if not pretraining:  # while the heads are not trained yet, the dev score selects no model
            keeper.update(dev, epoch + 1, lambda: _snapshot(encoder, heads if recipe["heads"] == "direct" else None))
        if progress:  # like map, --quiet (progress=False) shows no per-epoch lines; metrics.json has the history
            log_main(f"epoch {epoch + 1}: loss {entry['loss']:.4f}, dev {dev:.4f}" + (" (pretrain)" if pretraining else "")
                     + (f" [best {keeper.best_score:.4f} @ {keeper.best_epoch}]" if keeper.best_epoch > 0 else ""))
        save_state(epoch)
        if keeper.should_stop:
            log_main(f"early stop after epoch {epoch + 1}: best dev {keeper.best_score:.4f} at epoch {keeper.best_epoch}")
            break
    if keeper.best_state is not None:
        _restore(keeper.best_state, encoder, heads if recipe["heads"] == "direct" else None)
    encoder.eval()
    if head_fingerprint(codec) != fingerprint:
        raise EmoembedError("internal error: the frozen codec changed during encoder training")
    return FitResult(encoder, heads, keeper.best_epoch, keeper.best_score, history, time.perf_counter() - t0, reports,
                     time.process_time() - cpu0)


def _check_finite(loss: torch.Tensor, epoch: int, i: int, dataset: str) -> None:
    if not torch.isfinite(loss):
        raise EmoembedError(f"loss became {float(loss)} at epoch {epoch + 1}, step {i + 1} (dataset {dataset}); "
                            "lower the learning rate or check the data")


def _step_loss(heads: nn.Module, codec: EmotionCodec, fmt: LabelFormat, z: torch.Tensor, y: torch.Tensor,
               augment: Sequence[str], w: Mapping[str, float], mode: str, head_w: float, direct: bool
               ) -> tuple[torch.Tensor, dict[str, float]]:
    parts: dict[str, float] = {}
    z32 = z.float()
    raw = heads.decode(fmt.name, z32)
    gold = format_loss(raw, y, fmt)
    total = head_w * float(w["gold"]) * gold
    parts["gold"] = float(gold.detach())
    if fmt.kind == "regression" and float(w.get("ccc", 0.0)) > 0:
        ccc = ccc_loss(raw, y)
        total = total + head_w * float(w["ccc"]) * ccc
        parts["ccc"] = float(ccc.detach())
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
    return snapshot(encoder, "encoder.") | (snapshot(heads, "heads.") if heads is not None else {})


def _restore(state: Mapping[str, torch.Tensor], encoder: nn.Module, heads: nn.Module | None) -> None:
    encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    if heads is not None:
        heads.load_state_dict({k[len("heads."):]: v for k, v in state.items() if k.startswith("heads.")})


def _fmt_report(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2%}" if 0 <= v <= 1 else f"{v:.3g}"
    return str(v)


# ---------------------------------------------------------------------------------------------- run directory
def export_as_lora(result: FitResult, tasks: Sequence[Task], recipe: Mapping[str, Any], device: torch.device,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Recipe key ``export_lora``: replace ``result.encoder`` — a fully fine-tuned text encoder, at its best dev
    epoch — in place by the LoRA adapter extracted from its weight change (:meth:`TextEncoder.extracted_lora`), and
    score the adapter on the dev splits. Returns ``{"settings", "layers", "energy_kept", "dev_full", "dev_adapter",
    "dev_full_per_dataset", "dev_adapter_per_dataset"}``; the run's test scores are then the adapter's.
    ConfigError for an encoder that is not a text encoder."""
    from emoembed.encoders.text import TextEncoder

    if not isinstance(result.encoder, TextEncoder):
        raise ConfigError(f"export_lora: only a text encoder can be saved as a LoRA adapter, not a {result.encoder.modality} encoder")
    batch = int(recipe["training"]["eval_batch_size"])
    best = next((h for h in result.history if h.get("epoch") == result.best_epoch), {})  # scored at that epoch's end
    before = {t.name: best[f"dev_{t.name}"] if f"dev_{t.name}" in best else
              evaluate_task(result.encoder, result.heads, t, "dev", batch, device)["primary"] for t in tasks}
    adapted, info = result.encoder.extracted_lora(recipe["export_lora"])
    adapted.eval()
    after = {t.name: evaluate_task(adapted, result.heads, t, "dev", batch, device)["primary"] for t in tasks}
    result.encoder = adapted
    dev_full, dev_adapter = mean_defined(before.values()), mean_defined(after.values())
    log(f"export_lora: rank {recipe['export_lora']['rank']} on {info['layers']} layers keeps "
        f"{info['energy_kept']:.1%} of the weight change; dev {dev_full:.4f} (full fine-tune) → {dev_adapter:.4f} (adapter)")
    return {"settings": dict(recipe["export_lora"]), **info, "dev_full": dev_full, "dev_adapter": dev_adapter,
            "dev_full_per_dataset": before, "dev_adapter_per_dataset": after}


@torch.no_grad()
def fit_model_calibration(model, tasks: Sequence, split: str = "dev", batch_size: int = 256) -> dict[str, dict[str, Any]]:
    """Decision rules fitted on a content model's own outputs: per multilabel format the model was trained in —
    with gold labels (a task in that format) or with codec-made ones (a format of the recipe's ``augment``) — the
    :func:`emoembed.calibration.fit_rule` thresholds of the model's probabilities on ``split`` of its training ``tasks``.

    The codec's rule was fitted on the codec's conversions of gold labels; a model's probabilities are flatter (its
    prediction of the label is less certain than the label), so the codec's thresholds gave it too few labels:
    ``emoembed/words-minilm`` marked 1.8 NRC EmoLex classes per dev word against 2.1 gold and the codec's 2.4. The
    targets are the gold labels for a gold task, and for an augmented format the labels the codec itself gives the
    task's gold labels (its calibrated rule, :func:`decide`): the model is calibrated to say what the codec says of
    the true ratings. Formats no task gives dev items for keep the codec's rule. Returns ``{format: rule}``
    (empty for a model with no multilabel training format or with direct heads)."""
    if getattr(model, "direct_heads", None) is not None:
        return {}
    codec = model.codec
    trained = {t.fmt.name for t in tasks}
    augmented = set(model.meta.get("augmented_formats", []) or [])
    wanted = [f for f, fmt in codec.formats.items() if fmt.kind == "multilabel" and (f in trained or f in augmented)]
    if not wanted:
        return {}
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out: dict[str, dict[str, Any]] = {}
    try:
        embedded: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
        for t in tasks:
            items = t.items.get(split) or []
            if not items:
                continue
            z, undefined = embed_items(model.encoder, items, batch_size, device)
            keep = np.ones(len(items), bool) if undefined is None else ~undefined.numpy()
            embedded[t.name] = (z[torch.as_tensor(keep)], np.asarray(t.labels[split], dtype=np.float32)[keep])
        for name in wanted:
            fmt = codec.formats[name]
            probs, targets, where = [], [], []
            for t in tasks:
                if t.name not in embedded:
                    continue
                z, y = embedded[t.name]
                if t.fmt.name == name:
                    target = y > 0.5
                elif name in augmented and t.fmt.name in codec.formats:
                    made = codec.activate(name, codec.decode(name, codec.encode_labels(t.fmt.name, torch.as_tensor(y), None)))
                    target = decide(made.cpu().numpy(), fmt, codec.calibration.get(name),
                                    zero_shot=codec.same_island(t.fmt.name, name) is False)
                else:
                    continue
                probs.append(codec.activate(name, codec.decode(name, z.to(device).float())).cpu().numpy())
                targets.append(np.asarray(target, dtype=bool))
                where.append(f"{t.name} ({'gold' if t.fmt.name == name else 'codec-made from ' + t.fmt.name})")
            if probs:
                out[name] = fit_rule(np.concatenate(probs), np.concatenate(targets), fmt,
                                     f"this model's outputs on the {split} split of {', '.join(where)}")
    finally:
        model.train(was)
    return out


def calibrate_model(model: EmotionModel, tasks: Sequence[Task], batch_size: int = 256, log: Callable[[str], None] = print) -> dict:
    """Fit the model's own multilabel decision rules on the dev split of its training tasks
    (:func:`fit_model_calibration`) and keep them in its config (``calibration``)."""
    rules = fit_model_calibration(model, tasks, "dev", batch_size)
    model.meta.pop("calibration", None)
    if rules:
        model.meta["calibration"] = rules
        for name, rule in rules.items():
            log(f"calibrated {name} on this model's outputs: at most {rule['max_labels']} label(s), at least "
                f"{rule['min_labels']}; {rule['fitted_on']}")
    return rules


def run_fit_encoder(recipe: dict[str, Any], codec_dir: Path, data: DataRegistry, out_dir: Path, resume: bool = False,
                    progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """``emoembed fit-encoder``: train, evaluate on test (and zero-shot in every other codec format where a
    dataset provides gold labels — see ``evaluate``), write the run directory; returns the metrics
    (``metrics.json``: ``train_seconds`` / ``train_cpu_seconds`` are this call's wall and process CPU time; the
    ``history`` entries' ``seconds`` / ``cpu_seconds`` time each epoch, across resumes)."""
    dist_main = int(os.environ.get("RANK", "0")) == 0
    if dist_main:
        check_resume_target(out_dir, resume, "fit-encoder")
    codec = EmotionCodec.from_pretrained(codec_dir)
    tasks = build_tasks(data, recipe["data"], codec.formats, recipe["modality"])

    def write_recipe() -> None:  # only once the run is under way (after the resume checks)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json({**recipe, "codec": str(codec_dir)}, out_dir / "recipe.json")
    log("datasets: " + ", ".join(f"{t.name} ({t.fmt.name}: {t.size('train')}/{t.size('dev')}/{t.size('test')})" for t in tasks)
        + (f"; augment: {', '.join(recipe['augment'])}" if recipe["augment"] else ""))
    result = fit(recipe, codec, tasks, out_dir, resume=resume, progress=progress, log=log, on_start=write_recipe)
    device = next(result.encoder.parameters()).device
    export = export_as_lora(result, tasks, recipe, device, log) if recipe.get("export_lora") else None
    model = EmotionModel.from_training(result, codec, tasks, recipe)
    calibrate_model(model, tasks, int(recipe["training"]["eval_batch_size"]), log)
    test = {t.name: evaluate_task(result.encoder, result.heads, t, "test", int(recipe["training"]["eval_batch_size"]), device,
                                  rule=model.decision_rule(t.fmt.name)) for t in tasks}
    metrics = {"recipe": recipe["name"], "modality": recipe["modality"], "best_epoch": result.best_epoch,
               "dev_score": result.dev_score, "train_seconds": round(result.seconds, 2),
               "train_cpu_seconds": round(result.cpu_seconds, 2), "inputs": result.reports,
               "test": test, "test_mean": mean_defined(r["primary"] for r in test.values()), "history": result.history}
    if export is not None:
        metrics["export_lora"] = export
    if dist_main:
        model.save_pretrained(out_dir)
        atomic_write_json(metrics, out_dir / "metrics.json")
        (out_dir / STATE_NAME).unlink(missing_ok=True)
    return metrics
