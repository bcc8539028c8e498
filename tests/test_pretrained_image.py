"""The shipped face model `emoembed/image-faces-effnet`: loads by name offline from half-precision weights, reads
real FER2013 test faces (the catalogue's, through EMOEMBED_DATA) far above chance, its zero-shot valence orders
happy faces above sad ones, and `predict` on the CLI names the format it says is zero-shot."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emoembed.cli import main
from emoembed.model import EmotionModel
from emoembed.model_zoo import pretrained_dir

NAME = "image-faces-effnet"
FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel.from_pretrained(f"emoembed/{NAME}")


@pytest.fixture(scope="module")
def fer_test(real_registry):
    """The first 120 FER2013 test faces (PrivateTest rows): npz references and gold classes."""
    d = real_registry.dataset("fer2013_fer7")
    test = d.frame[d.frame["split"] == "test"].iloc[:120]
    gold = test[[f"fer7:{c}" for c in FER7]].to_numpy(dtype=float).argmax(1)
    return test["content"].tolist(), gold


def test_weights_are_half_precision_and_load_into_float32(model):
    cfg = json.loads((pretrained_dir(NAME) / "config.json").read_text(encoding="utf-8"))
    assert cfg["storage_dtype"] == "float16" and cfg["recipe"]["source"] == "encoders/image-effnet-lite0-fer-60min.yaml"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.modality == "image" and set(model.meta["trained_formats"]) == {"fer7"}


@pytest.mark.realdata
def test_reads_real_fer2013_test_faces(model, fer_test):
    refs, gold = fer_test
    probs = model.predict(refs, "fer7")[FER7].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    accuracy = float((probs.argmax(1) == gold).mean())
    assert accuracy >= 0.55, accuracy  # the card: about .66 on all 3,589 test faces; chance (majority class) .25
    va = model.predict(refs, "va")  # zero-shot: FER2013 has no valence labels
    happy, sad = va["valence"].to_numpy()[gold == 3], va["valence"].to_numpy()[gold == 4]
    assert len(happy) >= 10 and len(sad) >= 10
    assert happy.mean() > sad.mean() + 0.2, (happy.mean(), sad.mean())


@pytest.mark.realdata
def test_predict_cli_says_which_formats_are_zero_shot(fer_test, tmp_path, capsys):
    refs, _ = fer_test
    assert main(["predict", "--model", f"emoembed/{NAME}", "--format", "fer7", *refs[:3]]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "image," + ",".join(FER7) + ",label" and len(lines) == 4
    assert all(line.rsplit(",", 1)[1] in FER7 for line in lines[1:])  # the label column: the most probable class
    assert "zero-shot" not in err
    assert main(["predict", "--model", f"emoembed/{NAME}", "--format", "be5", *refs[:3]]) == 0
    assert "zero-shot" in capsys.readouterr().err
