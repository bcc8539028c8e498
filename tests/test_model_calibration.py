"""A content model's own multilabel decision rules (emoembed.training.encoder.fit_model_calibration): fitted on its
outputs for its training datasets' dev split, saved in its config, used by predict and evaluate alike."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from emoembed.calibration import calibrate_codec, decide, label_strings
from emoembed.model import EmotionModel
from emoembed.recipes import resolve_encoder_recipe
from emoembed.tasks import task_from_dataset
from emoembed.training.encoder import calibrate_model, fit


@pytest.fixture(scope="module")
def bundled():
    from emoembed.data.registry import DataRegistry
    from emoembed.settings import bundled_data_dir

    return DataRegistry.load(roots=[bundled_data_dir()])


@pytest.fixture(scope="module")
def nrc_model(small_trained_codec, bundled, tmp_path_factory, one_torch_thread):
    """A tiny word model trained on Warriner VAD with codec-made NRC labels (augment nrc10): word vectors = a noisy
    random projection of each word's VAD, so the model's NRC probabilities are flatter than the codec's."""
    from emoembed.training.codec import load_pairs
    from emoembed.recipes import resolve_codec_recipe

    d = tmp_path_factory.mktemp("calib")
    codec = copy.deepcopy(small_trained_codec)
    pairs = load_pairs(resolve_codec_recipe({"pairs": ["warriner_emolex"]}), bundled, log=lambda *_: None)
    calibrate_codec(codec, pairs, {}, log=lambda *_: None)
    task = task_from_dataset(bundled.dataset("warriner"), "vad")
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 12))
    rows = [(w, y) for s in ("train", "dev", "test") for w, y in zip(task.items[s], task.labels[s])]
    (d / "vectors.txt").write_text("\n".join(w + " " + " ".join(f"{x:.4f}" for x in np.asarray(y) @ proj + 0.6 * rng.normal(size=12))
                                             for w, y in rows if " " not in w) + "\n", encoding="utf-8")
    recipe = resolve_encoder_recipe({"name": "t", "modality": "word", "seed": 5, "augment": ["nrc10"],
                                     "encoder": {"vectors": str(d / "vectors.txt"), "hidden": [16], "input_dropout": 0.0,
                                                 "dropout": 0.0},
                                     "training": {"epochs": 6, "batch_size": 32, "lr": 0.01, "patience": 100, "device": "cpu"}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOEMBED_CACHE", str(d / "cache"))
        res = fit(recipe, codec, [task], progress=False, log=lambda *_: None)
    model = EmotionModel.from_training(res, codec, [task], recipe)
    return model, task, d


def test_the_rule_is_fitted_on_the_models_outputs_and_used_by_predict(nrc_model, bundled):
    model, task, d = nrc_model
    lines = []
    rules = calibrate_model(model, [task], log=lines.append)
    assert set(rules) == {"nrc10"} and model.calibration == rules  # vad is a rating format: no rule
    rule = rules["nrc10"]
    assert rule["fitted_on"] == "this model's outputs on the dev split of warriner (codec-made from vad)"
    assert set(rule["thresholds"]) == set(model.format("nrc10").variables)
    assert lines == [f"calibrated nrc10 on this model's outputs: at most {rule['max_labels']} label(s), at least "
                     f"{rule['min_labels']}; {rule['fitted_on']}"]
    assert model.decision_rule("nrc10") is not model.codec.calibration["nrc10"]
    assert model.decision_rule("vad") is None
    # predict labels with the model's own rule
    words = task.items["dev"][:40]
    df = model.predict(words, "nrc10")
    fmt = model.format("nrc10")
    probs = df[list(fmt.variables)].to_numpy()
    assert df["label"].tolist() == label_strings(decide(probs, fmt, rule), fmt)
    # on dev the model's labels per word come nearer the codec's labels of the gold ratings than under the codec's rule
    import torch

    with torch.no_grad():
        made = model.codec.activate("nrc10", model.codec.decode("nrc10", model.codec.encode_labels(
            "vad", torch.as_tensor(np.asarray(task.labels["dev"], dtype=np.float32))))).numpy()
    target = decide(made, fmt, model.codec.calibration["nrc10"]).sum(1).mean()
    probs = model.predict(task.items["dev"], "nrc10")[list(fmt.variables)].to_numpy()
    own = decide(probs, fmt, rule).sum(1).mean()
    codec_rule = decide(probs, fmt, model.codec.calibration["nrc10"]).sum(1).mean()
    assert abs(own - target) < abs(codec_rule - target), (own, codec_rule, target)
    # saved and loaded with the model; refitting gives the same rule (a rebuild writes the same config)
    back = EmotionModel.from_pretrained(model.save_pretrained(d / "saved"))
    assert back.calibration == rules
    assert calibrate_model(back, [task], log=lambda *_: None) == rules


def test_evaluate_scores_the_labels_predict_gives(nrc_model, bundled):
    model, task, _ = nrc_model
    calibrate_model(model, [task], log=lambda *_: None)
    emolex = task_from_dataset(bundled.dataset("emolex"), "nrc10")
    split = "test" if emolex.items.get("test") else "train"
    out = model.evaluate(emolex, split)
    fmt = model.format("nrc10")
    df = model.predict(emolex.items[split], "nrc10")
    on = np.array([[v in lab.split(",") for v in fmt.variables] for lab in df["label"]])
    gold = np.asarray(emolex.labels[split]) > 0.5
    assert out["labels_per_item"] == pytest.approx(on.sum(1).mean())
    assert out["gold_labels_per_item"] == pytest.approx(gold.sum(1).mean())
    from sklearn.metrics import f1_score

    assert out["macro_f1"] == pytest.approx(f1_score(gold, on, average="macro", zero_division=0))
    assert out["decision_rule"] == model.calibration["nrc10"]["fitted_on"]


def test_the_default_evaluation_of_a_multilabel_format_stays_at_one_half():
    from emoembed.formats import default_registry
    from emoembed.metrics import evaluate_format

    fmt = default_registry().get("nrc10")
    pred = np.full((2, 10), 0.4)
    pred[0, 0] = 0.6
    gold = np.zeros((2, 10))
    gold[0, 0] = gold[1, 1] = 1
    plain = evaluate_format(pred, gold, fmt)
    assert plain["labels_per_item"] == 0.5 and plain["gold_labels_per_item"] == 1.0
    labels = pred > 0.3
    decided = evaluate_format(pred, gold, fmt, labels)
    assert decided["labels_per_item"] == 10.0 and decided["per_variable"]["anticipation"]["f1"] == pytest.approx(2 / 3)
