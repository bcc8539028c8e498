"""LoRA adapters on the text encoder: only the adapter and the projection are saved, the frozen backbone comes back
from its spec, predictions survive the round trip exactly, training moves only the adapter, a different backbone
is refused, bad recipe keys are named."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_bert_config,
    tiny_bert_dir,
    tiny_codec,
    tiny_tokenizer_dir,
)

from emoembed import adapters
from emoembed.encoders.text import TextEncoder
from emoembed.errors import CheckpointError, ConfigError
from emoembed.model import EmotionModel

LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}
TEXTS = ["i am so happy today", "sad", "the dog was very angry"]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    """A tiny random BERT saved as a Hugging Face folder (weights + tokenizer): stands in for the packaged MiniLM."""
    return tiny_bert_dir(tmp_path_factory.mktemp("bb"))


def lora_model(backbone_dir, format_registry, seed: int = 1) -> EmotionModel:
    torch.manual_seed(seed)
    enc = TextEncoder.from_recipe({"backbone": str(backbone_dir), "max_length": 16, "lora": LORA}, 16)
    with torch.no_grad():  # a trained adapter: B is non-zero (peft starts it at zero)
        for name, p in enc.backbone.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5)
    return EmotionModel(enc, tiny_codec(format_registry), meta={"trained_formats": ["vad"]}).eval()


def test_only_the_adapter_and_projection_are_trainable_and_saved(backbone_dir, format_registry, tmp_path):
    model = lora_model(backbone_dir, format_registry)
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n or n.startswith("projection.") for n in trainable)
    assert sum(".lora_A." in n for n in trainable) == 4  # 2 layers × (query, value)
    saved = model.encoder.state_dict()
    assert all(not k.startswith("backbone.") or ".lora_" in k for k in saved)
    n_saved = sum(v.numel() for v in saved.values())
    n_backbone = sum(p.numel() for p in model.encoder.backbone.parameters())
    assert n_saved < 0.2 * n_backbone
    model.save_pretrained(tmp_path / "m")
    full = EmotionModel(TextEncoder.from_recipe({"backbone": str(backbone_dir), "max_length": 16}, 16),
                        tiny_codec(format_registry)).save_pretrained(tmp_path / "full")
    small, big = ((d / "model.safetensors").stat().st_size for d in (tmp_path / "m", full))
    assert small < big / 3, (small, big)


def test_round_trip_predicts_the_same(backbone_dir, format_registry, tmp_path):
    model = lora_model(backbone_dir, format_registry)
    before, emb = model.predict(TEXTS, "be6"), model.encode(TEXTS)
    plain = EmotionModel(TextEncoder.from_recipe({"backbone": str(backbone_dir), "max_length": 16}, 16),
                         model.codec).eval()
    plain.encoder.projection.load_state_dict(model.encoder.projection.state_dict())
    assert not np.allclose(plain.encode(TEXTS), emb, atol=1e-4)  # the adapter changes the embeddings
    model.save_pretrained(tmp_path / "m")
    loaded = EmotionModel.from_pretrained(tmp_path / "m")
    assert loaded.encoder.lora == model.encoder.lora
    pd.testing.assert_frame_equal(loaded.predict(TEXTS, "be6"), before)
    np.testing.assert_array_equal(loaded.encode(TEXTS), emb)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_training_moves_only_the_adapter(backbone_dir, format_registry):
    model = lora_model(backbone_dir, format_registry)
    enc = model.encoder.train()
    frozen = {k: v.clone() for k, v in enc.backbone.state_dict().items() if not adapters.is_adapter_key(k)}
    lora_before = {k: v.clone() for k, v in enc.backbone.state_dict().items() if adapters.is_adapter_key(k)}
    opt = torch.optim.Adam([p for p in enc.parameters() if p.requires_grad], lr=1e-2)
    batch = enc.collate(TEXTS)
    for _ in range(3):
        loss = enc(batch).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = enc.backbone.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())
    assert any(not torch.equal(after[k], v) for k, v in lora_before.items())


def test_an_adapter_on_another_backbone_is_refused(backbone_dir, format_registry, tmp_path):
    from transformers import AutoModel

    lora_model(backbone_dir, format_registry).save_pretrained(tmp_path / "m")
    other = AutoModel.from_pretrained(str(backbone_dir))
    with torch.no_grad():
        other.embeddings.word_embeddings.weight.add_(0.01)
    other.save_pretrained(str(backbone_dir))  # the "installed backbone" changed under the adapter
    try:
        with pytest.raises(CheckpointError, match="trained on a backbone with weights"):
            EmotionModel.from_pretrained(tmp_path / "m")
    finally:
        with torch.no_grad():
            other.embeddings.word_embeddings.weight.sub_(0.01)
        other.save_pretrained(str(backbone_dir))


@pytest.mark.parametrize("bad, msg", [
    ({"rank": 0}, "lora.rank must be a positive integer"),
    ({"rank": 4, "alpha": -1}, "lora.alpha must be a positive number"),
    ({"rank": 4, "dropout": 1.0}, r"lora.dropout must be in \[0, 1\)"),
    ({"rank": 4, "targets": ["query"]}, r"unknown key\(s\) \['targets'\]"),
    ({"rank": 4, "target_modules": ["qkv"]}, r"\['qkv'\] match no linear layer"),
])
def test_bad_lora_settings_are_named(backbone_dir, bad, msg):
    with pytest.raises(ConfigError, match=msg):
        TextEncoder.from_recipe({"backbone": str(backbone_dir), "lora": bad}, 8)


def test_a_random_init_backbone_cannot_carry_an_adapter(tmp_path):
    tok = tiny_tokenizer_dir(tmp_path)
    with pytest.raises(ConfigError, match="needs a backbone spec"):
        TextEncoder.from_recipe({"backbone": None, "hf_config": tiny_bert_config(), "tokenizer": str(tok), "lora": LORA}, 8)


@pytest.mark.slow
def test_an_adapter_over_the_packaged_minilm_is_small_and_reloads(format_registry, tmp_path):
    """The real all-MiniLM-L6-v2 (90 MB): a rank-16 adapter on every attention and feed-forward layer plus the
    projection and a codec is saved in about 2 MB and loads offline to the same predictions."""
    from emoembed.encoders.text import PACKAGED_MINILM

    torch.manual_seed(0)
    lora = {"rank": 16, "alpha": 32, "target_modules": ["query", "key", "value", "dense"]}
    enc = TextEncoder.from_recipe({"lora": lora}, 16)
    with torch.no_grad():
        for name, p in enc.backbone.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.02)
    model = EmotionModel(enc, tiny_codec(format_registry)).eval()
    before = model.predict(TEXTS, "vad")
    model.save_pretrained(tmp_path / "m")
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    assert size < 4_000_000, size  # the backbone alone is ~90 MB
    loaded = EmotionModel.from_pretrained(tmp_path / "m")
    assert loaded.encoder.backbone_spec == PACKAGED_MINILM
    pd.testing.assert_frame_equal(loaded.predict(TEXTS, "vad"), before)


def fit_tiny_text(tmp_path, backbone_dir, format_registry, name: str, encoder_extra: dict, **recipe_extra) -> None:
    """`emoembed fit-encoder` on the bundled EmoBank for 3 steps with the tiny BERT backbone into tmp_path/run."""
    import yaml

    from emoembed.cli import main

    tiny_codec(format_registry).save_pretrained(tmp_path / "codec")
    recipe = {"name": name, "modality": "text",
              "encoder": {"backbone": str(backbone_dir), "max_length": 16, **encoder_extra},
              "training": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "max_steps_per_epoch": 3, "max_train_items": 64,
                           "bf16": False}, "data": ["emobank"], **recipe_extra}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["fit-encoder", "--modality", "text", "--codec", str(tmp_path / "codec"), "--recipe",
                 str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"]) == 0


def test_fit_encoder_trains_an_adapter_from_the_recipe_key(backbone_dir, format_registry, tmp_path, capsys):
    """`fit-encoder` with `encoder.lora` (bundled EmoBank, a few steps): the frozen backbone weights are unchanged,
    the run folder holds only the adapter, and predict/evaluate load it back."""
    from emoembed.cli import main

    fit_tiny_text(tmp_path, backbone_dir, format_registry, "text-tiny-lora", {"lora": LORA})
    from emoembed.io import load_safetensors

    saved = load_safetensors(tmp_path / "run" / "model.safetensors")
    assert any(".lora_B." in k for k in saved)
    assert not [k for k in saved if k.startswith("encoder.backbone.") and ".lora_" not in k]
    assert any(v.abs().sum() > 0 for k, v in saved.items() if ".lora_B." in k)  # B started at zero and moved
    model = EmotionModel.from_pretrained(tmp_path / "run")
    base = TextEncoder.from_recipe({"backbone": str(backbone_dir)}, 16).backbone.state_dict()
    for k, v in model.encoder.backbone.state_dict().items():
        if not adapters.is_adapter_key(k):
            assert torch.equal(v, base[k.replace(".base_layer.", ".")]), k
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "run"), "--format", "be6", "what a lovely day"]) == 0
    assert capsys.readouterr().out.startswith("text,joy")


def test_onnx_export_merges_the_adapter_and_quantises_the_backbone(backbone_dir, format_registry, tmp_path):
    """A LoRA model's export is a plain backbone: the adapter is merged into the weights (no lora_ tensors), every
    backbone linear weight is an initializer, and int8 quantises all of them; fp32 and int8 match torch."""
    pytest.importorskip("onnxruntime")
    import onnx

    from emoembed.onnx_backend import ONNX_FILE

    model = lora_model(backbone_dir, format_registry)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    ref = model.encode(TEXTS)
    out = {q: model.export_onnx(tmp_path / (q or "fp32"), quantize=q) for q in (None, "int8")}
    after = model.encoder.state_dict()  # the export works on a copy: the torch model keeps its adapter
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
    np.testing.assert_allclose(EmotionModel.from_pretrained(out[None], backend="onnx").encode(TEXTS), ref, atol=1e-5)
    got = EmotionModel.from_pretrained(out["int8"], backend="onnx").encode(TEXTS)
    cos = np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.95

    n_linear = sum(isinstance(m, torch.nn.Linear) and ".lora_" not in n
                   for n, m in model.encoder.backbone.named_modules())  # 2 layers × 6 + pooler (+ projection)
    fp32 = onnx.load(str(out[None] / ONNX_FILE)).graph
    assert not [i.name for i in fp32.initializer if "lora" in i.name.lower()]
    assert not [n.name for n in fp32.node if "lora" in n.name.lower()]
    big_constants = [n.output[0] for n in fp32.node if n.op_type == "Constant"
                     for a in n.attribute if a.name == "value" and len(a.t.dims) == 2 and min(a.t.dims) > 1]
    assert not big_constants  # weights are initializers (what quantize_dynamic reads), not Constant nodes
    int8 = onnx.load(str(out["int8"] / ONNX_FILE)).graph
    int8_weights = [i for i in int8.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    assert len(int8_weights) >= n_linear - 1  # every encoder-layer linear (the pooler is unused by mean pooling)
    assert not [i.name for i in int8.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2
                and i.dims[0] > 1 and i.dims[1] > 1 and "embeddings" not in i.name]


def tuned_encoder(backbone_dir, rank: int, seed: int = 3) -> TextEncoder:
    """A 'fully fine-tuned' encoder: every weight matrix of the tiny BERT moved by an exact rank-``rank`` update,
    plus a moved LayerNorm (which extraction drops)."""
    torch.manual_seed(seed)
    enc = TextEncoder.from_recipe({"backbone": str(backbone_dir), "max_length": 16}, 16)
    with torch.no_grad():
        for name, mod in enc.backbone.named_modules():
            if isinstance(mod, torch.nn.Linear):
                out_f, in_f = mod.weight.shape
                mod.weight += 0.3 * torch.randn(out_f, rank) @ torch.randn(rank, in_f) / in_f ** 0.5
        enc.backbone.embeddings.LayerNorm.weight += 0.5
    return enc.eval()


@pytest.mark.parametrize("rank", [2, 4])
def test_extracted_lora_reproduces_a_low_rank_weight_change_exactly(backbone_dir, rank):
    """A weight change of rank ≤ r is extracted exactly (Eckart–Young): the adapter's merged weights equal the tuned
    ones, the energy kept is 1, and the non-matrix parameters come back to the base's."""
    tuned = tuned_encoder(backbone_dir, rank)
    adapted, info = tuned.extracted_lora({"rank": 4, "alpha": 8, "target_modules": ["query", "key", "value", "dense"]})
    assert info["layers"] == 2 * 6  # 2 layers × (query, key, value, attention output, 2 feed-forward)
    assert info["energy_kept"] == pytest.approx(1.0, abs=1e-9)
    merged = dict(adapted.backbone.named_modules())
    for name, mod in tuned.backbone.named_modules():
        if isinstance(mod, torch.nn.Linear) and name in merged and hasattr(merged[name], "get_delta_weight"):
            layer = merged[name]
            w = layer.get_base_layer().weight + layer.get_delta_weight("default")
            torch.testing.assert_close(w, mod.weight, atol=1e-5, rtol=1e-5)
    base = TextEncoder.from_recipe({"backbone": str(backbone_dir)}, 16).backbone
    torch.testing.assert_close(dict(adapted.backbone.named_parameters())["embeddings.LayerNorm.weight"],
                               base.embeddings.LayerNorm.weight)
    torch.testing.assert_close(adapted.projection[-1].weight, tuned.projection[-1].weight)


def test_extraction_keeps_the_top_singular_directions_and_is_deterministic(backbone_dir):
    """Rank 1 from a rank-4 change keeps part of the energy, the same every time (float64 SVD)."""
    tuned = tuned_encoder(backbone_dir, 4)
    settings = {"rank": 1, "alpha": 2, "target_modules": ["query", "value"]}
    a, info = tuned.extracted_lora(settings)
    b, info_b = tuned.extracted_lora(settings)
    assert 0.25 < info["energy_kept"] < 1.0 and info == info_b
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_an_adapter_cannot_be_extracted_again(backbone_dir):
    enc = TextEncoder.from_recipe({"backbone": str(backbone_dir), "lora": LORA}, 16)
    with pytest.raises(ConfigError, match="already a LoRA adapter"):
        enc.extracted_lora(LORA)


def test_fit_encoder_export_lora_saves_an_adapter_and_reports_both_dev_scores(backbone_dir, format_registry, tmp_path):
    """Recipe key `export_lora`: full fine-tuning, then the run folder holds only the extracted adapter; metrics.json
    gives the dev score before and after extraction, and the saved model predicts what the adapter scored."""
    import json

    from emoembed.cli import main

    fit_tiny_text(tmp_path, backbone_dir, format_registry, "text-tiny-export", {},
                  export_lora={"rank": 4, "alpha": 4, "target_modules": ["query", "key", "value", "dense"]})
    from emoembed.io import load_safetensors

    saved = load_safetensors(tmp_path / "run" / "model.safetensors")
    assert any(".lora_B." in k for k in saved)
    assert not [k for k in saved if k.startswith("encoder.backbone.") and ".lora_" not in k]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    export = metrics["export_lora"]
    assert export["settings"]["rank"] == 4 and export["layers"] == 12 and 0 < export["energy_kept"] <= 1
    assert set(export["dev_adapter_per_dataset"]) == {"emobank"}
    assert export["dev_full"] == pytest.approx(metrics["dev_score"])  # the best epoch's own dev score, not re-run
    model = EmotionModel.from_pretrained(tmp_path / "run")
    assert model.encoder.lora["rank"] == 4
    res = json.loads(_evaluate_json(main, tmp_path / "run", "dev"))
    assert res["results"]["emobank"]["primary"] == pytest.approx(export["dev_adapter"], abs=1e-6)


def _evaluate_json(main, model_dir, split: str) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["evaluate", "--model", str(model_dir), "--data", "emobank", "--split", split, "--json"]) == 0
    return buf.getvalue()


@pytest.mark.parametrize("bad, msg", [({"rank": 0}, "rank"), ({"rnak": 4}, "unknown key")])
def test_bad_export_lora_keys_are_named(bad, msg):
    from emoembed.recipes import resolve_encoder_recipe

    with pytest.raises(ConfigError, match=msg):
        resolve_encoder_recipe({"modality": "text", "export_lora": bad}, "r.yaml")
