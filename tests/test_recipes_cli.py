"""Typed recipes (defaults in one place, errors naming file and key), ``--set``/``--print-config`` on ``map`` and
``fit-encoder``, ``emoembed list``, and the save_pretrained/from_pretrained contract shared by codec, model, index."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emoembed.cli import main
from emoembed.errors import ConfigError
from emoembed.recipes import (
    CodecRecipe,
    EncoderRecipe,
    apply_overrides,
    load_codec_recipe,
    load_encoder_recipe,
    parse_sets,
    recipe_files,
    resolve_codec_recipe,
)

REPO = Path(__file__).resolve().parent.parent


def test_every_bundled_recipe_resolves_and_defaults_come_from_the_models():
    files = recipe_files()
    assert {("codec", "default"), ("codec", "full"), ("encoder", "word-glove50"), ("encoder", "text-minilm")} <= {(k, n) for k, n, _ in files}
    for kind, _name, path in files:
        r = load_codec_recipe(path) if kind == "codec" else load_encoder_recipe(path)
        assert r["source"] == str(path)
    r = resolve_codec_recipe({"pairs": ["x"]})
    assert r["training"] == CodecRecipe.model_fields["training"].default.model_dump()
    assert r["baseline"]["epochs"] == 30 and r["codec"]["dim"] == 100
    assert EncoderRecipe().training.epochs == 30


def test_recipe_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: [warriner_emomap]\ntraining: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=rf"{bad}: training.epochs: input should be greater than 0, got 0"):
        load_codec_recipe(bad)
    bad.write_text("pairs: [warriner_emomap]\ncodec: {dims: 4}\n")
    with pytest.raises(ConfigError, match=rf"{bad}: codec: unknown field\(s\) \['dims'\]; known: \[.*'dim', 'domain_dim'"):
        load_codec_recipe(bad)
    bad.write_text("pairs: [warriner_emomap]\ntraining: 3\n")
    with pytest.raises(ConfigError, match=rf"{bad}: training must be a mapping, got 3"):
        load_codec_recipe(bad)
    with pytest.raises(ConfigError, match="heads: input should be 'codec' or 'direct'"):
        load_encoder_recipe(None, "word", {"heads": "free"})


def test_overrides_are_dotted_yaml_values():
    sets = parse_sets(["training.epochs=4", "augment=[be5, nrc10]", "training.scheduler={type: step, step_size: 2}",
                       "name=x=y", "training.grad_clip=null"])
    assert sets == {"training.epochs": 4, "augment": ["be5", "nrc10"], "training.scheduler": {"type": "step", "step_size": 2},
                    "name": "x=y", "training.grad_clip": None}
    r = load_encoder_recipe(None, "word", sets)
    assert r["training"]["epochs"] == 4 and r["augment"] == ["be5", "nrc10"] and r["name"] == "x=y"
    assert r["training"]["batch_size"] == load_encoder_recipe(None, "word")["training"]["batch_size"]  # untouched keys kept
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_sets(["training.epochs"])
    with pytest.raises(ConfigError, match="cannot set training.epochs.x: training.epochs is not a mapping"):
        apply_overrides({"training": {"epochs": 3}}, {"training.epochs.x": 1}, "r.yaml")
    with pytest.raises(ConfigError, match=r"training: unknown field\(s\) \['epoch'\]"):
        load_encoder_recipe(None, "word", parse_sets(["training.epoch=4"]))


def test_map_and_fit_encoder_print_config_with_set(capsys, tmp_path):
    assert main(["map", "--set", "training.epochs=4", "--set", "codec.dim=16", "--seed", "7", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# resolved from ") and "mappings/default.yaml" in out.splitlines()[0]
    cfg = yaml.safe_load(out)
    assert cfg["training"]["epochs"] == 4 and cfg["codec"]["dim"] == 16 and cfg["seed"] == 7 and cfg["name"] == "default"
    assert cfg["training"]["steps_per_epoch"] == 100 and "source" not in cfg
    assert main(["fit-encoder", "--modality", "word", "--codec", str(tmp_path / "none"), "--epochs", "2",
                 "--set", "training.lr=0.01", "--augment", "be5", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["training"]["epochs"] == 2 and cfg["training"]["lr"] == 0.01 and cfg["augment"] == ["be5"]
    assert cfg["modality"] == "word" and cfg["encoder"]["vectors"] == "packaged:all-MiniLM-L6-v2"  # the default word recipe
    assert not (tmp_path / "none").exists()
    assert main(["map", "--set", "training.epochz=4", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "training: unknown field(s) ['epochz']" in err
    assert "error: --set training.epochz:" in err and "default.yaml" not in err  # the key came from --set
    # fit-encoder --print-config needs no --codec; a run without it is one clear line
    assert main(["fit-encoder", "--modality", "word", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["modality"] == "word"
    assert main(["fit-encoder", "--modality", "word", "--out", str(tmp_path / "o")]) == 2
    assert "--codec is required" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, blamed", [
    (["map", "--set", "training.epochs=-1"], "--set training.epochs:"),
    (["map", "--set", "codec=3"], "--set codec:"),
    (["map", "--seed", "x"], None),  # argparse rejects it before the recipe
    (["fit-encoder", "--modality", "word", "--epochs", "0"], "--epochs:"),
    (["fit-encoder", "--modality", "word", "--set", "heads=both"], "--set heads:"),
    (["fit-encoder", "--modality", "word", "--set", "training.lr.x=1"], "--set training.lr.x:"),
])
def test_override_errors_name_the_override_not_the_recipe_file(argv, blamed, capsys):
    with pytest.raises(SystemExit) if blamed is None else _no_raise():
        assert main([*argv, "--print-config"]) == 2
    if blamed is not None:
        err = capsys.readouterr().err
        assert f"error: {blamed}" in err and ".yaml:" not in err, err


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_map_set_changes_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    import emoembed.data.registry as reg_mod

    monkeypatch.setattr(reg_mod, "_DEFAULT", None)
    rec = tmp_path / "r.yaml"
    rec.write_text("name: tiny\nseed: 1\npairs: [vader_emolex]\ntraining: {epochs: 5, steps_per_epoch: 10}\n")
    out = tmp_path / "run"
    assert main(["map", "--recipe", str(rec), "--out", str(out), "--quiet", "--set", "training.epochs=2",
                 "--set", "codec.dim=8"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    saved = json.loads((out / "recipe.json").read_text())
    assert saved["training"]["epochs"] == 2 and saved["codec"]["dim"] == 8 and saved["source"] == str(rec)
    assert json.loads((out / "config.json").read_text())["dim"] == 8


def test_list_verbs(capsys):
    assert main(["list", "formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "variables"]
    vad = next(line for line in lines if line.startswith("vad "))
    assert "regression" in vad and "valence, arousal, dominance" in vad
    assert main(["list", "recipes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "default", "kind": "codec", "file": str(REPO / "mappings" / "default.yaml")} in rows
    assert main(["list", "encoders", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"word", "text", "image", "carl", "packaged:glove-6b-50d", "packaged:all-MiniLM-L6-v2",
            "packaged:efficientnet-lite0"} <= set(rows)
    assert rows["packaged:glove-6b-50d"]["kind"] == "word weights"
    assert main(["list", "datasets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["warriner_emomap"]["type"] == "pair" and rows["warriner_emomap"]["formats"] == "vad × be5"


def test_codec_model_and_index_share_the_pretrained_contract(tmp_path):
    from emoembed.codec import EmotionCodec, codec_for
    from emoembed.formats import default_registry
    from emoembed.pretrained import Pretrained, PretrainedModule
    from emoembed.retrieval import EmotionIndex

    torch.manual_seed(0)
    codec = codec_for(["vad", "be5"], default_registry(), dim=4, hidden=[6], dropout=0.0)
    index = EmotionIndex(4, "f" * 64)
    index.embeddings = np.eye(4, dtype=np.float32)[:2]
    index.items, index.modalities, index.sources = ["a", "b"], ["word", "word"], ["m", "m"]
    from emoembed.model import EmotionModel

    assert issubclass(EmotionModel, PretrainedModule) and isinstance(codec, PretrainedModule)
    for obj in (codec, index):
        assert isinstance(obj, Pretrained)
        path = obj.save_pretrained(tmp_path / type(obj).__name__)
        back = type(obj).from_pretrained(path)
        assert type(back) is type(obj)
    back = EmotionCodec.from_pretrained(tmp_path / "EmotionCodec")
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in codec.state_dict().items())
    cfg = json.loads((tmp_path / "EmotionCodec" / "config.json").read_text())
    assert list(cfg)[:3] == ["model_type", "emoembed_version", "checkpoint_format"] and cfg["dim"] == 4
    assert EmotionIndex.from_pretrained(tmp_path / "EmotionIndex").items == ["a", "b"]
