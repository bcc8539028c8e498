"""The pairwise FFN baseline of stage 1 (EmoMap; Buechel & Hahn's emotion-embeddings): one feed-forward network
per direction (format a → format b) of each paired dataset, trained on its own, with no shared space. ``emoembed
map --baseline`` and the suite compare the codec against it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from emoembed.codec import LabelEncoder
from emoembed.data.dataset import PairedDataset
from emoembed.format_kinds import activate, format_loss
from emoembed.metrics import evaluate_format
from emoembed.training.scaffold import BestKeeper, seed_everything, snapshot


class PairwiseMapper(nn.Module):
    """The EmoMap / emotion-embeddings baseline: one FFN per direction, k_in → 128 → 128 → k_out."""

    def __init__(self, k_in: int, k_out: int, hidden=(128, 128), dropout: float = 0.2):
        super().__init__()
        self.net = LabelEncoder(k_in, k_out, hidden, dropout)  # the same MLP shape as a label encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_baseline_direction(p: PairedDataset, reverse: bool, cfg: Mapping[str, Any], seed: int) -> tuple[PairwiseMapper, float]:
    src, tgt = (p.format_b, p.format_a) if reverse else (p.format_a, p.format_b)
    train, dev = p.subset("train"), p.subset("dev")
    xs, ys = (train.labels_b, train.labels_a) if reverse else (train.labels_a, train.labels_b)
    xd, yd = (dev.labels_b, dev.labels_a) if reverse else (dev.labels_a, dev.labels_b)
    rng = seed_everything(seed)
    model = PairwiseMapper(src.size, tgt.size, cfg["hidden"], cfg["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    xs_t, ys_t, xd_t = torch.as_tensor(xs), torch.as_tensor(ys), torch.as_tensor(xd)
    keeper = BestKeeper(int(cfg["patience"]))
    order, pos = rng.permutation(len(xs)), 0
    for epoch in range(int(cfg["epochs"])):
        model.train()
        for _ in range(int(cfg["steps_per_epoch"])):
            if pos + cfg["batch_size"] > len(order):
                order, pos = rng.permutation(len(xs)), 0
            idx = order[pos:pos + cfg["batch_size"]]
            pos += cfg["batch_size"]
            loss = format_loss(model(xs_t[idx]), ys_t[idx], tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            score = evaluate_format(activate(tgt, model(xd_t)).numpy(), yd, tgt)["primary"]
        keeper.update(score, epoch + 1, lambda: snapshot(model))
        if keeper.should_stop:
            break
    if keeper.best_state is not None:
        model.load_state_dict(keeper.best_state)
    model.eval()
    return model, keeper.best_score


def evaluate_baseline(pairs: list[PairedDataset], cfg: Mapping[str, Any], seed: int, split: str = "test", progress: bool = True) -> list[dict]:
    rows = []
    jobs = [(p, rev) for p in pairs for rev in (False, True)]
    for p, rev in tqdm(jobs, desc="baseline directions", disable=not progress, leave=False):
        model, _ = train_baseline_direction(p, rev, cfg, seed)
        s = p.subset(split)
        src, tgt = (p.format_b, p.format_a) if rev else (p.format_a, p.format_b)
        x, y = (s.labels_b, s.labels_a) if rev else (s.labels_a, s.labels_b)
        with torch.no_grad():
            pred = activate(tgt, model(torch.as_tensor(x))).numpy()
        rows.append({"pair": p.name, "source": src.name, "target": tgt.name, **evaluate_format(pred, y, tgt)})
    return rows
