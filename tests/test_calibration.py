"""Issue 14, kind 4: multilabel outputs come with decision rules fitted on the codec's paired dev data, saved with
the codec; `predict` says when a conversion or a format is zero-shot. Bundled data only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoembed.calibration import FALLBACK, decide, fit_rule, zero_shot_max_labels
from emoembed.cli import main
from emoembed.codec import EmotionCodec
from emoembed.formats import default_registry

CASES = Path(__file__).parent / "cases"


def test_decide_applies_thresholds_and_label_count_bounds():
    fmt = default_registry().get("sentiment4")  # positive, negative, ambiguous, neutral
    probs = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.05, 0.3], [0.45, 0.1, 0.1, 0.1]])
    assert decide(probs, fmt, None).sum(1).tolist() == [4, 0, 0]  # plain p > 0.5
    rule = {"thresholds": {"positive": 0.4, "negative": 0.5, "ambiguous": 0.5, "neutral": 0.5}, "max_labels": 2, "min_labels": 1}
    on = decide(probs, fmt, rule)
    assert on[0].tolist() == [True, True, False, False]  # capped at the 2 most probable
    assert on[1].tolist() == [False, False, False, True]  # at least one: the most probable
    assert on[2].tolist() == [True, False, False, False]  # 0.45 passes its own threshold of 0.4
    assert decide(probs, fmt, FALLBACK).sum(1).max() <= 3


def test_fit_rule_finds_thresholds_and_cardinality():
    rng = np.random.default_rng(0)
    fmt = default_registry().get("sentiment4")
    gold = np.zeros((2000, 4), dtype=bool)
    gold[np.arange(2000), rng.integers(0, 4, 2000)] = True  # exactly one label per item
    probs = np.clip(0.3 * gold + rng.uniform(0, 0.35, gold.shape), 0, 1)  # positives ~0.3–0.65, negatives 0–0.35
    rule = fit_rule(probs, gold, fmt, "synthetic")
    assert rule["max_labels"] == 1 and rule["min_labels"] == 1
    assert all(0.25 <= t <= 0.4 for t in rule["thresholds"].values()), rule["thresholds"]
    on = decide(probs, fmt, rule)
    assert (on.sum(1) == 1).all() and (on == gold).mean() > 0.95
    assert (decide(probs, fmt, None).sum(1) == 0).mean() > 0.5  # the plain 0.5 rule leaves most items unlabelled


@pytest.fixture(scope="module")
def calibrated_codec_dir(tmp_path_factory, one_torch_thread):
    """`emoembed map` on the bundled Warriner × EmoLex and GoEmotions × Ekman pairs (a few seconds)."""
    import emoembed.data.registry as reg_mod

    d = tmp_path_factory.mktemp("map")
    rec = d / "r.yaml"
    rec.write_text("name: cal\nseed: 3\npairs: [warriner_emolex, goemotions_ekman]\ncodec: {dim: 32, hidden: [64], dropout: 0.0}\n"
                   "training: {epochs: 3, steps_per_epoch: 80, batch_size: 128, lr: 0.005}\n")
    old = reg_mod._DEFAULT
    reg_mod._DEFAULT = None
    try:
        from emoembed.settings import DATA_ENV
        import os

        saved = os.environ.pop(DATA_ENV, None)
        assert main(["map", "--recipe", str(rec), "--out", str(d / "codec"), "--quiet"]) == 0
    finally:
        if saved is not None:
            os.environ[DATA_ENV] = saved
        reg_mod._DEFAULT = old
    return d / "codec"


def test_map_fits_saves_and_reports_the_calibration(calibrated_codec_dir):
    cfg = json.loads((calibrated_codec_dir / "config.json").read_text())
    assert set(cfg["calibration"]) == {"nrc10", "goemotions28", "ekman7"}
    go = cfg["calibration"]["goemotions28"]
    assert set(go["thresholds"]) == set(default_registry().get("goemotions28").variables)
    assert 1 <= go["max_labels"] <= 4 and go["min_labels"] == 1 and "goemotions_ekman (ekman7→goemotions28)" in go["fitted_on"]
    assert cfg["calibration"]["nrc10"]["max_labels"] >= 4  # EmoLex words carry several labels (mean 2.2)
    assert ["goemotions_ekman", "goemotions28", "ekman7"] in cfg["trained_pairs"]
    metrics = json.loads((calibrated_codec_dir / "metrics.json").read_text())
    rows = {r["direction"]: r for r in metrics["calibration_test"]}
    assert set(rows) == {"vad→nrc10", "ekman7→goemotions28", "goemotions28→ekman7"}
    r = rows["ekman7→goemotions28"]
    assert abs(r["labels_after"] - r["gold_labels"]) <= abs(r["labels_before"] - r["gold_labels"])
    assert r["macro_f1_after"] >= r["macro_f1_before"]
    assert "labels/item 0.5 → calibrated" in (calibrated_codec_dir / "results.md").read_text()


def test_converted_labels_stay_within_the_fitted_cardinality(calibrated_codec_dir, capsys, tmp_path):
    codec = EmotionCodec.from_pretrained(calibrated_codec_dir)
    k = codec.calibration["goemotions28"]["max_labels"]
    rc = main(["predict", "--model", str(calibrated_codec_dir), "--source-format", "vad", "--format", "goemotions28",
               "--input", str(CASES / "vad4.csv"), "--input-scale", "1,9", "--output", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 0 and "vad → goemotions28 is zero-shot for this codec" in err
    df = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    counts = [len([x for x in lab.split(",") if x]) for lab in df["label"]]
    assert all(1 <= c <= k for c in counts), counts  # not 12–22 of 28
    rc = main(["predict", "--model", str(calibrated_codec_dir), "--source-format", "goemotions28", "--format", "ekman7",
               "--input", str(CASES / "goemo_names.csv")])
    out, err = capsys.readouterr()
    assert rc == 0 and "zero-shot" not in err
    assert pd.read_csv(__import__("io").StringIO(out))["label"].tolist()[:2] == ["joy", "sadness"]


def test_codecs_without_calibration_still_load(calibrated_codec_dir, tmp_path):
    cfg = json.loads((calibrated_codec_dir / "config.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes((calibrated_codec_dir / "model.safetensors").read_bytes())
    (old / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k not in ("calibration", "trained_pairs")}))
    codec = EmotionCodec.from_pretrained(old)
    assert codec.calibration == {} and codec.paired_directly("vad", "goemotions28") is None
    x = np.array([[0.8, 0.3, 0.5]])
    plain = codec.convert(x, "vad", "nrc10")
    assert plain["label"].iloc[0] == ",".join(v for v in codec.format("nrc10").variables if plain[v].iloc[0] > 0.5)
    calibrated = EmotionCodec.from_pretrained(calibrated_codec_dir)
    np.testing.assert_allclose(plain.drop(columns="label").to_numpy(),
                               calibrated.convert(x, "vad", "nrc10").drop(columns="label").to_numpy(), atol=1e-6)


def test_a_perfectly_separating_direction_gets_thresholds_near_one_half():
    """Any threshold between the classes gives F1 1 on dev: the rule takes the one nearest 0.5, not the grid's
    lowest (.02 made a text model's Ekman output carry two labels per sentence)."""
    rng = np.random.default_rng(1)
    fmt = default_registry().get("sentiment4")
    gold = np.zeros((400, 4), dtype=bool)
    gold[np.arange(400), rng.integers(0, 4, 400)] = True
    probs = np.where(gold, rng.uniform(0.9, 1.0, gold.shape), rng.uniform(0.0, 0.01, gold.shape))
    rule = fit_rule(probs, gold, fmt, "synthetic")
    assert all(t == 0.5 for t in rule["thresholds"].values()), rule["thresholds"]


def test_a_threshold_above_one_half_never_hides_the_most_probable_class():
    fmt = default_registry().get("sentiment4")
    rule = {"thresholds": {"positive": 0.98, "negative": 0.5, "ambiguous": 0.3, "neutral": 0.5}, "max_labels": 2, "min_labels": 0}
    on = decide(np.array([[0.9, 0.1, 0.35, 0.1], [0.45, 0.1, 0.2, 0.1]]), fmt, rule)
    assert on[0].tolist() == [True, False, True, False]  # positive (.9 > .5, the top class) and ambiguous (≥ .3)
    assert on[1].tolist() == [False, False, False, False]  # top class below .5 and below its threshold: off


def test_zero_shot_sources_ignore_the_fitted_thresholds():
    """Thresholds fitted on Ekman → GoEmotions (.08 for gratitude) must not label a neutral word read from VAD:
    across islands the stated rule keeps the classes at least half as probable as the most probable one."""
    fmt = default_registry().get("sentiment4")
    rule = {"thresholds": {"positive": 0.08, "negative": 0.08, "ambiguous": 0.08, "neutral": 0.5}, "max_labels": 2, "min_labels": 1}
    probs = np.array([[0.12, 0.10, 0.11, 0.47], [0.9, 0.05, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    assert decide(probs, fmt, rule)[0].tolist() == [True, False, True, False]  # fitted thresholds: wrong here
    on = decide(probs, fmt, rule, zero_shot=True)
    assert on[0].tolist() == [False, False, False, True]
    assert on[1].tolist() == [True, False, True, False]
    assert on[2].sum() == 2  # ties: capped at the rule's max_labels
    assert decide(probs, fmt, None, zero_shot=True).sum(1).max() <= 3  # no rule: the fallback bounds


def test_the_zero_shot_rule_keeps_the_formats_gold_label_cardinality():
    """Across islands the relative rule alone gave Warriner's test words 2.55 GoEmotions labels each (gold: 1.18
    per comment): the zero-shot rule keeps at most the format's gold label cardinality — the mean gold labels per dev
    item saved with the rule (``dev_mean_labels``), rounded, at least 1, at most ``max_labels``."""
    fmt = default_registry().get("sentiment4")
    probs = np.array([[0.9, 0.05, 0.6, 0.1], [0.2, 0.2, 0.2, 0.2], [0.3, 0.28, 0.1, 0.05]])
    rule = {"thresholds": None, "max_labels": 3, "min_labels": 1, "dev_mean_labels": 1.18}
    assert zero_shot_max_labels(rule, fmt) == 1
    on = decide(probs, fmt, rule, zero_shot=True)
    assert on.tolist() == [[True, False, False, False], [True, False, False, False], [True, False, False, False]]
    nrc_like = {**rule, "dev_mean_labels": 2.35}  # NRC EmoLex words carry 2.35 labels: two
    assert decide(probs, fmt, nrc_like, zero_shot=True).sum(1).tolist() == [2, 2, 2]
    assert decide(probs, fmt, nrc_like, zero_shot=True)[2].tolist() == [True, True, False, False]
    assert zero_shot_max_labels({**rule, "dev_mean_labels": 1.5}, fmt) == 2  # halves round up
    assert zero_shot_max_labels({**rule, "dev_mean_labels": 1.49}, fmt) == 1
    assert zero_shot_max_labels({**rule, "dev_mean_labels": 5.2}, fmt) == 3  # never above the fitted max_labels
    assert zero_shot_max_labels({**rule, "dev_mean_labels": 0.3}, fmt) == 1  # at least one
    old = {k: v for k, v in rule.items() if k != "dev_mean_labels"}  # a rule without the cardinality: max_labels
    assert zero_shot_max_labels(old, fmt) == 3 and decide(probs, fmt, old, zero_shot=True).sum(1).tolist() == [2, 3, 2]
    assert zero_shot_max_labels(None, fmt) == FALLBACK["max_labels"]
    # sources of the format's own island keep the fitted thresholds and max_labels: the cap is for zero-shot only
    assert decide(probs, fmt, rule).sum(1).tolist() == [2, 1, 1]
    fitted = fit_rule(probs, np.array([[1, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool), fmt, "test")
    assert fitted["dev_mean_labels"] == pytest.approx(4 / 3)  # what the cap is derived from, saved with every rule


def test_shipped_models_give_zero_shot_goemotions_and_ekman_labels_at_their_gold_cardinality():
    """`predict --model emoembed/words-minilm --format goemotions28` gave 2.86 labels per word on these words
    (GoEmotions' gold: 1.18 per comment, Ekman's 1.09): now one, the most probable class, and the note says so."""
    from emoembed.model import EmotionModel

    words = ["happy", "grief", "furious", "spider", "vacation", "table", "funeral"]
    model = EmotionModel.from_pretrained("emoembed/words-minilm")
    for target in ("goemotions28", "ekman7"):
        fmt = model.format(target)
        assert model._uses_zero_shot_rule(target)
        assert model.codec.calibration[target]["dev_mean_labels"] == pytest.approx(
            {"goemotions28": 1.1758, "ekman7": 1.0907}[target], abs=1e-4)
        out = model.predict(words, target)
        probs = out[list(fmt.variables)].to_numpy()
        assert out["label"].tolist() == [fmt.variables[j] for j in probs.argmax(1)]
        assert out["label"].iloc[0] == "joy" and out["label"].iloc[4] == "joy"
    codec = EmotionCodec.from_pretrained("emoembed/codec-full")
    conv = codec.convert([[8.53, 5.67, 7.23], [1.6, 6.1, 3.0], [5.2, 3.1, 5.5]], "vad", "goemotions28", input_scale=(1, 9))
    assert conv["label"].tolist() == ["joy", "fear", "neutral"]
    nrc = codec.convert([[0.0] * 6 + [1.0]], "ekman7", "nrc10")  # into NRC (2.35 labels per word): up to two
    assert 1 <= len(nrc["label"].iloc[0].split(",")) <= 2


def test_a_format_without_a_neutral_class_may_give_no_label():
    """NRC EmoLex says "no emotion" with no label. nrclex's EmoLex holds only words with an association, so its dev
    data always carry a label; a rule fitted on them must still allow none (`table` got NRC `trust,positive`), and the
    zero-shot rule labels only classes above 0.5 there. Formats with a neutral class keep at least one label."""
    from emoembed.calibration import has_neutral_class
    from emoembed.formats import default_registry

    reg = default_registry()
    nrc, ekman = reg.get("nrc10"), reg.get("ekman7")
    assert not has_neutral_class(nrc) and has_neutral_class(ekman) and has_neutral_class(reg.get("goemotions28"))
    rng = np.random.default_rng(0)
    gold = np.zeros((200, 10), bool)
    gold[np.arange(200), rng.integers(0, 10, 200)] = True  # every dev word has a label
    probs = np.clip(gold * 0.7 + rng.uniform(0, 0.3, gold.shape), 0, 1)
    rule = fit_rule(probs, gold, nrc, "toy")
    assert rule["min_labels"] == 0
    calm = np.full((1, 10), 0.2)  # a word with no clear association
    assert decide(calm, nrc, rule).sum() == 0
    assert decide(calm, nrc, rule, zero_shot=True).sum() == 0
    from emoembed.calibration import zero_shot_rule_text

    assert "half as probable as the most probable one and above 0.5 (no label is nrc10's neutral answer)" in \
        zero_shot_rule_text({**rule, "max_labels": 6, "dev_mean_labels": 2.35}, nrc)
    assert "the most probable class if above 0.5 (no label is nrc10's neutral answer), one per item" in \
        zero_shot_rule_text({**rule, "max_labels": 1}, nrc)
    assert "above 0.5" not in zero_shot_rule_text({"max_labels": 3, "dev_mean_labels": 1.6}, reg.get("goemotions28"))
    strong = calm.copy()
    strong[0, nrc.index("anger")] = 0.8
    assert decide(strong, nrc, rule, zero_shot=True)[0].tolist() == [v == "anger" for v in nrc.variables]
    ek_gold = np.zeros((200, 7), bool)
    ek_gold[np.arange(200), rng.integers(0, 7, 200)] = True
    ek_rule = fit_rule(np.clip(ek_gold * 0.7 + rng.uniform(0, 0.3, ek_gold.shape), 0, 1), ek_gold, ekman, "toy")
    assert ek_rule["min_labels"] == 1 and decide(np.full((1, 7), 0.2), ekman, ek_rule).sum() == 1
