"""CARL pre-training mode (emoembed.training.pretrain), codec-made VA labels, and data specs naming a format whose
variables a dataset holds inside one of its own (affectivetext:be5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder_cfg,
    tiny_tokenizer_dir,
    toy_corpus,
    toy_task,
)
from emoembed.errors import ConfigError
from emoembed.codec import head_fingerprint
from emoembed.recipes import resolve_encoder_recipe
from emoembed.training.encoder import fit
from emoembed.training.pretrain import codec_va_labels, pretrain_recipe, run_pretrain, save_backbone

SMALL_HEADS = {"proj_dim": 8, "proj_hidden": 16, "pred_hidden": 16}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


def carl_recipe(tok_dir, **objective):
    return resolve_encoder_recipe({
        "name": "carl-pretrain", "modality": "text", "seed": 5, "encoder": tiny_encoder_cfg(tok_dir, max_length=16),
        "objective": {"name": "carl", "lambda_mccl": 0.8, "lambda_ptd": 0.2, **SMALL_HEADS, **objective},
        "training": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "bf16": False,
                     "max_steps_per_epoch": 3, "group_by_length": True,
                     "scheduler": {"type": "cosine_restarts", "warmup": 0.1, "cycles": 2}}})


def test_codec_made_va_labels_equal_codec_convert(format_registry):
    codec = tiny_codec(format_registry, formats=("vad", "va", "be6"))
    y = np.array([[0.9, 0.1, 0.0, 0.6, 0.0, 0.3], [0.0, 0.7, 0.8, 0.0, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]],
                 dtype=np.float32)
    got = codec_va_labels(codec, "be6", y).numpy()
    want = codec.convert(y, source="be6", target="va")[["valence", "arousal"]].to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    # a format with valence and arousal keeps its gold columns
    vad = np.array([[0.5, -0.2, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(codec_va_labels(codec, "vad", vad).numpy(), vad[:, :2])
    with pytest.raises(ConfigError, match="does not know format 'ekman7'"):
        codec_va_labels(codec, "ekman7", y)


def test_pretraining_touches_no_codec_head_nor_the_projection(tok_dir, format_registry):
    from emoembed.encoders.base import encoder_class

    codec = tiny_codec(format_registry)
    before = head_fingerprint(codec)
    recipe = pretrain_recipe(carl_recipe(tok_dir))
    torch.manual_seed(0)
    encoder = encoder_class("text").from_recipe(recipe["encoder"], codec.dim)
    proj0 = {k: v.clone() for k, v in encoder.projection.state_dict().items()}
    bb0 = {k: v.clone() for k, v in encoder.backbone.state_dict().items()}
    recipe["training"]["weight_decay"] = 0.0  # decoupled decay would shrink the projection without any gradient
    result = fit(recipe, codec, [toy_task(format_registry, n_train=48, n_eval=16)], progress=False,
                 log=lambda *_: None, encoder=encoder)
    assert head_fingerprint(codec) == before
    for k, v in result.encoder.projection.state_dict().items():
        assert torch.equal(v, proj0[k]), f"projection {k} moved during pure-CARL pre-training"
    assert any(not torch.equal(v, bb0[k]) for k, v in result.encoder.backbone.state_dict().items())  # the backbone learned
    assert all(h["loss"] == pytest.approx(0.8 * h["mccl"] + 0.2 * h["ptd"], rel=1e-4) for h in result.history)
    assert result.best_epoch == -1  # no dev-score model selection while pre-training


def test_pretrain_recipe_requires_carl(tok_dir):
    r = carl_recipe(tok_dir)
    with pytest.raises(ConfigError, match="objective must be carl"):
        pretrain_recipe({**r, "objective": None})
    with pytest.raises(ConfigError, match="at least one of"):
        pretrain_recipe({**r, "objective": {**r["objective"], "mccl": False, "ptd": False}})
    assert pretrain_recipe(r)["training"]["pretrain_epochs"] == 2


def toy_text_registry(make_registry):
    texts, y = toy_corpus(120, seed=4)
    split = ["train"] * 80 + ["dev"] * 20 + ["test"] * 20
    be6 = np.clip(np.c_[np.maximum(-y[:, 0], 0), np.zeros(120), np.maximum(-y[:, 1], 0) * 0.5,
                        np.maximum(y[:, 0], 0), np.maximum(-y[:, 0], 0) * 0.7, np.maximum(y[:, 1], 0)], 0, 1)
    rows = ["id,text,split,V,A,D,anger,disgust,fear,joy,sadness,surprise"]
    for i, t in enumerate(texts):
        vad = (y[i] + 1) * 2 + 1  # [-1, 1] → [1, 5]
        rows.append(f"{i},{t},{split[i]},{vad[0]:.3f},{vad[1]:.3f},{vad[2]:.3f}," + ",".join(f"{v * 100:.1f}" for v in be6[i]))
    be6_card = {v: {"column": v, "scale": [0, 100]} for v in ("anger", "disgust", "fear", "joy", "sadness", "surprise")}
    card = {"name": "toytext", "title": "toy", "type": "dataset", "modality": "text", "language": "en", "dir": "toy",
            "files": {"corpus": {"path": "toy.csv"}}, "reader": {"type": "delimited", "file": "corpus", "sep": ","},
            "item": {"column": "id"}, "content": {"column": "text"},
            "formats": {"vad": {"valence": {"column": "V", "scale": [1, 5]}, "arousal": {"column": "A", "scale": [1, 5]},
                                "dominance": {"column": "D", "scale": [1, 5]}}, "be6": be6_card},
            "splits": {"type": "column", "column": "split", "values": {"train": "train", "dev": "dev", "test": "test"}},
            "licence": "test", "citation": "test", "obtain": "test"}
    return make_registry({"toytext.yaml": card}, {"toy/toy.csv": "\n".join(rows) + "\n"})


def test_run_pretrain_saves_a_backbone_that_fit_encoder_starts_from(tok_dir, format_registry, make_registry, tmp_path):
    from emoembed.encoders.base import encoder_class

    reg = toy_text_registry(make_registry)
    codec = tiny_codec(format_registry, formats=("vad", "va", "be6", "be5"))
    codec.save_pretrained(tmp_path / "codec")
    recipe = {**carl_recipe(tok_dir), "data": ["toytext:vad", "toytext:be6"],
              "training": {**carl_recipe(tok_dir)["training"], "max_train_items": {"toytext": 40}}}
    metrics = run_pretrain(recipe, tmp_path / "codec", reg, tmp_path / "pre", progress=False, log=lambda *_: None)
    assert metrics["train_items"] == {"toytext": 40}
    assert not (tmp_path / "pre" / "training_state.pt").exists()
    bb = tmp_path / "pre" / "backbone"
    assert (bb / "model.safetensors").is_file() and (bb / "config.json").is_file()
    # a fit-encoder recipe names the folder as its backbone: the encoder starts from exactly those weights
    enc = encoder_class("text").from_recipe({"backbone": str(bb), "max_length": 16}, 16)
    from safetensors.torch import load_file

    saved = load_file(str(bb / "model.safetensors"))
    state = enc.backbone.state_dict()
    assert saved and all(torch.equal(state[k], v) for k, v in saved.items() if k in state)


def test_data_spec_takes_a_format_whose_variables_the_dataset_has(make_registry, format_registry):
    from emoembed.tasks import task_from_dataset

    reg = toy_text_registry(make_registry)
    ds = reg.dataset("toytext")
    be5 = task_from_dataset(ds, "be5")
    be6 = task_from_dataset(ds, "be6")
    assert be5.fmt.name == "be5" and set(be5.fmt.variables) == {"anger", "disgust", "fear", "joy", "sadness"}
    cols = [list(be6.fmt.variables).index(v) for v in be5.fmt.variables]
    for split in ("train", "dev", "test"):
        np.testing.assert_array_equal(be5.labels[split], be6.labels[split][:, cols])
        assert be5.items[split] == be6.items[split]
    va = task_from_dataset(ds, "va")
    np.testing.assert_array_equal(va.labels["test"], task_from_dataset(ds, "vad").labels["test"][:, :2])
    with pytest.raises(ConfigError, match=r"has no format 'ekman7' \(nor one holding all its variables\); it has \['vad', 'be6'\]"):
        task_from_dataset(ds, "ekman7")


def test_mid_epoch_checkpoint_resumes_bit_identically(tok_dir, format_registry, tmp_path, monkeypatch):
    """training.checkpoint_every: interrupted right after a mid-epoch checkpoint, the resumed run (CARL's EMA target,
    the per-step schedule, length-grouped batches and dropout RNG included) ends with the same weights and losses."""
    import emoembed.training.scaffold as scaffold

    r = carl_recipe(tok_dir)
    r = {**r, "training": {**r["training"], "max_steps_per_epoch": None, "checkpoint_every": 2, "epochs": 2}}
    task = toy_task(format_registry, n_train=64, n_eval=16)
    codec = tiny_codec(format_registry)
    ref = fit(r, codec, [task], state_dir=tmp_path / "ref", progress=False, log=lambda *_: None)

    real_save = scaffold.atomic_torch_save
    calls = {"n": 0}

    def save_then_die(obj, path):
        real_save(obj, path)
        if obj.get("in_epoch") and obj["in_epoch"]["epoch"] == 1:  # mid-way through the second epoch
            calls["n"] += 1
            raise KeyboardInterrupt

    monkeypatch.setattr(scaffold, "atomic_torch_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(r, codec, [task], state_dir=tmp_path / "cut", progress=False, log=lambda *_: None)
    monkeypatch.setattr(scaffold, "atomic_torch_save", real_save)
    logs: list[str] = []
    resumed = fit(r, codec, [task], state_dir=tmp_path / "cut", resume=True, progress=False, log=logs.append)
    assert calls["n"] == 1 and any("in epoch 2 after batch 2" in line for line in logs)
    for k, v in ref.encoder.state_dict().items():
        assert torch.equal(v, resumed.encoder.state_dict()[k]), k
    assert [h["loss"] for h in ref.history] == [h["loss"] for h in resumed.history]
