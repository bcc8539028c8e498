"""A pretrained *text* model in the package's model zoo: a LoRA adapter over a backbone spec, saved with the adapter
and projection only, loads by name (`emoembed/NAME`) through the ordinary from_pretrained to bit-identical
predictions (Python and `emoembed predict`), gets a model card and a `list pretrained` row, and the shipped
`emoembed/text-minilm` (once built) is listed, packaged and predicts offline. A tiny random BERT saved as a
Hugging Face folder stands in for the packaged MiniLM."""
from __future__ import annotations

import json
from fnmatch import fnmatch
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_bert_dir,
    tiny_codec,
    toy_task,
)

import emoembed.model_zoo as zoo
from emoembed import adapters
from emoembed.cli import main
from emoembed.errors import ConfigError
from emoembed.model import EmotionModel

REPO = Path(__file__).resolve().parent.parent
LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value", "dense"]}
TEXTS = ["i am so happy today", "the dog was very angry", "sad day"]
TEXT_MODELS = [n for n, s in zoo.catalogue().items() if s.get("modality") == "text"]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    """A tiny random BERT saved as a Hugging Face folder (weights + tokenizer)."""
    return tiny_bert_dir(tmp_path_factory.mktemp("bb"))


@pytest.fixture
def text_zoo(tmp_path, monkeypatch, backbone_dir, format_registry):
    """A model zoo folder holding one LoRA text model ``tiny-text`` (adapter B non-zero, as after training) with
    its catalogue entry; returns (zoo folder, the model as saved)."""
    from emoembed.encoders.text import TextEncoder

    torch.manual_seed(1)
    enc = TextEncoder.from_recipe({"backbone": str(backbone_dir), "max_length": 16, "lora": LORA}, 16)
    with torch.no_grad():
        for name, p in enc.backbone.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5)
    model = EmotionModel(enc, tiny_codec(format_registry, formats=("vad", "be5", "be6")),
                         meta={"trained_formats": ["vad"], "augmented_formats": ["be5"]}).eval()
    entry = {"kind": "model", "modality": "text", "codec": "codec-full", "recipe": "text-minilm-multitask-lora",
             "data": ["emobank"], "augment": ["be5"], "example": TEXTS, "evaluate": ["emobank"],
             "summary": "A tiny text model.", "intended_use": "Tests.", "limits": "Random weights."}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"tiny-text": entry}), encoding="utf-8")
    model.save_pretrained(tmp_path / "tiny-text")
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path)
    return tmp_path, model


def test_the_saved_text_model_holds_the_adapter_and_projection_but_no_backbone(text_zoo, backbone_dir):
    from emoembed.io import load_safetensors

    folder, model = text_zoo
    state = load_safetensors(folder / "tiny-text" / "model.safetensors")
    encoder_keys = [k for k in state if k.startswith("encoder.")]
    assert any(".lora_A." in k for k in encoder_keys) and any(k.startswith("encoder.projection.") for k in encoder_keys)
    assert all(adapters.is_adapter_key(k) or k.startswith("encoder.projection.") for k in encoder_keys), encoder_keys
    n_backbone = sum(p.numel() for p in model.encoder.backbone.parameters() if not p.requires_grad)
    assert sum(state[k].numel() for k in encoder_keys) < 0.5 * n_backbone
    cfg = json.loads((folder / "tiny-text" / "config.json").read_text(encoding="utf-8"))
    assert cfg["modality"] == "text" and cfg["encoder"]["backbone"] == str(backbone_dir)
    assert cfg["encoder"]["lora"]["rank"] == 4 and len(cfg["encoder"]["backbone_sha256"]) == 16


def test_a_lora_text_model_loads_by_name_to_identical_predictions(text_zoo, capsys):
    folder, model = text_zoo
    before, emb = model.predict(TEXTS, "be5"), model.encode(TEXTS)
    for spec in ("emoembed/tiny-text", "tiny-text"):  # the packaged-name path, with and without the prefix
        loaded = EmotionModel.from_pretrained(spec)
        assert loaded.encoder.lora == model.encoder.lora
        pd.testing.assert_frame_equal(loaded.predict(TEXTS, "be5"), before)
        np.testing.assert_array_equal(loaded.encode(TEXTS), emb)
    capsys.readouterr()
    assert main(["predict", "--model", "emoembed/tiny-text", "--format", "be5", *TEXTS]) == 0
    out, err = capsys.readouterr()
    printed = pd.read_csv(StringIO(out))
    assert list(printed["text"]) == TEXTS
    np.testing.assert_allclose(printed[list(before.columns)].to_numpy(), before.to_numpy(), atol=5.1e-5)  # 4 decimals
    # be5 came from codec-made labels (augmentation), be6 from nothing: the notes tell the two apart
    assert "be5 has no gold labels in this model's training data" in err and "label augmentation" in err
    assert main(["predict", "--model", "emoembed/tiny-text", "--format", "be6", TEXTS[0]]) == 0
    assert "be6 is zero-shot for this model" in capsys.readouterr().err


def test_the_card_writer_and_list_handle_a_text_model(text_zoo, format_registry, capsys):
    """write_card on a text model (scores from a real evaluation): the card names the text modality, VAD as gold
    (not codec-made), BE5 as codec-made labels and BE6 zero-shot; `list pretrained` shows the row."""
    from emoembed.data.registry import default_data_registry
    from emoembed.model_cards import write_card
    from emoembed.tasks import Task
    from emoembed.training.pretrained_build import build_spec, recipe_for

    folder, model = text_zoo
    task = toy_task(format_registry)
    be6 = Task("toy_be6", format_registry.get("be6"), {"test": task.items["test"]},
               {"test": np.clip(np.abs(task.labels["test"][:, [0, 1, 2, 0, 1, 2]]), 0, 1)}, {}, "text")
    scores = {"toy": model.evaluate(task, "test"), "toy_be6": model.evaluate(be6, "test")}
    spec = build_spec("tiny-text")
    build = {"recipe": recipe_for(spec), "sha256": "0" * 64, "train_seconds": 1.0}
    card = write_card(folder / "tiny-text", "tiny-text", spec, model, default_data_registry(), scores, build)
    assert card["modality"] == "text" and card["formats"] == ["vad", "be5", "be6"]
    assert card["scores"]["toy vad"]["primary"] == pytest.approx(scores["toy"]["primary"])
    readme = (folder / "tiny-text" / "README.md").read_text(encoding="utf-8")
    assert "tags: [emotion, affective-computing, emotion-embeddings, text]" in readme
    assert "| toy | vad |" in readme and "| toy_be6 | be6 (zero-shot) |" in readme
    assert "emobank" in card["licences"] and "CC BY-SA 4.0" in readme
    capsys.readouterr()
    assert main(["list", "pretrained", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "emoembed/tiny-text" and row["modality"] == "text" and row["formats"] == "vad,be5,be6"
    assert (row["data"], row["augment"]) == ("emobank", "be5") and card["model_data"] == ["emobank"]
    assert f"toy vad r {scores['toy']['primary']:.3f}" in row["test"]


def test_the_text_recipe_of_the_catalogue_resolves():
    from emoembed.training.pretrained_build import build_spec, recipe_for

    for name in TEXT_MODELS:
        recipe = recipe_for(build_spec(name))
        assert recipe["modality"] == "text" and recipe["training"]["device"] == "cpu"
        assert recipe["encoder"]["backbone"] == "packaged:all-MiniLM-L6-v2"
        adapter = recipe["encoder"].get("lora") or recipe.get("export_lora")  # trained as one, or extracted at the end
        assert adapter["rank"] >= 1  # shipped as an adapter, not a copy of the backbone
        assert recipe["data"] == list(zoo.catalogue()[name]["data"])
    assert "text-minilm" in TEXT_MODELS
    recipe = recipe_for(build_spec("text-minilm"))
    assert recipe["data"] == ["emobank", "affectivetext:be6", "goemotions:ekman7"]
    assert recipe["augment"] == ["be5"] and recipe["training"]["max_train_items"] == {"goemotions": 8000}
    assert recipe["loss_weights"]["ccc"] == 1.0  # the regression tasks balanced against the cross-entropy (recipe note)
    assert recipe["encoder"].get("lora") is None and recipe["training"]["lr"] == 1e-4  # full fine-tuning, then
    assert recipe["export_lora"] == {"rank": 64, "alpha": 64.0, "dropout": 0.1,  # the rank-64 extraction is saved
                                     "target_modules": ["query", "key", "value", "dense"]}
    assert zoo.catalogue()["text-minilm"]["storage_dtype"] == "float16"
    smoke = recipe_for(build_spec("text-minilm"), {"training.epochs": 1, "training.max_train_items": 50})
    assert smoke["training"]["epochs"] == 1 and smoke["training"]["max_train_items"] == 50


def test_a_smoke_build_with_overrides_needs_another_folder(capsys):
    capsys.readouterr()
    assert main(["pretrained", "build", "text-minilm", "--set", "training.epochs=1"]) == 2
    assert "--set changes the recipe" in capsys.readouterr().err
    assert main(["pretrained", "card", "text-minilm", "--out", "/tmp/x", "--set", "training.epochs=1"]) == 2
    assert "--set is for `pretrained build`" in capsys.readouterr().err


def package_data_patterns() -> list[str]:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    return [p.strip() for p in cfg["options.package_data"]["emoembed.resources.pretrained"].split(",")]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_the_shipped_text_model_is_listed_packaged_and_predicts_offline(name, capsys):
    """Runs once `emoembed pretrained build text-minilm` has written pretrained/text-minilm/ (skipped before)."""
    if name not in zoo.pretrained_names():
        pytest.skip(f"pretrained/{name}/ is not built yet (emoembed pretrained build {name})")
    folder = zoo.pretrained_dir(name)
    files = sorted(p.relative_to(folder.parent).as_posix() for p in folder.iterdir())
    patterns = package_data_patterns()
    assert all(any(fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)  # in the wheel
    assert (folder / "model.safetensors").stat().st_size < 8_000_000  # adapter + projection + codec, no backbone
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert cfg["encoder"]["backbone"] == "packaged:all-MiniLM-L6-v2" and cfg["encoder"]["lora"]
    capsys.readouterr()
    assert main(["list", "pretrained", "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}[f"emoembed/{name}"]
    assert row["modality"] == "text" and {"vad", "be5", "ekman7"} <= set(row["formats"].split(","))
    assert "emobank vad r" in row["test"]
    model = EmotionModel.from_pretrained(f"emoembed/{name}")
    be5 = model.predict(["I can't stop smiling today", "My grandmother passed away last night."], "be5")
    assert be5.iloc[0]["joy"] > be5.iloc[1]["joy"] and be5.iloc[1]["sadness"] > be5.iloc[0]["sadness"]
    assert be5.iloc[0].drop("coverage", errors="ignore").idxmax() == "joy"  # the example: joy on top
    vad = model.predict(["I can't stop smiling today", "My grandmother passed away last night.",
                         "What a wonderful surprise, I'm so happy!"], "vad")
    assert vad.iloc[2]["valence"] > 0.3 and vad.iloc[1]["valence"] < -0.3
    # the example reads as positive (the rank-8 adapter trained directly gave valence −.09; the card's limits)
    assert vad.iloc[0]["valence"] > 0.05 and vad.iloc[0]["valence"] > vad.iloc[1]["valence"] + 0.5
    joy_first = be5.iloc[0].drop(["joy", "coverage"], errors="ignore")
    assert be5.iloc[0]["joy"] > 0.4 and be5.iloc[0]["joy"] > joy_first.max() + 0.1  # clearly on top (.46 vs anger .29)
    # sentiment4 has no training label: with the recipe's agreement term it agrees with ekman7's joy (it said neutral
    # and negative for these two before; docs/pretrained.md)
    sent = model.predict(["I can't stop smiling today", "can't believe we won!!! #blessed",
                          "My grandmother passed away last night.", "The meeting is at 3 pm in room 204.",
                          "I couldn't be happier", "😡"], "sentiment4")
    # the last two read negative and neutral before the codec's profile anchors
    assert sent["label"].tolist() == ["positive", "positive", "negative", "neutral", "positive", "negative"]


def test_an_unbuilt_text_entry_is_listed_as_not_built(tmp_path, monkeypatch, capsys):
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"later-text": {"kind": "model", "modality": "text"}}),
                                          encoding="utf-8")
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path)
    capsys.readouterr()
    assert main(["list", "pretrained", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {"name": "emoembed/later-text", "modality": "text", "formats": "", "data": "", "augment": "",
                   "codec": "", "licences": "", "size": "not built", "test": ""}
    with pytest.raises(ConfigError, match="no weights in .*emoembed pretrained build later-text"):
        EmotionModel.from_pretrained("emoembed/later-text")


def test_the_text_models_partly_zero_shot_classes_do_not_label_plain_facts():
    """goemotions28 is partly zero-shot for a model trained on Ekman's seven classes: the codec's thresholds for its
    fine classes (.08 for gratitude, fitted on Ekman labels) labelled neutral facts `gratitude,optimism,neutral`;
    the zero-shot rule keeps the classes at least half as probable as the top one. Facts get at most two
    Ekman-like classes; plain scheduling facts are neutral. (A fact about heat, "Water boils at 100 degrees
    Celsius", reads as fear: a known limit on the model card, asserted here so a change shows.)"""
    model = EmotionModel.from_pretrained("emoembed/text-minilm")
    facts = ["Water boils at 100 degrees Celsius at sea level.", "The train leaves at 8 and arrives at 10.",
             "The meeting is at 3 pm in room 204.", "The report has twelve pages."]
    out = model.predict(facts + ["My grandmother passed away last night."], format="goemotions28")
    ekman_like = {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}
    labels = [set(s.split(",")) for s in out["label"]]
    for got in labels[:4]:
        assert got <= ekman_like and len(got) <= 2, out["label"].tolist()
    assert labels[1] == labels[2] == labels[3] == {"neutral"}
    assert labels[0] == {"fear"}
    assert "sadness" in labels[4]


def test_the_packaged_text_model_is_not_zero_shot_in_be5_a_sub_format_of_its_be6(capsys):
    """emoembed/text-minilm was trained on AffectiveText be6 (and augmented with codec-made be5): be6's variables
    cover be5's, so `predict --format be5` prints no zero-shot / no-gold-labels note and `evaluate` does not flag
    be5 as zero-shot; surprise-free be5 is read from the be6 heads' gold-trained variables. Formats none of its
    training formats cover only in part stay partly zero-shot (nrc10: its trust, anticipation…)."""
    from emoembed.cli.common import test_table
    from emoembed.formats import default_registry
    from emoembed.tasks import Task

    capsys.readouterr()
    assert main(["predict", "--model", "emoembed/text-minilm", "--format", "be5", "I can't stop smiling today"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and out.out.splitlines()[0] == "text,joy,anger,sadness,fear,disgust,coverage"
    assert main(["predict", "--model", "emoembed/text-minilm", "--format", "nrc10", "I can't stop smiling today"]) == 0
    assert "note: nrc10 is partly zero-shot for this model: anger, disgust, fear, joy, sadness, surprise had" in capsys.readouterr().err
    model = EmotionModel.from_pretrained("emoembed/text-minilm")
    assert set(model.trained_formats) == {"be6", "ekman7", "vad"} and model.meta["augmented_formats"] == ["be5"]
    texts = ["What a wonderful day, I am so happy!", "My grandmother passed away last night.",
             "They lied to me again and I am furious.", "There is something moving in the dark basement."]
    y = np.array([[.9, 0, 0, 0, 0], [0, .1, .9, .2, 0], [0, .9, .1, 0, .4], [0, 0, 0, .9, 0]], dtype=np.float32)
    task = Task("toy_be5", default_registry().get("be5"), {"test": texts}, {"test": y}, modality="text")
    row = model.evaluate(task, "test")
    assert row["zero_shot"] is False and row["zero_shot_note"] is None
    assert "zero-shot" not in test_table({"toy_be5": row})
