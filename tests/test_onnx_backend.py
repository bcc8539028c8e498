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
    assert cfg["backend"]["disabled_optimizers"] == ["SkipLayerNormFusion"]


def test_attention_mask_fill_is_softened_and_outputs_unchanged(text_model, exported):
    """The traced mask's finfo.min fill (denormal exp in onnxruntime's Softmax) becomes ATTENTION_MASK_FILL; texts
    padded to very different lengths in one batch still give torch's embeddings."""
    import onnx
    from onnx import numpy_helper

    from emoembed.onnx_backend import ATTENTION_MASK_FILL, soften_attention_mask

    for q in (None, "int8"):
        proto = onnx.load(str(exported[q] / ONNX_FILE))
        consts = [numpy_helper.to_array(a.t) for n in proto.graph.node if n.op_type == "Constant"
                  for a in n.attribute if a.name == "value"]
        floats = [float(c.reshape(())) for c in consts if c.dtype == np.float32 and c.size == 1]
        assert ATTENTION_MASK_FILL in floats and min(floats) > -1e30
        assert soften_attention_mask(proto) == 0  # nothing left to replace
        assert json.loads((exported[q] / "config.json").read_text())["backend"]["attention_mask_fill"] == ATTENTION_MASK_FILL
    fast = EmotionModel.from_pretrained(exported[None])
    long_and_short = ["a", TEXTS[2] + " " + TEXTS[2], "b c", TEXTS[0]]
    np.testing.assert_allclose(fast.encode(long_and_short, batch_size=4), text_model.encode(long_and_short, batch_size=1),
                               atol=1e-5)


def test_export_is_self_contained_and_moves(tmp_path, format_registry):
    """The export carries its tokenizer: moved elsewhere, with the original tokenizer folder gone, it loads and
    predicts as the torch model did."""
    import shutil

    tok = tiny_tokenizer_dir(tmp_path / "tok")
    model = EmotionModel(tiny_encoder(tok, dim=16, max_length=24), tiny_codec(format_registry),
                         meta={"trained_formats": ["vad"]}).eval()
    ref_z, ref_p = model.encode(TEXTS), model.predict(TEXTS, "vad")
    model.export_onnx(tmp_path / "export", quantize=None)
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["encoder"]["tokenizer"] == "tokenizer" and cfg["encoder"]["backbone"] is None
    assert cfg["backend"]["source_encoder"]["tokenizer"] == str(tok)
    assert (tmp_path / "export" / "tokenizer" / "tokenizer_config.json").is_file()
    model.export_onnx(tmp_path / "export", quantize=None)  # re-export over itself replaces the tokenizer copy
    shutil.rmtree(tok)
    moved = shutil.move(str(tmp_path / "export"), str(tmp_path / "elsewhere" / "copied-model"))
    fast = EmotionModel.from_pretrained(moved)
    assert str(fast.encoder.tokenizer_spec).startswith(str(moved))
    np.testing.assert_allclose(fast.encode(TEXTS), ref_z, atol=1e-5)
    pd.testing.assert_frame_equal(fast.predict(TEXTS, "vad"), ref_p, atol=1e-5)


def test_text_batches_are_sorted_by_token_count(text_model):
    enc = text_model.encoder
    keys = enc.sort_keys(["a b c d e f g h", "happy", "x " * 60])
    assert keys.tolist() == [10.0, 3.0, 24.0]  # [CLS] … [SEP]; capped at max_length
    assert keys.tolist() == [min(n, 24) for n in enc.token_lengths(["a b c d e f g h", "happy", "x " * 60])]


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
