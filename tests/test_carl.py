"""CARL as an auxiliary objective: the pure loss functions against hand computations, the EMA target, PTD's
token selection and ε-ball, the ablation switches, and a short run of the real stage-2 loop on a tiny BERT."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_encoder_cfg,
    tiny_tokenizer_dir,
    toy_corpus,
    toy_task,
)

from emoembed.encoders.base import StepContext, objective_class
from emoembed.encoders.carl import (
    CARLObjective,
    focal_loss,
    mccl_loss,
    momentum_at,
    pgd_step,
    project_ball,
    select_salient,
)
from emoembed.errors import ConfigError
from emoembed.recipes import resolve_encoder_recipe
from emoembed.training.encoder import fit, synthetic_labels

SMALL_HEADS = {"proj_dim": 8, "proj_hidden": 16, "pred_hidden": 16}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def codec(format_registry):
    c = tiny_codec(format_registry)
    c.requires_grad_(False)
    return c.eval()


def make_ctx(encoder, codec, texts, labels, fmt="vad", step=0, total=10, pretraining=False):
    batch = encoder.collate(texts, train=True)
    z = encoder(batch)
    y = torch.as_tensor(labels, dtype=torch.float32)
    src = codec.formats[fmt]
    return StepContext(encoder, encoder, batch, z, fmt, y, codec, lambda f: synthetic_labels(codec, src, y, f),
                       step, total, {"pretraining": pretraining})


# ---------------------------------------------------------------------------------------------- pure functions
def test_mccl_loss_equals_hand_computation_on_3x3():
    online = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    target = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    va = torch.tensor([[0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
    tau = 0.5

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    def row_softmax(m):
        out = []
        for row in m:
            e = [math.exp(v / tau) for v in row]
            out.append([v / sum(e) for v in e])
        return out

    o, t, v = online.tolist(), target.tolist(), va.tolist()
    p_sim = row_softmax([[cos(o[i], t[j]) for j in range(3)] for i in range(3)])
    p_va = row_softmax([[cos(v[i], v[j]) for j in range(3)] for i in range(3)])
    expected = -sum(p_sim[i][j] * math.log(p_va[i][j]) + p_va[i][j] * math.log(p_sim[i][j])
                    for i in range(3) for j in range(3)) / 3
    assert float(mccl_loss(online, target, va, tau)) == pytest.approx(expected, rel=1e-5)


def test_mccl_loss_is_lowest_when_similarities_follow_the_labels():
    va = torch.tensor([[0.8, 0.5], [-0.7, 0.6], [0.6, -0.6], [-0.5, -0.5]])
    aligned = mccl_loss(va, va, va, 0.05)
    shuffled = mccl_loss(va, va[[1, 0, 3, 2]], va, 0.05)
    assert float(aligned) < float(shuffled)


def test_momentum_schedule_matches_the_formula():
    m0, total = 0.9996, 1000
    assert momentum_at(0, total, m0) == pytest.approx(m0)
    assert momentum_at(total, total, m0) == pytest.approx(1.0)
    assert momentum_at(total // 2, total, m0) == pytest.approx(1 - (1 - m0) / 2)
    for k in (1, 123, 777):
        assert momentum_at(k, total, m0) == pytest.approx(1 - (1 - m0) * (math.cos(math.pi * k / total) + 1) / 2)
    values = [momentum_at(k, total, m0) for k in range(0, total + 1, 50)]
    assert values == sorted(values)  # rises monotonically from m0 to 1


def test_select_salient_takes_the_top_fraction_and_never_padding_or_special():
    scores = torch.tensor([[9.0, 1.0, 5.0, 3.0, 2.0, 100.0, 100.0],
                           [9.0, 0.5, 0.1, 100.0, 100.0, 100.0, 100.0]])
    candidates = torch.tensor([[False, True, True, True, True, False, False],   # [CLS] w w w w [SEP] [PAD]
                               [False, True, True, False, False, False, False]])
    sel = select_salient(scores, candidates, 0.5)
    assert sel.tolist() == [[False, False, True, True, False, False, False],
                            [False, True, False, False, False, False, False]]
    sel = select_salient(scores, candidates, 0.1)  # at least one token per sentence
    assert sel.sum(-1).tolist() == [1, 1]
    assert not (sel & ~candidates).any()
    assert select_salient(scores, torch.zeros_like(candidates), 0.1).sum() == 0


def test_pgd_step_and_projection_stay_in_the_ball():
    torch.manual_seed(0)
    grad = torch.randn(2, 5, 8)
    selected = torch.tensor([[True, False, True, False, False], [False, False, False, False, True]])
    delta = torch.zeros(2, 5, 8)
    radius = torch.rand(2, 5, 1) * 0.1 + 0.01
    for _ in range(4):
        delta = pgd_step(delta, grad, selected, alpha=5.0, radius=radius)
        assert torch.all(delta.norm(dim=-1, keepdim=True) <= radius * (1 + 1e-5))
    assert torch.all(delta[~selected] == 0)
    # a sign step larger than the ball ends on its surface, in the gradient's sign direction
    assert torch.allclose(delta.norm(dim=-1, keepdim=True)[selected], radius[selected], rtol=1e-5)
    assert torch.equal(torch.sign(delta[selected]), torch.sign(grad[selected]))
    small = project_ball(torch.full((1, 4), 0.001), 1.0)
    assert torch.equal(small, torch.full((1, 4), 0.001))  # inside the ball: unchanged


def test_focal_loss_matches_its_formula():
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    gamma = 2.0
    expected = []
    for x, y in zip(logits.tolist(), targets.tolist()):
        p = 1 / (1 + math.exp(-x))
        pt = p if y == 1 else 1 - p
        expected.append(-((1 - pt) ** gamma) * math.log(pt))
    assert float(focal_loss(logits, targets, gamma)) == pytest.approx(np.mean(expected), rel=1e-5)
    mask = torch.tensor([True, True, False, True])
    assert float(focal_loss(logits, targets, gamma, mask)) == pytest.approx(np.mean([expected[i] for i in (0, 1, 3)]), rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert float(focal_loss(logits, targets, 0.0)) == pytest.approx(float(bce), rel=1e-6)  # γ = 0: plain BCE


# ---------------------------------------------------------------------------------------------- the objective
def test_registered_under_its_name_and_validates_its_recipe():
    assert objective_class("carl") is CARLObjective
    with pytest.raises(ConfigError, match="both off"):
        CARLObjective(mccl=False, ptd=False)
    with pytest.raises(ConfigError, match="epsilon_mode"):
        CARLObjective(epsilon_mode="huge")
    with pytest.raises(ConfigError, match="top_k"):
        CARLObjective(top_k=0)


def test_target_moves_only_by_ema(tok_dir, codec):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(ptd=False, momentum_start=0.9, **SMALL_HEADS)
    obj.setup(enc)
    target_ids = {id(p) for p in [*obj.target_encoder.parameters(), *obj.target_projector.parameters()]}
    trainable = obj.trainable_parameters()
    assert trainable and not target_ids & {id(p) for p in trainable}
    assert not any(p.requires_grad for p in obj.target_encoder.parameters())
    opt = torch.optim.SGD([*enc.parameters(), *trainable], lr=0.5)
    before = [p.detach().clone() for p in obj.target_encoder.parameters()]
    texts, y = toy_corpus(8)
    loss, parts = obj.loss(make_ctx(enc, codec, texts, y))
    loss.backward()
    assert parts["mccl"] > 0
    assert all(p.grad is None for p in obj.target_encoder.parameters())
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, obj.target_encoder.parameters()))  # the step left it alone
    obj.after_step(enc, step=3, total_steps=10)
    m = momentum_at(3, 10, 0.9)
    moved = False
    for old, new, online in zip(before, obj.target_encoder.parameters(), enc.parameters()):
        assert torch.allclose(new, m * old + (1 - m) * online.detach(), atol=1e-6)
        moved |= not torch.equal(old, new)
    assert moved


def test_ptd_picks_the_largest_gradient_tokens_and_never_padding(tok_dir, codec):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(mccl=False, top_k=0.25, **SMALL_HEADS)
    obj.setup(enc)
    texts = ["i am so happy today", "sad", "the dog was very very angry and the cat was not happy at all"]
    ctx = make_ctx(enc, codec, texts, toy_corpus(3)[1])
    out = enc.last_forward(ctx.batch)
    sal = obj._saliency_loss(ctx, out, None)
    (grad,) = torch.autograd.grad(sal, out["embeddings"], retain_graph=True)
    delta, selected = obj.perturb(ctx, out, sal, None, None)
    norms = grad.norm(dim=-1)
    candidates = out["mask"] & ~out["special_mask"]
    assert not (selected & ~candidates).any()
    assert not selected[~out["mask"]].any() and not selected[:, 0].any()  # no padding, no [CLS]
    for row in range(len(texts)):
        n = int(candidates[row].sum())
        k = max(1, math.ceil(0.25 * n))
        assert int(selected[row].sum()) == k
        top = norms[row].masked_fill(~candidates[row], -1).topk(k).indices
        assert set(top.tolist()) == set(torch.nonzero(selected[row]).flatten().tolist())
    assert torch.all(delta[~selected] == 0)


@pytest.mark.parametrize("mode,eps", [("relative", 0.3), ("absolute", 0.05)])
def test_perturbation_stays_inside_the_epsilon_ball(tok_dir, codec, mode, eps):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(epsilon=eps, epsilon_mode=mode, pgd_steps=3, alpha=1.0, **SMALL_HEADS)
    obj.setup(enc)
    texts, y = toy_corpus(6, seed=2)
    ctx = make_ctx(enc, codec, texts, y)
    out = enc.last_forward(ctx.batch)
    va = obj.va_labels(ctx)
    target = obj._target_projection(ctx)
    mccl = obj._mccl(out["pooled"], target, va)
    delta, selected = obj.perturb(ctx, out, obj._saliency_loss(ctx, out, mccl), target, va)
    radius = eps * out["embeddings"].detach().norm(dim=-1) if mode == "relative" else torch.full(selected.shape, eps)
    norms = delta.norm(dim=-1)
    assert torch.all(norms <= radius * (1 + 1e-5))
    assert torch.all(norms[selected] > 0) and torch.all(norms[~selected] == 0)


def test_va_labels_gold_for_vad_and_codec_made_otherwise(tok_dir, codec):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(ptd=False, **SMALL_HEADS)
    obj.setup(enc)
    texts, y = toy_corpus(4)
    ctx = make_ctx(enc, codec, texts, y)
    assert torch.equal(obj.va_labels(ctx), ctx.labels[:, :2])
    be6 = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    ctx6 = make_ctx(enc, codec, texts, be6, fmt="be6")
    expected = synthetic_labels(codec, codec.formats["be6"], ctx6.labels, "va")
    assert torch.allclose(obj.va_labels(ctx6), expected)
    with pytest.raises(ConfigError, match="valence and arousal"):
        CARLObjective(ptd=False, va_source="gold").va_labels(ctx6)


def test_pure_carl_pretraining_saliency_ignores_the_heads(tok_dir, codec):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(**SMALL_HEADS)
    obj.setup(enc)
    texts, y = toy_corpus(4)
    ctx = make_ctx(enc, codec, texts, y, pretraining=True)
    out = enc.last_forward(ctx.batch)
    mccl = torch.tensor(2.0)
    assert float(obj._saliency_loss(ctx, out, mccl).detach()) == pytest.approx(0.8 * 2.0)
    ctx.extras["pretraining"] = False
    assert float(obj._saliency_loss(ctx, out, mccl).detach()) > 0.8 * 2.0


@pytest.mark.parametrize("switches,present,absent", [
    ({"ptd": False}, {"mccl", "momentum"}, {"ptd"}),
    ({"mccl": False}, {"ptd", "ptd_acc"}, {"mccl", "momentum"}),
    ({"momentum": False}, {"mccl", "ptd"}, {"momentum"}),
])
def test_ablation_switches(tok_dir, codec, switches, present, absent):
    enc = tiny_encoder(tok_dir)
    obj = CARLObjective(**switches, **SMALL_HEADS)
    obj.setup(enc)
    assert (obj.target_encoder is not None) == (switches.get("momentum", True) and switches.get("mccl", True))
    assert (obj.detector is not None) == switches.get("ptd", True)
    texts, y = toy_corpus(6)
    loss, parts = obj.loss(make_ctx(enc, codec, texts, y))
    loss.backward()
    assert present <= set(parts) and not absent & set(parts)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.backbone.parameters())


def test_a_short_carl_run_of_the_training_loop_lowers_its_loss(tok_dir, format_registry):
    recipe = resolve_encoder_recipe({
        "name": "carl-toy", "modality": "text", "seed": 3, "encoder": tiny_encoder_cfg(tok_dir, max_length=16),
        "objective": {"name": "carl", "momentum_start": 0.99, **SMALL_HEADS},
        "training": {"epochs": 4, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "patience": 100,
                     "bf16": False, "eval_batch_size": 64}})
    result = fit(recipe, tiny_codec(format_registry), [toy_task(format_registry, n_train=64, n_eval=16)],
                 progress=False, log=lambda *_: None)
    first, last = result.history[0], result.history[-1]
    assert {"mccl", "ptd", "ptd_acc", "momentum", "gold"} <= set(first)
    assert last["mccl"] < first["mccl"]
    assert last["loss"] < first["loss"]
    assert first["momentum"] < last["momentum"] <= 1.0


def test_pretrain_epochs_run_pure_carl_then_head_training(tok_dir, format_registry):
    recipe = resolve_encoder_recipe({
        "name": "carl-pre", "modality": "text", "seed": 3, "encoder": tiny_encoder_cfg(tok_dir, max_length=16),
        "objective": {"name": "carl", "ptd": False, **SMALL_HEADS},
        "training": {"epochs": 2, "pretrain_epochs": 1, "batch_size": 16, "lr": 3e-3, "patience": 100,
                     "bf16": False, "max_steps_per_epoch": 2}})
    result = fit(recipe, tiny_codec(format_registry), [toy_task(format_registry, n_train=32, n_eval=16)],
                 progress=False, log=lambda *_: None)
    assert result.best_epoch == 2  # the pure-CARL epoch does not select a model
    # in the pre-training epoch the total is the CARL term alone (head weight 0)
    assert result.history[0]["loss"] == pytest.approx(0.8 * result.history[0]["mccl"], rel=1e-4)


def test_detection_auc():
    from emoembed.encoders.carl import detection_auc

    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, 9.0]])
    positive = torch.tensor([[True, False, False, False, False]])
    mask = torch.tensor([[True, True, True, True, False]])  # the 9.0 is padding
    assert detection_auc(logits, positive, mask) == 1.0
    assert detection_auc(-logits, positive, mask) == 0.0
    assert detection_auc(logits, mask, mask) == 0.5  # no clean token: undefined → chance


# ---------------------------------------------------------------------------------------------- memory
@pytest.mark.parametrize("pretraining", [True, False])
def test_deferred_ptd_gives_the_gradients_of_the_one_backward_step(tok_dir, codec, pretraining):
    """``split_backward``: MCCL's backward first, then PTD's forward and backward — the same loss parts and
    parameter gradients as one backward of the whole CARL loss (same seed, so the same dropout masks). In
    pre-training the saliency is the gradient that backward passes through the embeddings (no extra backward)."""
    texts, y = toy_corpus(6, seed=4)
    grads, parts_of = {}, {}
    for split in (False, True):
        enc = tiny_encoder(tok_dir, seed=1)
        obj = CARLObjective(**SMALL_HEADS)
        torch.manual_seed(2)
        obj.setup(enc)
        torch.manual_seed(3)
        ctx = make_ctx(enc, codec, texts, y, pretraining=pretraining)
        ctx.extras["split_backward"] = split
        assert obj.saliency_from_backward(ctx) == (split and pretraining)
        loss, parts = obj.loss(ctx)
        loss.backward()
        late = obj.deferred_loss(ctx)
        assert (late is not None) == split
        if split:
            assert "ptd" not in parts
            late_loss, late_parts = late
            late_loss.backward()
            parts = {**parts, **late_parts}
            assert obj.deferred_loss(ctx) is None  # handed out once
        parts_of[split] = parts
        grads[split] = {n: p.grad.clone() for n, p in [*enc.named_parameters(), *obj.named_parameters()]
                        if p.grad is not None}
    assert parts_of[True] == pytest.approx(parts_of[False], rel=1e-5)
    assert grads[True].keys() == grads[False].keys()
    assert any("detector" in n for n in grads[True]) and any("backbone" in n for n in grads[True])
    for name, g in grads[False].items():
        assert torch.allclose(grads[True][name], g, rtol=1e-4, atol=1e-7), name


def test_a_carl_step_never_holds_two_forward_graphs_nor_keeps_one(tok_dir, format_registry, monkeypatch):
    """Counts the activations the autograd graphs hold (saved tensors): when PTD's forward on the perturbed
    embeddings starts, the online forward's graph has been backpropagated and holds no float activation any more
    (holding both graphs doubled the peak memory of ``emoembed pretrain``), and after every optimizer step no graph
    holds anything (nothing — loss history, momentum target, saliency, logged parts — keeps a graph across steps)."""
    alive: dict[int, tuple[int, bool]] = {}

    class Saved:
        def __init__(self, t):
            self.t = t
            alive[id(self)] = (t.numel() * t.element_size(), t.is_floating_point())

        def __del__(self):
            alive.pop(id(self), None)

    def float_bytes() -> int:
        return sum(n for n, is_float in alive.values() if is_float)

    at_ptd, after_steps, online = [], [], []
    detect, after_step = CARLObjective.detect, CARLObjective.after_step
    forward = type(tiny_encoder(tok_dir)).forward

    def spy_forward(self, batch):
        z = forward(self, batch)
        if self.training:
            online.append(float_bytes())
        return z

    def spy_detect(self, *args, **kwargs):
        at_ptd.append(float_bytes())
        return detect(self, *args, **kwargs)

    def spy_after_step(self, *args, **kwargs):
        after_step(self, *args, **kwargs)
        after_steps.append(len(alive))

    monkeypatch.setattr(type(tiny_encoder(tok_dir)), "forward", spy_forward)
    monkeypatch.setattr(CARLObjective, "detect", spy_detect)
    monkeypatch.setattr(CARLObjective, "after_step", spy_after_step)
    recipe = resolve_encoder_recipe({
        "name": "carl-mem", "modality": "text", "seed": 3, "encoder": tiny_encoder_cfg(tok_dir, max_length=16),
        "objective": {"name": "carl", **SMALL_HEADS},
        "training": {"epochs": 2, "pretrain_epochs": 1, "batch_size": 8, "lr": 3e-3, "bf16": False,
                     "max_steps_per_epoch": 3, "group_by_length": True}})  # a pure-CARL epoch, then one with heads
    with torch.autograd.graph.saved_tensors_hooks(Saved, lambda s: s.t):
        fit(recipe, tiny_codec(format_registry), [toy_task(format_registry, n_train=40, n_eval=16)],
            progress=False, log=lambda *_: None)
    assert len(at_ptd) == len(after_steps) == 6
    assert len(online) == 6 and min(online) > 0  # the spy sees the online forward's activations
    assert at_ptd == [0] * 6, f"the online forward's graph still held {at_ptd} bytes when PTD's forward started"
    assert after_steps == [0] * 6, f"graphs kept across optimizer steps: {after_steps} saved tensors"
