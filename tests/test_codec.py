"""Stage 1: the codec, its objective, persistence, label conversion and the `map`/`predict` verbs.
Runs on the bundled and package-shipped data only (no EMOEMBED_DATA needed)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.data.registry import DataRegistry
from emoembed.errors import CheckpointError, ConfigError, EmoembedError
from emoembed.recipes import resolve_codec_recipe as resolve_recipe
from emoembed.training.codec import codec_step_loss, evaluate_codec, load_pairs, mean_primary, train_codec

SMALL = {"epochs": 6, "steps_per_epoch": 60, "batch_size": 64, "lr": 0.002, "patience": 100}


@pytest.fixture(scope="module")
def registry():
    """Bundled and package-shipped data only, whatever EMOEMBED_DATA says."""
    from emoembed.settings import bundled_data_dir

    return DataRegistry.load(roots=[bundled_data_dir()])


def recipe(pairs, **overrides):
    raw = {"name": "t", "seed": 3, "pairs": pairs, "training": dict(SMALL)}
    for k, v in overrides.items():
        if isinstance(v, dict) and k in raw:
            raw[k].update(v)
        else:
            raw[k] = v
    return resolve_recipe(raw)


@pytest.fixture(scope="module")
def word_pairs(registry):
    r = recipe(["warriner_emomap", "vader_emolex"])
    return r, load_pairs(r, registry)


@pytest.fixture(scope="module")
def trained(word_pairs, registry):
    r, pairs = word_pairs
    return train_codec(r, pairs, registry.formats, progress=False, log=lambda *a: None)


def test_codec_shapes_and_bias_free_heads(registry):
    codec = codec_for(["vad", "be5", "nrc10"], registry.formats, dim=16, hidden=[8])
    assert codec.heads["be5"].bias is None and codec.heads["be5"].weight.shape == (5, 16)
    emb = codec.encode_labels("vad", torch.zeros(4, 3))
    assert emb.shape == (4, 16)
    assert codec.decode("nrc10", emb).shape == (4, 10)
    probs = codec.activate("nrc10", codec.decode("nrc10", emb))
    assert float(probs.detach().min()) >= 0 and float(probs.detach().max()) <= 1
    # ties come from mappings/equivalences.yaml: joy/anger/sadness/fear/disgust between be5 and nrc10
    tied = {(fa, codec.formats[fa].variables[ia], fb, codec.formats[fb].variables[ib]) for fa, ia, fb, ib in codec.tied_rows}
    assert ("be5", "joy", "nrc10", "joy") in tied and len(tied) == 5


def test_training_reaches_useful_correlations(trained, word_pairs):
    _, pairs = word_pairs
    rows = {(r["pair"], r["source"], r["target"]): r for r in evaluate_codec(trained.codec, pairs, "test")}
    assert rows[("warriner_emomap", "vad", "be5")]["primary"] > 0.85
    assert rows[("vader_emolex", "nrc10", "valence")]["primary"] > 0.7
    assert trained.best_epoch >= 1 and len(trained.history) == SMALL["epochs"]


def test_tied_heads_end_more_aligned_than_untied(word_pairs, registry):
    r, pairs = word_pairs

    def tied_cos(weight: float) -> float:
        rr = copy.deepcopy(r)
        rr["loss_weights"]["tie"] = weight
        codec = train_codec(rr, pairs, registry.formats, progress=False, log=lambda *a: None).codec
        cos = [torch.nn.functional.cosine_similarity(codec.heads[fa].weight[ia], codec.heads[fb].weight[ib], dim=0).item()
               for fa, ia, fb, ib in codec.tied_rows]
        return float(np.mean(cos))

    with_tie, without = tied_cos(1.0), tied_cos(0.0)
    assert with_tie > 0.9
    assert with_tie > without + 0.2


def test_every_loss_weight_is_applied(registry):
    torch.manual_seed(0)
    codec = codec_for(["vad", "nrc10"], registry.formats, dim=8, hidden=[8])
    fa, fb = registry.formats["vad"], registry.formats["nrc10"]
    ya, yb = torch.rand(5, 3) * 2 - 1, (torch.rand(5, 10) > 0.5).float()
    zero = {k: 0.0 for k in ("autoencode", "mapping", "embedding", "tie")}
    codec.eval()
    _, parts = codec_step_loss(codec, fa, fb, ya, yb, zero, {})
    for term in zero:
        total, _ = codec_step_loss(codec, fa, fb, ya, yb, {**zero, term: 2.5}, {})
        assert total.item() == pytest.approx(2.5 * parts[term], rel=1e-5), term
    # per-format weights scale that format's autoencoding and mapping terms
    _, scaled = codec_step_loss(codec, fa, fb, ya, yb, zero, {"nrc10": 0.0})
    assert scaled["autoencode"] < parts["autoencode"] and scaled["embedding"] == pytest.approx(parts["embedding"])


def test_loss_weights_change_the_result(word_pairs, registry):
    r, pairs = word_pairs
    a = copy.deepcopy(r)
    b = copy.deepcopy(r)
    b["loss_weights"]["embedding"] = 0.0
    b["loss_weights"]["mapping"] = 0.2
    ca = train_codec(a, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    cb = train_codec(b, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    x = np.array([[0.8, 0.2, 0.5]])
    assert not np.allclose(ca.convert(x, "vad", "be5").to_numpy(), cb.convert(x, "vad", "be5").to_numpy(), atol=1e-3)


def test_same_seed_same_codec(word_pairs, registry):
    r, pairs = word_pairs
    c1 = train_codec(r, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    c2 = train_codec(r, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    for k, v in c1.state_dict().items():
        assert torch.equal(v, c2.state_dict()[k]), k


def test_save_load_round_trip_is_bit_identical(trained, tmp_path):
    trained.codec.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json"}
    loaded = EmotionCodec.from_pretrained(tmp_path)
    x = np.random.default_rng(0).uniform(-1, 1, size=(50, 3))
    a = trained.codec.convert(x, "vad", "be5").to_numpy()
    b = loaded.convert(x, "vad", "be5").to_numpy()
    assert np.array_equal(a, b)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["formats"]["be5"]["variables"] == ["joy", "anger", "sadness", "fear", "disgust"]
    assert "valence" in cfg["equivalences"] and cfg["dim"] == 100


def test_conversion_of_a_very_positive_word_is_plausible(trained, registry):
    row = registry.dataset("warriner").row("vacation")  # V 8.53, A 5.67, D 7.23 on 1–9
    vad = [row["vad:valence"], row["vad:arousal"], row["vad:dominance"]]
    be5 = trained.codec.convert(vad, "vad", "be5").iloc[0]
    assert be5["joy"] > 0.5 and be5["joy"] > 3 * be5["sadness"] and be5["joy"] > 3 * be5["fear"]
    # the same through the original rating scale and back out on 1–5
    be5_15 = trained.codec.convert([[8.53, 5.67, 7.23]], "vad", "be5", input_scale=(1, 9), output_scale=(1, 5)).iloc[0]
    assert be5_15["joy"] == pytest.approx(1 + 4 * be5["joy"], abs=0.05)
    raw = trained.codec.convert([[1.0, 1.0, 1.0]], "vad", "be5", clip=False).to_numpy()
    clipped = trained.codec.convert([[1.0, 1.0, 1.0]], "vad", "be5").to_numpy()
    assert clipped.min() >= 0 and clipped.max() <= 1 and np.allclose(np.clip(raw, 0, 1), clipped)
    neg = trained.codec.convert([[1.5, 6.0, 2.5]], "vad", "nrc10", input_scale=(1, 9)).iloc[0]
    assert neg["negative"] > 0.5 > neg["positive"] and "negative" in neg["label"]


def test_convert_errors_are_clear(trained):
    with pytest.raises(ConfigError, match="does not know the format 'fer7'"):
        trained.codec.convert([[0, 0, 0]], "vad", "fer7")
    with pytest.raises(EmoembedError, match="must have 3 columns"):
        trained.codec.convert([[0.1, 0.2]], "vad", "be5")
    with pytest.raises(EmoembedError, match=r"row index 1 \(0-based\), column 'arousal'"):
        trained.codec.convert([[0.1, 0.2, 0.3], [0.1, float("nan"), 0.3]], "vad", "be5")
    with pytest.raises(EmoembedError, match="outside the input scale"):
        trained.codec.convert([[10, 5, 5]], "vad", "be5", input_scale=(1, 9))
    with pytest.raises(EmoembedError, match="lacks column"):
        trained.codec.convert(pd.DataFrame({"valence": [0.1]}), "vad", "be5")


def test_convert_matches_dataframe_columns_case_insensitively_as_the_cli_does(trained):
    """`Valence`/`AROUSAL` headers (NRC-VAD's spelling) were "missing" in the API although the CLI matches them."""
    frame = pd.DataFrame({"Word": ["a", "b"], "Valence": [0.8, -0.6], "AROUSAL": [0.5, 0.2], " Dominance": [0.3, -0.4]})
    got = trained.codec.convert(frame, "vad", "be5", input_scale=(-1, 1))
    want = trained.codec.convert([[0.8, 0.5, 0.3], [-0.6, 0.2, -0.4]], "vad", "be5", input_scale=(-1, 1))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    with pytest.raises(EmoembedError, match="names are matched case-insensitively"):
        trained.codec.convert(frame.rename(columns={"AROUSAL": "A.Mean.Sum"}), "vad", "be5", input_scale=(-1, 1))


def test_mismatched_or_foreign_checkpoints_are_rejected(trained, tmp_path):
    trained.codec.save_pretrained(tmp_path / "ok")
    cfg = json.loads((tmp_path / "ok" / "config.json").read_text())
    bad = tmp_path / "bad"
    trained.codec.save_pretrained(bad)
    (bad / "config.json").write_text(json.dumps({**cfg, "dim": 64}))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        EmotionCodec.from_pretrained(bad)
    (bad / "config.json").write_text(json.dumps({**cfg, "checkpoint_format": 99, "emoembed_version": "9.0"}))
    with pytest.raises(CheckpointError, match="written by emoembed 9.0"):
        EmotionCodec.from_pretrained(bad)
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "emotion-model"}))
    with pytest.raises(CheckpointError, match="model_type"):
        EmotionCodec.from_pretrained(bad)
    with pytest.raises(CheckpointError, match="no config.json"):
        EmotionCodec.from_pretrained(tmp_path)
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        EmotionCodec.from_pretrained(bad)


def test_bad_recipes_are_rejected(registry):
    with pytest.raises(ConfigError, match="unknown field"):
        resolve_recipe({"pairs": ["warriner_emomap"], "epochz": 3})
    with pytest.raises(ConfigError, match="training: unknown field"):
        resolve_recipe({"pairs": ["warriner_emomap"], "training": {"epoch": 3}})
    with pytest.raises(ConfigError, match="at least one pair"):
        resolve_recipe({"pairs": []})
    with pytest.raises(ConfigError, match="loss_weights.tie must be a non-negative number"):
        resolve_recipe({"pairs": ["warriner_emomap"], "loss_weights": {"tie": -1}})
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        load_pairs(resolve_recipe({"pairs": ["nope"]}), registry)
    with pytest.raises(ConfigError, match="is a dataset card"):
        load_pairs(resolve_recipe({"pairs": ["warriner"]}), registry)


@pytest.mark.parametrize("domain_dim", [0, 4])
def test_resume_gives_the_same_codec_as_an_uninterrupted_run(word_pairs, registry, tmp_path, domain_dim):
    r, pairs = word_pairs
    r = copy.deepcopy(r)
    r["codec"]["domain_dim"] = domain_dim  # with domains the per-batch domain dropout draws must resume too
    full = train_codec(r, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    half = copy.deepcopy(r)
    half["training"]["epochs"] = 3
    train_codec(half, pairs, registry.formats, state_dir=tmp_path, progress=False, log=lambda *x: None)
    assert (tmp_path / "training_state.pt").exists()
    resumed = train_codec(r, pairs, registry.formats, state_dir=tmp_path, resume=True, progress=False, log=lambda *x: None).codec
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_resume_reads_a_codec_state_written_before_the_shared_scaffold(word_pairs, registry, tmp_path):
    """Pre-restructure codec states named the best weights ``best_model`` and stored no Python RNG state."""
    r, pairs = word_pairs
    full = train_codec(r, pairs, registry.formats, progress=False, log=lambda *x: None).codec
    half = copy.deepcopy(r)
    half["training"]["epochs"] = 3
    train_codec(half, pairs, registry.formats, state_dir=tmp_path, progress=False, log=lambda *x: None)
    path = tmp_path / "training_state.pt"
    st = torch.load(path, weights_only=True)
    st["best_model"] = st.pop("best_state")
    del st["py_rng"]
    torch.save(st, path)
    resumed = train_codec(r, pairs, registry.formats, state_dir=tmp_path, resume=True, progress=False, log=lambda *x: None).codec
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_map_and_predict_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    import emoembed.data.registry as reg_mod

    monkeypatch.setattr(reg_mod, "_DEFAULT", None)
    rec = tmp_path / "r.yaml"
    rec.write_text("name: tiny\nseed: 1\npairs: [vader_emolex, afinn_emolex]\n"
                   "training: {epochs: 3, steps_per_epoch: 40, batch_size: 64, lr: 0.003}\n"
                   "baseline: {epochs: 2, steps_per_epoch: 40}\n")
    out = tmp_path / "run"
    assert main(["map", "--recipe", str(rec), "--out", str(out), "--baseline", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "valence → nrc10" in printed and "baseline" in printed
    assert {"model.safetensors", "config.json", "metrics.json", "recipe.json", "results.md"} <= {p.name for p in out.iterdir()}
    assert not (out / "training_state.pt").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test"]) == 4 and len(metrics["baseline_test"]) == 4
    assert metrics["test_mean"] == pytest.approx(mean_primary(metrics["test"]))

    ratings = tmp_path / "ratings.csv"
    pd.DataFrame({"word": ["great", "awful"], "valence": [3.0, -3.2]}).to_csv(ratings, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), "--source-format", "valence", "--format", "nrc10", "--input", str(ratings),
                 "--input-scale=-4,4", "--output", str(pred)]) == 0
    df = pd.read_csv(pred)
    assert list(df.columns[:2]) == ["word", "anger"] and "label" in df.columns and len(df) == 2
    assert df.loc[0, "positive"] > df.loc[1, "positive"] and df.loc[1, "negative"] > df.loc[0, "negative"]

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"word": ["x"], "val": [1.0]}).to_csv(bad, index=False)
    assert main(["predict", "--model", str(out), "--source-format", "valence", "--format", "nrc10", "--input", str(bad)]) == 2
    assert "missing column(s) ['valence']" in capsys.readouterr().err
    assert main(["predict", "--model", str(out), "--source-format", "valence", "--format", "fer7", "--input", str(ratings)]) == 2
    assert "does not know the format 'fer7'" in capsys.readouterr().err
    assert not (tmp_path / "pred2.csv").exists()


def test_max_train_items_caps_only_the_training_split(registry):
    full = load_pairs(recipe(["warriner_emomap"]), registry)[0]
    capped = load_pairs(recipe(["warriner_emomap"], training={"max_train_items": 100}), registry)[0]
    assert capped.split_sizes() == {**full.split_sizes(), "train": 100}
    kept = capped.subset("train").items
    assert set(kept) <= set(full.subset("train").items) and len(set(kept)) == 100


def test_atomic_writes_have_plain_file_modes_and_leave_nothing_on_failure(tmp_path):
    import os

    from emoembed.io import atomic_write, save_safetensors_atomic

    mask = os.umask(0o022)
    try:
        path = save_safetensors_atomic({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
        assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: run folders are shared and copied

        def broken(tmp):
            tmp.write_text("half")
            raise OSError("disk full")

        from emoembed.errors import OutputError

        with pytest.raises(OutputError, match=r"cannot write .*table\.csv: disk full"):  # the user's path, one line
            atomic_write(tmp_path / "table.csv", broken)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    finally:
        os.umask(mask)
