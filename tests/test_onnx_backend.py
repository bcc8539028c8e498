"""ONNX Runtime backend: exported tiny text and image models give the torch model's outputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_tokenizer_dir,
)

from emoembed.cli import main
from emoembed.errors import CheckpointError, ConfigError
from emoembed.model import EmotionModel, load_model

onnxruntime = pytest.importorskip("onnxruntime")
from emoembed.onnx_backend import ONNX_FILE, OnnxEmotionModel, OnnxEncoder  # noqa: E402

TEXTS = ["i am so happy today", "sad", "the dog was very angry and the cat was not so great today at all",
         "love", "a b c d e f g h"]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def text_model(tok_dir, format_registry):
    enc = tiny_encoder(tok_dir, dim=16, max_length=24)
    return EmotionModel(enc, tiny_codec(format_registry), meta={"trained_formats": ["vad"]}).eval()


@pytest.fixture(scope="module")
def exported(text_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {q: text_model.export_onnx(root / (q or "fp32"), quantize=q) for q in (None, "int8")}


def test_fp32_export_matches_torch_encode_and_predict(text_model, exported):
    fast = EmotionModel.from_pretrained(exported[None])
    assert isinstance(fast, OnnxEmotionModel) and isinstance(fast.encoder, OnnxEncoder)
    assert list(fast.state_dict()) == [k for k in text_model.state_dict() if not k.startswith("encoder.")]
    np.testing.assert_allclose(fast.encode(TEXTS), text_model.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(fast.encode(TEXTS, batch_size=2), text_model.encode(TEXTS), atol=1e-5)
    for fmt in ("vad", "be6"):
        a, b = fast.predict(TEXTS, fmt), text_model.predict(TEXTS, fmt)
        assert list(a.columns) == list(b.columns) and list(a.index) == list(b.index)
        num = [c for c in a.columns if c != "label"]
        np.testing.assert_allclose(a[num].to_numpy(), b[num].to_numpy(), atol=1e-5)
        if "label" in a:
            assert a["label"].tolist() == b["label"].tolist()
    cfg = json.loads((exported[None] / "config.json").read_text())
    assert cfg["backend"]["quantize"] is None and cfg["backend"]["export_check"]["max_abs_diff"] < 1e-4
    assert cfg["backend"]["inputs"][:2] == ["input_ids", "attention_mask"]


def test_int8_export_is_quantised_and_close(text_model, exported):
    q = EmotionModel.from_pretrained(exported["int8"], backend="onnx")
    ref = text_model.encode(TEXTS)
    got = q.encode(TEXTS)
    cos = np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.95  # int8 weights on a 32-wide random BERT: close, not identical
    assert not np.allclose(got, ref, atol=1e-6)  # it really is the quantised graph
    import onnx

    ops = {n.op_type for n in onnx.load(str(exported["int8"] / ONNX_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # int8 weights, activations quantised per batch
    assert "MatMulInteger" not in {n.op_type for n in onnx.load(str(exported[None] / ONNX_FILE)).graph.node}


def test_backend_choice_and_errors(text_model, exported, tmp_path):
    torch_dir = text_model.save_pretrained(tmp_path / "torch")
    with pytest.raises(CheckpointError, match="export-onnx"):
        EmotionModel.from_pretrained(torch_dir, backend="onnx")
    with pytest.raises(CheckpointError, match="holds an ONNX export"):
        EmotionModel.from_pretrained(exported[None], backend="torch")
    with pytest.raises(ConfigError, match="backend must be one of"):
        EmotionModel.from_pretrained(torch_dir, backend="tensorrt")
    with pytest.raises(ConfigError, match="quantize must be one of"):
        text_model.export_onnx(tmp_path / "x", quantize="int4")
    with pytest.raises(ConfigError, match="not an ONNX export"):
        text_model.export_onnx(torch_dir)
    fast = load_model(exported[None])
    with pytest.raises(ConfigError, match="already runs on ONNX"):
        fast.export_onnx(tmp_path / "again")
    assert isinstance(load_model(torch_dir).encoder, type(text_model.encoder))


def test_cli_export_and_predict_backend_onnx(text_model, tmp_path, capsys):
    torch_dir = text_model.save_pretrained(tmp_path / "torch")
    assert main(["export-onnx", "--model", str(torch_dir), "--out", str(tmp_path / "o")]) == 0
    assert "max |Δ| vs torch" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "o"), "--backend", "onnx", "--format", "vad", *TEXTS[:2]]) == 0
    onnx_out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert main(["predict", "--model", str(torch_dir), "--format", "vad", *TEXTS[:2]]) == 0
    torch_out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    pd.testing.assert_frame_equal(onnx_out, torch_out, atol=2e-4)  # stdout keeps 4 decimals
    assert main(["predict", "--model", str(torch_dir), "--backend", "onnx", "--format", "vad", "x"]) == 2
    assert "export-onnx" in capsys.readouterr().err


def test_image_model_export_matches_torch(tmp_path, format_registry):
    from PIL import Image

    from emoembed.encoders.image import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder.from_config({"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32, "dim": 16,
                                    "eval_transform": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}]})
    model = EmotionModel(enc, tiny_codec(format_registry), meta={"trained_formats": ["be6"]}).eval()
    paths = []
    for i, colour in enumerate([(250, 10, 10), (10, 200, 30), (30, 30, 30)]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (40, 36 + i), colour).save(p)
        paths.append(str(p))
    fast = EmotionModel.from_pretrained(model.export_onnx(tmp_path / "img"))
    np.testing.assert_allclose(fast.encode(paths), model.encode(paths), atol=1e-4)
    pd.testing.assert_frame_equal(fast.predict(paths, "be6"), model.predict(paths, "be6"), atol=1e-4)


def test_word_models_are_not_exported():
    from emoembed.onnx_backend import _probe_batch

    with pytest.raises(ConfigError, match="vector lookup"):
        _probe_batch(type("WordLike", (), {"modality": "word"})())
