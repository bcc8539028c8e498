"""The CARL paper's linear probes (emoembed.probe) against scikit-learn / scipy / brute force on fixed toy data."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from emoembed.errors import ConfigError
from emoembed.probe import alignment_uniformity, classification_probe, ekman_single_label, regression_probe


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(60, 5)), rng.normal(size=(25, 5))
    w = np.array([[0.5, -0.2], [0.1, 0.3], [0.0, 0.4], [-0.3, 0.0], [0.2, 0.1]])
    y_tr = np.clip(x_tr @ w + rng.normal(0, 0.2, (60, 2)), -1, 1)
    y_te = np.clip(x_te @ w + rng.normal(0, 0.2, (25, 2)), -1, 1)
    c_tr, c_te = (x_tr[:, 0] > 0).astype(int) + (x_tr[:, 1] > 0.5), (x_te[:, 0] > 0).astype(int) + (x_te[:, 1] > 0.5)
    return x_tr, y_tr, x_te, y_te, c_tr, c_te


def test_regression_probe_reproduces_sklearn_and_scipy(toy):
    from scipy.stats import pearsonr, spearmanr
    from sklearn.linear_model import LinearRegression

    x_tr, y_tr, x_te, y_te, *_ = toy
    out = regression_probe(x_tr, y_tr, x_te, y_te, ["valence", "arousal"])
    for j, var in enumerate(["valence", "arousal"]):
        pred = LinearRegression().fit(x_tr, y_tr[:, j]).predict(x_te)
        assert out[var]["r"] == pytest.approx(pearsonr(pred, y_te[:, j])[0], abs=1e-12)
        assert out[var]["rho"] == pytest.approx(spearmanr(pred, y_te[:, j])[0], abs=1e-12)
        # MAE on the paper's [0, 1] min-max scale = half the MAE on [-1, 1]
        assert out[var]["mae"] == pytest.approx(np.abs(pred - y_te[:, j]).mean() / 2, abs=1e-12)
        assert out[var]["n"] == 25
    assert out["valence"]["r"] > 0.5  # the toy labels are linear in x: the probe must find it


def test_classification_probe_reproduces_sklearn(toy):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_tr, _, x_te, _, c_tr, c_te = toy
    out = classification_probe(x_tr, c_tr, x_te, c_te)
    pred = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr, c_tr).predict(x_te)
    assert out["accuracy"] == pytest.approx(accuracy_score(c_te, pred), abs=1e-12)
    assert out["f1"] == pytest.approx(f1_score(c_te, pred, average="macro", zero_division=0), abs=1e-12)
    assert out["accuracy"] > 0.6 and out["n"] == 25


def test_alignment_uniformity_equal_brute_force_over_all_pairs(toy):
    _, _, x, _, _, y = toy
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    pos, allp = [], []
    for i, j in itertools.combinations(range(len(x)), 2):
        d = float(((xn[i] - xn[j]) ** 2).sum())
        allp.append(d)
        if y[i] == y[j]:
            pos.append(d)
    out = alignment_uniformity(x, y)
    assert out["alignment"] == pytest.approx(np.mean(pos), rel=1e-9)
    assert out["uniformity"] == pytest.approx(np.log(np.mean(np.exp(-2 * np.array(allp)))), rel=1e-9)
    assert out["positive_pairs"] == len(pos)
    # identical embeddings within a class: perfect alignment
    assert alignment_uniformity(np.eye(3)[y], y)["alignment"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="positive pair"):
        alignment_uniformity(x[:3], np.array([0, 1, 2]))


def test_ekman_single_label_keeps_only_one_of_the_six():
    variables = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    y = np.array([[1, 0, 0, 0, 0, 0, 0],   # anger only: kept
                  [0, 0, 0, 1, 0, 0, 1],   # joy + neutral: dropped
                  [0, 0, 0, 0, 0, 0, 1],   # neutral: dropped
                  [0, 1, 1, 0, 0, 0, 0],   # two Ekman labels: dropped
                  [0, 0, 0, 0, 0, 1, 0]])  # surprise only: kept
    texts, cls = ekman_single_label(["a", "b", "c", "d", "e"], y, variables)
    assert texts == ["a", "e"] and cls.tolist() == [0, 5]


def test_text_embedder_reads_a_bare_backbone_folder(tmp_path):
    import torch

    from emoembed.probe import text_embedder
    from tiny_text import tiny_encoder, tiny_tokenizer_dir
    from emoembed.training.pretrain import save_backbone

    enc = tiny_encoder(tiny_tokenizer_dir(tmp_path), max_length=16)
    save_backbone(enc, tmp_path / "bb")
    embed = text_embedder(tmp_path / "bb", max_length=16)
    texts = ["the happy dog", "a very sad day today i am not so", "love"]
    out = embed(texts)
    enc.eval()
    with torch.no_grad():
        want = enc.forward_tokens(enc.collate(texts))["pooled"].numpy()
    assert out.shape == (3, 32)
    np.testing.assert_allclose(out, want, atol=1e-5)  # same weights, input order kept despite length sorting
    with pytest.raises(ConfigError, match="layer 'emotion' needs a model directory"):
        text_embedder(tmp_path / "bb", layer="emotion")


def test_evaluate_probe_command_writes_the_three_probes(tmp_path, monkeypatch, capsys):
    import json

    import emoembed.probe as probe_mod
    from emoembed.cli import main
    from emoembed.training.pretrain import save_backbone
    from tiny_text import tiny_encoder, tiny_tokenizer_dir, toy_corpus

    save_backbone(tiny_encoder(tiny_tokenizer_dir(tmp_path), max_length=16), tmp_path / "bb")
    texts, y = toy_corpus(90, seed=2)
    cls = (y[:, 0] > 0).astype(int) + 2 * (y[:, 1] > 0)
    data = probe_mod.ProbeData(texts[:60], y[:60, :2], texts[60:], y[60:, :2], ["valence", "arousal"],
                               texts[:60], cls[:60], texts[60:], cls[60:])
    seen = {}

    def fake_load(**kw):
        seen.update(kw)
        return data

    monkeypatch.setattr(probe_mod, "load_probe_data", fake_load)
    out = tmp_path / "probe.json"
    assert main(["evaluate", "--probe", "--model", str(tmp_path / "bb"), "--probe-out", str(out), "--max-ekman-train", "0"]) == 0
    res = json.loads(out.read_text())
    assert seen == {"max_ekman_train": None}
    assert set(res) >= {"va", "ekman", "geometry", "dim", "sizes"} and res["dim"] == 32
    assert res["sizes"] == {"va_train": 60, "va_test": 30, "ekman_train": 60, "ekman_test": 30}
    assert -1 <= res["va"]["valence"]["r"] <= 1 and 0 <= res["ekman"]["accuracy"] <= 1
    printed = capsys.readouterr().out
    assert "| model | V r | V ρ | V MAE |" in printed and f"{res['va']['valence']['r']:.3f}" in printed


def test_text_embedder_reads_a_model_directory_in_both_layers(tmp_path, format_registry):
    import torch

    from emoembed.model import EmotionModel
    from emoembed.probe import text_embedder
    from tiny_text import tiny_codec, tiny_encoder, tiny_tokenizer_dir

    enc = tiny_encoder(tiny_tokenizer_dir(tmp_path), max_length=16).eval()
    model = EmotionModel(enc, tiny_codec(format_registry), meta={"trained_formats": ["vad"]})
    model.save_pretrained(tmp_path / "model")
    texts = ["a very happy dog", "sad", "the cat was not so angry today"]
    emo = text_embedder(tmp_path / "model", layer="emotion")(texts)
    np.testing.assert_allclose(emo, model.encode(texts), atol=1e-5)
    pooled = text_embedder(tmp_path / "model", layer="pooled")(texts)
    with torch.no_grad():
        want = enc.forward_tokens(enc.collate(texts))["pooled"].numpy()
    assert pooled.shape == (3, 32) and emo.shape == (3, 16)
    np.testing.assert_allclose(pooled, want, atol=1e-5)
