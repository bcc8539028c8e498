"""CARL (Son, Saurez & Har: *Continuous Adversarial Text Representation Learning for Affective Recognition*) as an
auxiliary objective of the stage-2 loop: extra loss terms ``weight · (λ₁·MCCL + λ₂·PTD)`` added to the
frozen-head loss.

**MCCL** (momentum continuous-label contrastive learning). Online branch: encoder → projection MLP →
prediction MLP; target branch: an EMA copy of encoder and projection (BYOL), momentum
``m_k = 1 − (1 − m₀)·(cos(πk/K) + 1)/2``. The in-batch cosine-similarity matrix of online predictions vs target
projections and the cosine-similarity matrix of the items' (valence, arousal) labels in [-1, 1] are both
row-softmaxed at temperature τ; the loss is their symmetric cross-entropy (:func:`mccl_loss`). VA labels are
the gold ones when the batch's format has valence and arousal (EmoBank's vad), else codec-made synthetic
``va`` (or ``vad``) labels. ``momentum: false`` is the SimCSE-style ablation: no target network, the target side
is a second forward of the online encoder (other dropout mask) with direct gradient updates.

**PTD** (gradient-based perturbed-token detection). Saliency per token = ‖∂L/∂e_t‖₂ over the input embeddings
(L: the sentence-level loss, by default λ₁·MCCL + the frozen-head loss), taken from the training forward the loop
already ran (one extra backward to the embeddings, no extra forward; in pure-CARL pre-training, where L is
λ₁·MCCL, not even that: the loop's own backward passes ∂L/∂e, up to a positive factor, and it is caught there).
The top ``top_k`` fraction of each sentence's real tokens (no padding, no special tokens) is perturbed by PGD,
``δ ← Π_ε(δ + α·sign(∇_e L/‖∇_e L‖))`` — its first step reuses the saliency gradient — and a token-level detector
(MLP + sigmoid) on the online encoder's token states of the perturbed input is trained with the binary focal loss
``−(1 − p_t)^γ·log p_t`` to find the perturbed tokens.

**Memory.** In one process the loop backpropagates the MCCL terms first and only then asks for PTD
(:meth:`CARLObjective.deferred_loss`): the detector's forward on the perturbed input is built once the online
forward's graph is freed, so a step holds one backbone graph at a time, not two (same numbers; docs/text.md,
"Memory": 30 steps of the pre-training recipe peaked at 7.6 instead of 11.5 GiB).

The losses are pure functions (:func:`mccl_loss`, :func:`momentum_at`, :func:`select_salient`,
:func:`pgd_step`, :func:`focal_loss`) so tests can check them against hand computations. See docs/text.md for
every choice made where the paper is silent or inconsistent (ε, the saliency loss, what the projection sees).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from emoembed.encoders.base import (
    AuxiliaryObjective,
    ContentEncoder,
    StepContext,
    register_objective,
)
from emoembed.errors import ConfigError, EmoembedError


# ---------------------------------------------------------------------------------------------- pure functions
def momentum_at(step: int, total_steps: int, m0: float) -> float:
    """Cosine schedule from ``m0`` (step 0) to 1 (step K): ``1 − (1 − m0)·(cos(π·k/K) + 1)/2``."""
    if total_steps <= 0:
        return float(m0)
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - m0) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, N) cosine similarities between the rows of ``a`` and of ``b`` (zero rows give 0)."""
    return F.normalize(a.float(), dim=-1, eps=1e-8) @ F.normalize(b.float(), dim=-1, eps=1e-8).T


def mccl_loss(online: torch.Tensor, target: torch.Tensor, va: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric cross-entropy between the row-softmaxed (at τ) similarity matrices of embeddings
    (online predictions vs target projections) and of the (valence, arousal) labels, averaged over rows:
    ``−1/N Σ_i Σ_j [P_sim,ij·log P_va,ij + P_va,ij·log P_sim,ij]``."""
    log_sim = F.log_softmax(cosine_matrix(online, target) / temperature, dim=-1)
    log_va = F.log_softmax(cosine_matrix(va, va) / temperature, dim=-1)
    return -((log_sim.exp() * log_va).sum(-1) + (log_va.exp() * log_sim).sum(-1)).mean()


def select_salient(scores: torch.Tensor, candidates: torch.Tensor, fraction: float) -> torch.Tensor:
    """(B, T) bool: per row the ``ceil(fraction · n)`` candidate tokens (at least 1 when n > 0) with the highest
    score; non-candidates (padding, special tokens) are never selected."""
    n = candidates.sum(-1)
    k = torch.clamp(torch.ceil(n.float() * fraction), min=1).long() * (n > 0)
    s = scores.float().masked_fill(~candidates, float("-inf"))
    order = s.argsort(dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (ranks < k.unsqueeze(-1)) & candidates


def project_ball(delta: torch.Tensor, radius: torch.Tensor | float) -> torch.Tensor:
    """Projects each token's perturbation (last dim) onto the L2 ball of ``radius`` (a scalar or (…, 1))."""
    norm = delta.norm(dim=-1, keepdim=True)
    scale = torch.clamp(radius / norm.clamp_min(1e-30), max=1.0)
    return delta * scale


def pgd_step(delta: torch.Tensor, grad: torch.Tensor, selected: torch.Tensor, alpha: float,
             radius: torch.Tensor | float) -> torch.Tensor:
    """One PGD ascent step on the selected tokens: ``Π_ε(δ + α·sign(g/‖g‖₂))``; other tokens keep δ = 0."""
    g = grad.float() / grad.float().norm(dim=-1, keepdim=True).clamp_min(1e-30)
    step = alpha * torch.sign(g) * selected.unsqueeze(-1).to(g.dtype)
    return project_ball(delta.float() + step, radius) * selected.unsqueeze(-1).to(g.dtype)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, mask: torch.Tensor | None = None,
               alpha: float | None = None) -> torch.Tensor:
    """Binary focal loss ``−α_t·(1 − p_t)^γ·log p_t`` with ``p_t = σ(x)`` for positives and ``1 − σ(x)`` for
    negatives, averaged over the ``mask``ed entries (``alpha`` None: no class weighting, as in the paper)."""
    logits, targets = logits.float(), targets.float()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # −log p_t
    p_t = torch.exp(-ce)
    loss = (1.0 - p_t).pow(gamma) * ce
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    if mask is None:
        return loss.mean()
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def detection_auc(logits: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor) -> float:
    """P(score of a perturbed token > score of a clean one) over the ``mask``ed tokens (ties count ½); 0.5 is
    chance (and the value when a batch has no clean or no perturbed token). The detector's accuracy alone hides
    that most tokens are clean."""
    scores = logits.float()[mask]
    pos = positive[mask]
    if pos.all() or not pos.any():
        return 0.5
    p, n = scores[pos], scores[~pos]
    diff = p.unsqueeze(1) - n.unsqueeze(0)
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


# ---------------------------------------------------------------------------------------------- objective
@register_objective
class CARLObjective(AuxiliaryObjective):
    name = "carl"

    def __init__(self, weight: float = 1.0, lambda_mccl: float = 0.8, lambda_ptd: float = 0.2, mccl: bool = True,
                 ptd: bool = True, momentum: bool = True, temperature: float = 0.05, momentum_start: float = 0.9996,
                 projection_input: str = "pooled", proj_dim: int = 128, proj_hidden: int = 512,
                 pred_hidden: int = 512, va_source: str = "auto", top_k: float = 0.1, epsilon: float = 0.5,
                 epsilon_mode: str = "relative", alpha: float = 5.0, pgd_steps: int = 1, gamma: float = 2.0,
                 focal_alpha: float | None = None, detector_hidden: int | None = None, saliency: str = "total"):
        super().__init__()
        checks = {"projection_input": (projection_input, ("pooled", "z")),
                  "va_source": (va_source, ("auto", "gold", "synthetic")),
                  "epsilon_mode": (epsilon_mode, ("absolute", "relative")),
                  "saliency": (saliency, ("total", "mccl", "head"))}
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"carl: {key} must be one of {list(allowed)}, got {value!r}")
        if not (mccl or ptd):
            raise ConfigError("carl: mccl and ptd are both off; drop the objective instead")
        if not 0.0 < top_k <= 1.0:
            raise ConfigError(f"carl: top_k is the fraction of tokens to perturb, in (0, 1]; got {top_k!r}")
        if temperature <= 0 or epsilon < 0 or alpha < 0 or int(pgd_steps) < 1 or not 0.0 <= momentum_start <= 1.0:
            raise ConfigError("carl: needs temperature > 0, epsilon ≥ 0, alpha ≥ 0, pgd_steps ≥ 1, 0 ≤ momentum_start ≤ 1")
        self.weight, self.lambda_mccl, self.lambda_ptd = float(weight), float(lambda_mccl), float(lambda_ptd)
        self.use_mccl, self.use_ptd, self.use_momentum = bool(mccl), bool(ptd), bool(momentum)
        self.temperature, self.momentum_start = float(temperature), float(momentum_start)
        self.projection_input = projection_input
        self.proj_dim, self.proj_hidden, self.pred_hidden = int(proj_dim), int(proj_hidden), int(pred_hidden)
        self.va_source = va_source
        self.top_k, self.epsilon, self.epsilon_mode = float(top_k), float(epsilon), epsilon_mode
        self.alpha, self.pgd_steps, self.gamma = float(alpha), int(pgd_steps), float(gamma)
        self.focal_alpha = None if focal_alpha is None else float(focal_alpha)
        self.detector_hidden = detector_hidden
        self.saliency = saliency
        self.momentum_now = self.momentum_start
        self.projector: nn.Module | None = None
        self.predictor: nn.Module | None = None
        self.detector: nn.Module | None = None
        self.target_encoder: ContentEncoder | None = None
        self.target_projector: nn.Module | None = None
        self._deferred: _DeferredPTD | None = None  # what deferred_loss needs of the last loss() call

    # -- setup -------------------------------------------------------------------------------------
    def setup(self, encoder: ContentEncoder) -> None:
        token_level = hasattr(encoder, "forward_tokens")
        if self.use_ptd and not token_level:
            raise ConfigError(f"carl: perturbed-token detection needs a token-level encoder (text); "
                              f"the {encoder.modality!r} encoder has none (set ptd: false)")
        if self.projection_input == "pooled" and not token_level:
            raise ConfigError("carl: projection_input: pooled needs a text encoder; use projection_input: z")
        device = next(encoder.parameters()).device
        if token_level:
            encoder.keep_last_forward(True)
        if self.use_mccl:
            d_in = encoder.hidden_size if self.projection_input == "pooled" else encoder.dim
            self.projector = mlp(d_in, self.proj_hidden, self.proj_dim).to(device)
            self.predictor = mlp(self.proj_dim, self.pred_hidden, self.proj_dim).to(device)
            if self.use_momentum:
                if token_level:
                    encoder.clear_last_forward()
                self.target_encoder = copy.deepcopy(encoder)  # runs in training mode (dropout), as the online branch
                self.target_projector = copy.deepcopy(self.projector)
                for p in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
                    p.requires_grad_(False)
                if token_level:
                    self.target_encoder.keep_last_forward(False)
        if self.use_ptd:
            h = encoder.hidden_size
            self.detector = mlp(h, int(self.detector_hidden or h), 1).to(device)

    def trainable_parameters(self):
        targets = {id(p) for m in (self.target_encoder, self.target_projector) if m is not None for p in m.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in targets]

    # -- pieces ------------------------------------------------------------------------------------
    def va_labels(self, ctx: StepContext) -> torch.Tensor:
        """(B, 2) valence and arousal in [-1, 1]: gold when the format has both, else codec-made."""
        variables = list(ctx.codec.formats[ctx.fmt].variables) if ctx.fmt in getattr(ctx.codec, "formats", {}) else []
        has_gold = "valence" in variables and "arousal" in variables
        if self.va_source == "gold" and not has_gold:
            raise ConfigError(f"carl: va_source: gold, but format {ctx.fmt!r} has no valence and arousal")
        if has_gold and self.va_source != "synthetic":
            return ctx.labels[:, [variables.index("valence"), variables.index("arousal")]].float()
        known = getattr(ctx.codec, "formats", {})
        for fmt in ("va", "vad"):
            if fmt in known:
                vars_ = list(known[fmt].variables)
                y = ctx.synthetic(fmt)
                return y[:, [vars_.index("valence"), vars_.index("arousal")]].float().detach()
        raise ConfigError(f"carl: MCCL needs valence/arousal labels; format {ctx.fmt!r} has none and the codec "
                          "knows neither va nor vad")

    def _features(self, out: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return out["pooled"] if self.projection_input == "pooled" else out["z"]

    def _online(self, ctx: StepContext) -> dict[str, torch.Tensor] | None:
        module = ctx.module
        return module.last_forward(ctx.batch) if hasattr(module, "last_forward") else None

    def _target_projection(self, ctx: StepContext) -> torch.Tensor:
        if self.use_momentum:
            with torch.no_grad():
                tgt = self.target_encoder
                feats = self._features(tgt.forward_tokens(ctx.batch)) if hasattr(tgt, "forward_tokens") else tgt(ctx.batch)
                return self.target_projector(feats).detach()
        # SimCSE-style: the online network again (another dropout mask), gradients flow through both sides
        if hasattr(ctx.module, "forward_tokens"):
            return self.projector(self._features(ctx.module.forward_tokens(ctx.batch)))
        return self.projector(ctx.encoder(ctx.batch))

    def _head_loss(self, ctx: StepContext, z: torch.Tensor) -> torch.Tensor:
        from emoembed.format_kinds import format_loss

        fmt = ctx.codec.formats[ctx.fmt]
        return format_loss(ctx.codec.decode(ctx.fmt, z).float(), ctx.labels.float(), fmt)

    def _mccl(self, feats: torch.Tensor, target: torch.Tensor, va: torch.Tensor) -> torch.Tensor:
        return mccl_loss(self.predictor(self.projector(feats)), target, va, self.temperature)

    def _radius(self, embeddings: torch.Tensor) -> torch.Tensor | float:
        if self.epsilon_mode == "absolute":
            return self.epsilon
        return self.epsilon * embeddings.detach().float().norm(dim=-1, keepdim=True)

    def _saliency_loss(self, ctx: StepContext, out: Mapping[str, torch.Tensor],
                       mccl_value: torch.Tensor | None) -> torch.Tensor:
        """The sentence-level loss of the training forward (reusing the MCCL value already computed): λ₁·MCCL
        and/or the frozen-head loss as ``saliency`` says. In the pure-CARL pre-training phase (head weight 0)
        ``total`` means MCCL alone, so no head signal reaches the encoder."""
        loss = out["z"].sum() * 0.0
        pretraining = bool(ctx.extras.get("pretraining", False))
        if mccl_value is not None and self.saliency in ("total", "mccl"):
            loss = loss + self.lambda_mccl * mccl_value
        if self.saliency == "head" or mccl_value is None or (self.saliency == "total" and not pretraining):
            loss = loss + self._head_loss(ctx, out["z"])
        return loss

    def _sentence_loss(self, ctx: StepContext, out: Mapping[str, torch.Tensor], target: torch.Tensor | None,
                       va: torch.Tensor | None) -> torch.Tensor:
        """The loss whose input-embedding gradient is the saliency (and the PGD direction)."""
        mccl_value = self._mccl(self._features(out), target, va) if self.use_mccl else None
        return self._saliency_loss(ctx, out, mccl_value)

    def perturb(self, ctx: StepContext, out: Mapping[str, torch.Tensor], loss: torch.Tensor,
                target: torch.Tensor | None, va: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(perturbation δ (B, T, H) detached, selected-token mask (B, T)). Saliency and the first PGD step come
        from one gradient of ``loss`` w.r.t. the input embeddings of the forward the loop already ran."""
        emb = out["embeddings"]
        (grad,) = torch.autograd.grad(loss, emb, retain_graph=True)
        return self.perturb_from(ctx, emb.detach(), grad, out["mask"] & ~out["special_mask"], target, va)

    def perturb_from(self, ctx: StepContext, emb: torch.Tensor, grad: torch.Tensor, candidates: torch.Tensor,
                     target: torch.Tensor | None, va: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`perturb` given the saliency gradient ``grad`` (B, T, H) of the sentence loss w.r.t. the input
        embeddings ``emb`` (detached). Selection and PGD directions are invariant to a positive scale of ``grad``."""
        selected = select_salient(grad.float().norm(dim=-1), candidates, self.top_k)
        radius = self._radius(emb)
        delta = pgd_step(torch.zeros_like(grad, dtype=torch.float32), grad, selected, self.alpha, radius)
        for _ in range(self.pgd_steps - 1):
            x = (emb.detach() + delta.to(emb.dtype)).requires_grad_()
            adv = ctx.module.forward_tokens(ctx.batch, inputs_embeds=x)
            (grad,) = torch.autograd.grad(self._sentence_loss(ctx, adv, target, va), x)
            delta = pgd_step(delta, grad, selected, self.alpha, radius)
        return delta.detach(), selected

    def saliency_from_backward(self, ctx: StepContext) -> bool:
        """Whether the loop's own backward gives the saliency gradient up to a positive factor, so that no extra
        backward to the embeddings is needed: split backward, a pure-CARL pre-training step (head weight 0, so
        the loop's loss is weight·λ₁·MCCL plus zero-weighted terms) and a saliency loss of MCCL alone there."""
        return (bool(ctx.extras.get("split_backward")) and bool(ctx.extras.get("pretraining"))
                and self.use_mccl and self.saliency in ("total", "mccl") and self.weight > 0 and self.lambda_mccl > 0)

    def detect(self, ctx: StepContext, out: Mapping[str, torch.Tensor], delta: torch.Tensor,
               selected: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        emb = out["embeddings"]
        adv = ctx.module.forward_tokens(ctx.batch, inputs_embeds=emb + delta.to(emb.dtype))
        logits = self.detector(adv["token_states"]).squeeze(-1)
        candidates = out["mask"] & ~out["special_mask"]
        loss = focal_loss(logits, selected.float(), self.gamma, candidates, self.focal_alpha)
        with torch.no_grad():
            hit = ((logits > 0) == selected) & candidates
            acc = hit.sum().float() / candidates.sum().clamp_min(1)
            # what reaches the model after float rounding (the paper's ε = 5e-9 mostly does not)
            e = emb.detach()
            applied = (e + delta.to(e.dtype)) - e
            changed = (applied != 0)[selected].float().mean() if selected.any() else applied.new_zeros(())
            rel = (applied.float().norm(dim=-1) / e.float().norm(dim=-1).clamp_min(1e-12))[selected]
        return loss, {"ptd_acc": float(acc), "ptd_auc": detection_auc(logits.detach(), selected, candidates),
                      "ptd_changed": float(changed), "ptd_delta_rel": float(rel.mean()) if rel.numel() else 0.0}

    # -- the contract ------------------------------------------------------------------------------
    def loss(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._online(ctx)
        total = ctx.z.sum() * 0.0
        parts: dict[str, float] = {}
        target = va = None
        mccl_value = None
        if self.use_mccl:
            va = self.va_labels(ctx).to(ctx.z.device)
            target = self._target_projection(ctx)
            feats = self._features(out) if out is not None else ctx.z
            mccl_value = self._mccl(feats, target, va)
            total = total + self.lambda_mccl * mccl_value
            parts["mccl"] = float(mccl_value.detach())
        self._deferred = None
        if self.use_ptd:
            candidates = out["mask"] & ~out["special_mask"]
            if self.saliency_from_backward(ctx):
                # the loop's backward of weight·λ₁·MCCL passes ∂L/∂e (a positive multiple of the saliency
                # gradient) through the input embeddings: catch it there instead of one more backward
                caught: dict[str, torch.Tensor] = {}
                out["embeddings"].register_hook(lambda g: caught.__setitem__("grad", g.detach()))
                self._deferred = _DeferredPTD(ctx, candidates, target, va, caught=caught)
            else:
                sal_loss = self._saliency_loss(ctx, out, mccl_value)
                delta, selected = self.perturb(ctx, out, sal_loss, target, va)
                del sal_loss
                if ctx.extras.get("split_backward"):
                    # PTD's forward runs in deferred_loss, once the loop's backward has freed this forward's graph
                    self._deferred = _DeferredPTD(ctx, candidates, target, va, delta=delta, selected=selected)
                else:
                    ptd_value, ptd_parts = self.detect(ctx, out, delta, selected)
                    total = total + self.lambda_ptd * ptd_value
                    parts["ptd"] = float(ptd_value.detach())
                    parts.update(ptd_parts)
        if self.use_momentum and self.use_mccl:
            parts["momentum"] = self.momentum_now
        if hasattr(ctx.module, "clear_last_forward"):
            ctx.module.clear_last_forward()
        return self.weight * total, parts

    def deferred_loss(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]] | None:
        """``weight · λ₂ · PTD`` of the batch :meth:`loss` just saw with ``ctx.extras["split_backward"]``: the
        detector's forward on the perturbed input embeddings, built after the loop's backward of the MCCL terms
        freed the online forward's graph, so the step holds one backbone graph at a time instead of two. In
        pure-CARL pre-training (:meth:`saliency_from_backward`) the saliency gradient is the one that backward
        passed through the input embeddings, otherwise it was taken in :meth:`loss`; the numbers are those of the
        one-backward path (tested). The input embeddings are looked up again (the first lookup's graph is spent).
        None when nothing is deferred."""
        pending, self._deferred = self._deferred, None
        if pending is None or pending.ctx is not ctx:
            return None
        emb = ctx.module.input_embeddings(ctx.batch["input_ids"])
        delta, selected = pending.delta, pending.selected
        if delta is None:
            grad = pending.caught.get("grad")
            if grad is None:
                raise EmoembedError("internal error: carl: the backward passed no gradient through the input "
                                    "embeddings (no saliency for PTD)")
            delta, selected = self.perturb_from(ctx, emb.detach(), grad, pending.candidates, pending.target, pending.va)
        mask = ctx.batch["attention_mask"].bool()
        ptd_value, ptd_parts = self.detect(ctx, {"embeddings": emb, "mask": mask, "special_mask": ~pending.candidates},
                                           delta, selected)
        return self.weight * self.lambda_ptd * ptd_value, {"ptd": float(ptd_value.detach()), **ptd_parts}

    @torch.no_grad()
    def after_step(self, encoder: ContentEncoder, step: int, total_steps: int) -> None:
        if not (self.use_mccl and self.use_momentum):
            return
        m = momentum_at(step, total_steps, self.momentum_start)
        self.momentum_now = m
        ema_update(self.target_encoder, encoder, m)
        ema_update(self.target_projector, self.projector, m)


@dataclass
class _DeferredPTD:
    """What :meth:`CARLObjective.deferred_loss` needs of its batch: nothing of the online forward's graph."""

    ctx: StepContext
    candidates: torch.Tensor  # (B, T) real, non-special tokens
    target: torch.Tensor | None
    va: torch.Tensor | None
    delta: torch.Tensor | None = None  # the perturbation, when loss() already computed it
    selected: torch.Tensor | None = None
    caught: dict[str, torch.Tensor] = field(default_factory=dict)  # else the saliency gradient, caught in backward


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """θ_t ← m·θ_t + (1 − m)·θ_o for every parameter; buffers are copied."""
    t_params = [p for p in target.parameters()]
    o_params = [p.detach().to(t.dtype) for p, t in zip(online.parameters(), t_params)]
    if len(t_params) != len(list(online.parameters())):
        raise ConfigError("carl: target and online networks differ in structure")
    if t_params:
        torch._foreach_lerp_(t_params, o_params, 1.0 - m)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
