"""Checkpoints written before the issue-12 restructure (tests/fixtures/prechange, saved by emoembed at 7a3ece5 with
tests/fixtures/make_prechange_checkpoints.py) still load and give the outputs recorded when they were written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoembed.codec import EmotionCodec
from emoembed.model import EmotionModel, load_model

PRECHANGE = Path(__file__).resolve().parent / "fixtures" / "prechange"
WORDS = {"happy": (0.9, 0.5, 0.6), "sad": (-0.8, -0.4, -0.5), "angry": (-0.7, 0.8, 0.3), "calm": (0.5, -0.8, 0.3)}


def test_prechange_codec_loads_and_converts_as_recorded():
    codec = EmotionCodec.from_pretrained(PRECHANGE / "codec")
    assert list(codec.formats) == ["vad", "be5", "ekman7"] and codec.dim == 4
    out = codec.convert(np.asarray(list(WORDS.values()), dtype=np.float32), "vad", "ekman7")
    expected = pd.read_csv(PRECHANGE / "codec-vad-to-ekman7.csv", keep_default_na=False)
    np.testing.assert_allclose(out.drop(columns="label").to_numpy(), expected.drop(columns="label").to_numpy(), atol=1e-6)
    assert out["label"].tolist() == expected["label"].tolist()
    assert isinstance(load_model(PRECHANGE / "codec"), EmotionCodec)


def test_prechange_word_model_loads_and_predicts_as_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(PRECHANGE)  # the model names its word vectors by the relative path vectors.txt
    model = load_model(PRECHANGE / "word-model")
    assert isinstance(model, EmotionModel) and model.modality == "word" and model.trained_formats == ["vad"]
    pred = model.predict(list(WORDS), "be5")
    expected = pd.read_csv(PRECHANGE / "word-model-be5.csv", index_col=0)
    assert pred.index.tolist() == expected.index.tolist() and list(pred.columns) == list(expected.columns)
    np.testing.assert_allclose(pred.to_numpy(), expected.to_numpy(), atol=1e-6)
    src = model.predict(["happy"], "vad", scale="source")
    assert ((src.to_numpy() >= 1) & (src.to_numpy() <= 9)).all()
