"""Length-grouped batches and per-step learning-rate schedules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoembed.batching import length_grouped_batches, padded_tokens, shuffled_batches
from emoembed.errors import ConfigError
from emoembed.schedules import build_step_scheduler, lr_multiplier


@pytest.mark.parametrize("n,bs,drop_last", [(1000, 32, False), (97, 8, False), (5, 16, False)])
def test_length_grouped_batches_see_every_item_exactly_once(n, bs, drop_last):
    rng = np.random.default_rng(0)
    index = np.arange(n) * 3 + 7  # entries of a training mask, not 0..n-1
    lengths = rng.integers(3, 80, n)
    for epoch in range(3):
        batches = length_grouped_batches(index, lengths, bs, np.random.default_rng([13, epoch]), mega_factor=4)
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == index.tolist()  # each exactly once
        assert all(1 <= len(b) <= bs for b in batches)


def test_length_grouping_pads_less_than_random_batches_and_is_deterministic():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 100, 2000)
    idx = np.arange(2000)
    grouped = length_grouped_batches(idx, lengths, 32, np.random.default_rng(5))
    plain = shuffled_batches(idx, 32, np.random.default_rng(5))
    assert padded_tokens(grouped, lengths) < 0.75 * padded_tokens(plain, lengths)
    again = length_grouped_batches(idx, lengths, 32, np.random.default_rng(5))
    assert all((a == b).all() for a, b in zip(grouped, again))
    with pytest.raises(ValueError, match="2000 items but 3 lengths"):
        length_grouped_batches(idx, lengths[:3], 32, np.random.default_rng(0))


def test_epoch_batches_with_lengths_cover_every_task_item_once():
    from emoembed.training.encoder import epoch_batches

    masks = [np.ones(50, dtype=bool), np.r_[np.ones(30, dtype=bool), np.zeros(10, dtype=bool)]]
    lengths = [np.arange(50, dtype=float), np.arange(40, dtype=float)]
    batches = epoch_batches([None, None], masks, 8, 13, 0, False, None, lengths)
    for t, n in ((0, 50), (1, 30)):
        got = np.concatenate([b for tt, b in batches if tt == t])
        assert sorted(got.tolist()) == list(range(n))
    # without lengths: the plain order, unchanged from before length grouping existed
    plain = epoch_batches([None, None], masks, 8, 13, 0, False, None)
    rng = np.random.default_rng([13, 0])
    first = rng.permutation(np.arange(50))
    assert any((b == first[:8]).all() for t, b in plain if t == 0)


def test_warmup_then_linear_cosine_and_restarts():
    assert lr_multiplier("linear", 0, 100, 10) == pytest.approx(0.1)
    assert lr_multiplier("linear", 9, 100, 10) == pytest.approx(1.0)
    assert lr_multiplier("linear", 55, 100, 10) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 55, 100, 10) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 100, 100, 10) == pytest.approx(0.0)
    # two cycles after the warm-up: back to the peak half-way
    assert lr_multiplier("cosine_restarts", 10, 110, 10, cycles=2) == pytest.approx(1.0)
    assert lr_multiplier("cosine_restarts", 60, 110, 10, cycles=2) == pytest.approx(1.0)
    assert lr_multiplier("cosine_restarts", 35, 110, 10, cycles=2) == pytest.approx(0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_step_scheduler(opt, {"type": "linear", "warmup": 0.25}, 8)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 2.0, 2.0, 2.0 * 5 / 6, 2.0 * 4 / 6, 2.0 * 3 / 6, 2.0 * 2 / 6, 2.0 * 1 / 6])
    with pytest.raises(ConfigError, match="unknown key"):
        build_step_scheduler(opt, {"type": "linear", "warmpu": 0.1}, 8)
