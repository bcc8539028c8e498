"""Fine-tuning options of the text recipe: the CCC loss term (loss_weights.ccc) and layer-wise learning-rate decay
(training.layer_decay). Numbers checked against direct formulas; the optimizer gets the decayed rates."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_text import one_thread, tiny_bert_config  # noqa: F401  (autouse fixture)

from emoembed.errors import ConfigError
from emoembed.format_kinds import ccc_loss
from emoembed.param_groups import layer_index, layerwise_lr_groups
from emoembed.recipes import EncoderTraining


def ccc_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Lin (1989): 2·cov / (var x + var y + (mean x − mean y)²), population moments."""
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_ccc_loss_is_one_minus_the_mean_ccc_of_each_variable():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3))
    pred = 0.5 * y + rng.normal(scale=0.3, size=(40, 3)) + np.array([0.0, 0.2, -0.1])
    expected = 1 - np.mean([ccc_numpy(pred[:, j], y[:, j]) for j in range(3)])
    got = float(ccc_loss(torch.tensor(pred, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)))
    assert got == pytest.approx(expected, abs=1e-5)


def test_ccc_loss_is_zero_only_for_identical_columns_and_penalises_a_shift():
    y = torch.linspace(-1, 1, 16).reshape(8, 2)
    y = y - y.mean(0)  # centred: -y is then perfectly discordant (CCC = -1)
    assert float(ccc_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(ccc_loss(y + 0.5, y)) > 0.1  # perfectly correlated but shifted: not concordant
    assert float(ccc_loss(-y, y)) == pytest.approx(2.0, abs=1e-5)
    assert float(ccc_loss(y[:1], y[:1])) == 0.0  # a batch of one has nothing to correlate


def test_ccc_loss_weighs_a_narrow_variable_as_much_as_a_wide_one():
    """MSE barely sees a variable with a tenth of the spread; CCC scores both alike."""
    rng = np.random.default_rng(1)
    wide = rng.normal(size=64)
    narrow = 0.1 * rng.normal(size=64)
    y = torch.tensor(np.stack([wide, narrow], 1), dtype=torch.float32)
    noise = torch.tensor(rng.normal(size=(64, 2)) * np.array([0.5, 0.05]), dtype=torch.float32)
    both = float(ccc_loss(y + noise, y))
    each = [float(ccc_loss((y + noise)[:, [j]], y[:, [j]])) for j in range(2)]
    assert each[0] == pytest.approx(each[1], rel=0.35)
    assert both == pytest.approx(np.mean(each), abs=1e-6)


def test_layer_decay_gives_each_lower_layer_a_smaller_rate():
    from transformers import AutoModel, BertConfig

    module = torch.nn.Module()
    cfg = tiny_bert_config(layers=3)
    cfg.pop("model_type", None)
    module.backbone = AutoModel.from_config(BertConfig(**cfg))
    module.projection = torch.nn.Linear(32, 4)
    groups = layerwise_lr_groups(module.named_parameters(), 1e-4, 0.5, weight_decay=0.01)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(module.named_parameters())
    assert rate[id(named["projection.weight"])] == pytest.approx(1e-4)
    assert rate[id(named["backbone.encoder.layer.2.output.dense.weight"])] == pytest.approx(1e-4)
    assert rate[id(named["backbone.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-5)
    assert rate[id(named["backbone.encoder.layer.0.output.dense.weight"])] == pytest.approx(2.5e-5)
    assert rate[id(named["backbone.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-5)
    assert sum(len(g["params"]) for g in groups) == len(named)  # every parameter exactly once
    assert all(g["weight_decay"] == 0.01 for g in groups)


def test_layer_index_reads_plain_and_peft_names():
    assert layer_index("backbone.encoder.layer.4.attention.self.query.weight") == 4
    assert layer_index("backbone.base_model.model.encoder.layer.5.attention.self.value.lora_A.default.weight") == 5
    assert layer_index("backbone.embeddings.LayerNorm.weight") == -1
    assert layer_index("projection.weight") is None


def test_layer_decay_is_refused_without_a_layered_backbone_or_outside_its_range():
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ConfigError, match="numbered layers"):
        layerwise_lr_groups(mlp.named_parameters(), 1e-3, 0.9)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        layerwise_lr_groups(mlp.named_parameters(), 1e-3, 1.5)
    with pytest.raises(ValueError, match="layer_decay"):
        EncoderTraining(layer_decay=0.0)
