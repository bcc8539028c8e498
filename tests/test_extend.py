"""``emoembed map --extend``: a trained codec learns a new format while every old weight stays bit-identical, and
a content model trained on the old codec then predicts the new format zero-shot."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_training import WORDS, recipe, toy_task

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.errors import ConfigError
from emoembed.extend import anchors, new_formats
from emoembed.formats import default_registry
from emoembed.model import EmotionModel
from emoembed.training.encoder import fit


def _cos(codec: EmotionCodec, a: str, b: str) -> float:
    hv = codec.head_vectors()
    return float(torch.nn.functional.cosine_similarity(torch.tensor(hv.loc[a].to_numpy()), torch.tensor(hv.loc[b].to_numpy()), dim=0))


@pytest.fixture(scope="module")
def base_dir(small_trained_codec, tmp_path_factory) -> Path:
    """A small codec (vad, be5, nrc10) trained for a few seconds on bundled Warriner pairs."""
    return small_trained_codec.save_pretrained(tmp_path_factory.mktemp("base"))


def _recipe_file(tmp_path: Path, pairs: list[str], tie: float = 1.0) -> Path:
    path = tmp_path / f"extend-{tie}.yaml"
    path.write_text(yaml.safe_dump({"name": "ext", "seed": 3, "pairs": pairs,
                                    "loss_weights": {"autoencode": 1.0, "mapping": 1.0, "embedding": 1.0, "tie": tie},
                                    "training": {"epochs": 4, "steps_per_epoch": 60, "batch_size": 64, "lr": 0.005, "patience": 10}}))
    return path


@pytest.fixture(scope="module")
def extended_dir(base_dir, tmp_path_factory) -> Path:
    """The base codec extended with VADER's `valence` format through the bundled VADER × EmoLex pair (CLI)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("EMOEMBED_DATA", raising=False)  # embedded data only
    tmp = tmp_path_factory.mktemp("ext")
    try:
        assert main(["map", "--extend", str(base_dir), "--recipe", str(_recipe_file(tmp, ["vader_emolex"])),
                     "--out", str(tmp / "codec"), "--quiet"]) == 0
    finally:
        mp.undo()
    return tmp / "codec"


def test_extend_keeps_old_weights_bit_identical_and_ties_the_new_head(base_dir, extended_dir):
    base, ext = EmotionCodec.from_pretrained(base_dir), EmotionCodec.from_pretrained(extended_dir)
    assert list(ext.formats) == ["vad", "be5", "nrc10", "valence"]
    ext_state = ext.state_dict()
    for key, value in base.state_dict().items():  # every old label encoder and head, to the bit
        assert torch.equal(ext_state[key], value), key
    assert ext.format_fingerprints(base.formats) == base.format_fingerprints()
    # the new head row is pulled onto the frozen valence row of VAD (same equivalence class), not onto arousal
    assert _cos(ext, "valence.valence", "vad.valence") > 0.9 > _cos(ext, "valence.valence", "vad.arousal") + 0.3
    cfg = json.loads((extended_dir / "config.json").read_text())
    assert cfg["extended_from"]["new_formats"] == ["valence"]
    assert cfg["extended_from"]["anchored_by"] == {"valence": "pair"}
    metrics = json.loads((extended_dir / "metrics.json").read_text())
    rows = {(r["source"], r["target"]): r for r in metrics["test"]}
    assert set(rows) == {("valence", "nrc10"), ("nrc10", "valence")}
    assert rows[("nrc10", "valence")]["primary"] > 0.5  # EmoLex categories → VADER valence on held-out words
    assert not (extended_dir / "training_state.pt").exists()


def test_without_the_tie_the_new_head_is_not_aligned(base_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    out = tmp_path / "untied"
    assert main(["map", "--extend", str(base_dir), "--recipe", str(_recipe_file(tmp_path, ["vader_emolex"], tie=0.0)),
                 "--out", str(out), "--quiet"]) == 0
    assert _cos(EmotionCodec.from_pretrained(out), "valence.valence", "vad.valence") < 0.8


@pytest.fixture(scope="module")
def word_model(base_dir, tmp_path_factory) -> EmotionModel:
    """A tiny word model trained on the *base* codec with VAD labels only."""
    d = tmp_path_factory.mktemp("vec")
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 12))
    (d / "tiny.txt").write_text("".join(w + " " + " ".join(f"{x:.5f}" for x in np.asarray(v) @ proj + 0.05 * rng.normal(size=12)) + "\n"
                                        for w, v in WORDS.items()), encoding="utf-8")
    os.environ.setdefault("EMOEMBED_CACHE", str(d / "cache"))  # as test_training's `trained` fixture does
    r = recipe(d / "tiny.txt", training={"epochs": 40})
    codec = EmotionCodec.from_pretrained(base_dir)
    res = fit(r, codec, [toy_task()], progress=False, log=lambda *_: None)
    model = EmotionModel.from_training(res, codec, [toy_task()], r)
    return model


def test_old_model_predicts_the_new_format_zero_shot(word_model, extended_dir, tmp_path):
    with pytest.raises(ConfigError, match="cannot predict format 'valence'"):
        word_model.predict(["happy"], format="valence")
    ext_model = word_model.with_codec(EmotionCodec.from_pretrained(extended_dir))
    val = ext_model.predict(["happy", "joy", "grief", "rage"], format="valence")
    assert val.loc["happy", "valence"] > val.loc["grief", "valence"] and val.loc["joy", "valence"] > val.loc["rage", "valence"]
    words = list(WORDS)
    # the old formats decode exactly as before: same encoder, same frozen heads
    pd.testing.assert_frame_equal(ext_model.predict(words, format="vad"), word_model.predict(words, format="vad"))
    assert ext_model.meta["extended_formats"] == ["valence"] and "valence" not in ext_model.trained_formats
    saved = ext_model.save_pretrained(tmp_path / "model+valence")
    again = EmotionModel.from_pretrained(saved)
    pd.testing.assert_frame_equal(again.predict(words, format="valence"), ext_model.predict(words, format="valence"))


def test_predict_cli_with_an_extended_codec(word_model, extended_dir, tmp_path, capsys):
    model_dir = word_model.save_pretrained(tmp_path / "words")
    assert main(["predict", "--model", str(model_dir), "--codec", str(extended_dir), "--format", "valence", "happy", "grief"]) == 0
    out = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert list(out.columns) == ["word", "valence", "coverage"] and out.valence[0] > out.valence[1]
    other = codec_for(["vad", "be5", "nrc10", "valence"], default_registry(), dim=16, hidden=[32]).save_pretrained(tmp_path / "other")
    assert main(["predict", "--model", str(model_dir), "--codec", str(other), "--format", "valence", "happy"]) == 2
    assert "differ from this model's codec" in capsys.readouterr().err


def test_extend_errors(base_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    # a pair of two formats the codec already knows teaches nothing
    assert main(["map", "--extend", str(base_dir), "--recipe", str(_recipe_file(tmp_path, ["warriner_emomap"])),
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "already knows" in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.safetensors").exists()
    assert main(["map", "--extend", str(base_dir), "--recipe", str(_recipe_file(tmp_path, ["vader_emolex"])),
                 "--out", str(base_dir), "--quiet"]) == 2
    assert "is the codec being extended" in capsys.readouterr().err
    assert main(["map", "--extend", str(tmp_path / "nowhere"), "--recipe", str(_recipe_file(tmp_path, ["vader_emolex"])),
                 "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err


def _pair(a: str, b: str) -> SimpleNamespace:
    reg = default_registry()
    return SimpleNamespace(name=f"{a}_{b}", format_a=reg.get(a), format_b=reg.get(b))


def test_anchoring_rules():
    reg = default_registry()
    base = codec_for(["vad"], reg, dim=4, hidden=[4])
    # va × be6: neither is known, but va's valence/arousal are equivalent to VAD's → anchored by the tie
    assert anchors(base, [_pair("va", "be6")], new_formats(base, [_pair("va", "be6")]), reg.equivalences) == {"va": "tie", "be6": "tie"}
    # vad × be5 then be5 × ekman7: ekman7 is reached through the new be5
    pairs = [_pair("vad", "be5"), _pair("be5", "ekman7")]
    assert anchors(base, pairs, new_formats(base, pairs), reg.equivalences) == {"be5": "pair", "ekman7": "pair"}
    lonely = codec_for(["valence"], reg, dim=4, hidden=[4])
    with pytest.raises(ConfigError, match="joined to no format of the base codec"):
        anchors(lonely, [_pair("goemotions28", "ekman7")], ["goemotions28", "ekman7"], reg.equivalences)


def test_extending_a_codec_with_domains_keeps_its_domains_and_adds_one_per_new_pair(tmp_path, monkeypatch):
    from emoembed.data.registry import DataRegistry
    from emoembed.recipes import resolve_codec_recipe as resolve_recipe
    from emoembed.training.codec import load_pairs, train_codec
    from emoembed.settings import bundled_data_dir

    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    reg = DataRegistry.load(roots=[bundled_data_dir()])
    r = resolve_recipe({"pairs": ["warriner_emomap", "warriner_emolex"], "codec": {"dim": 16, "hidden": [32], "dropout": 0.0, "domain_dim": 4},
                        "training": {"epochs": 2, "steps_per_epoch": 60, "batch_size": 64, "lr": 0.005}})
    base = train_codec(r, load_pairs(r, reg, log=lambda *_: None), reg.formats, progress=False, log=lambda *_: None).codec
    assert all(torch.count_nonzero(v) > 0 for v in base.domains.values())
    base_dir = base.save_pretrained(tmp_path / "base")
    out = tmp_path / "ext"
    assert main(["map", "--extend", str(base_dir), "--recipe", str(_recipe_file(tmp_path, ["vader_emolex"])),
                 "--out", str(out), "--quiet"]) == 0
    ext = EmotionCodec.from_pretrained(out)
    assert list(ext.domains) == ["warriner_emomap", "warriner_emolex", "vader_emolex"] and ext.domain_dim == 4
    ext_state = ext.state_dict()
    for key, value in base.state_dict().items():  # old encoders, heads and domain vectors, to the bit
        assert torch.equal(ext_state[key], value), key
    assert torch.count_nonzero(ext.domains["vader_emolex"]) > 0  # the new pair's domain was trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["pair"] for r in metrics["test_pooled"]} == {"vader_emolex"} and "test_pooled_mean" in metrics
