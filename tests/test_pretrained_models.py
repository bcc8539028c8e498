"""The pretrained models shipped with the package: `emoembed/NAME` loads through the ordinary from_pretrained,
predicts sensibly offline, is listed with its card's numbers, stays inside the size budget; the cards' test
scores are what `emoembed evaluate` measures; `emoembed pretrained build` rebuilds weights bit for bit."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from emoembed.cli import main
from emoembed.codec import EmotionCodec
from emoembed.errors import ConfigError
from emoembed.model import EmotionModel, load_model
from emoembed.model_zoo import catalogue, card, folder_size, pretrained_dir, pretrained_names, zoo_dir

REPO = Path(__file__).resolve().parent.parent
BUDGET_BYTES = 25_000_000


WORD_MODELS = [n for n, s in catalogue().items() if s.get("modality") == "word"]
# catalogue entries whose weights are in the checkout; a new entry (the text model) is added to the catalogue before
# its long build has run, and is tested from then on (tests/test_pretrained_text.py)
BUILT = pretrained_names()
MUST_BE_BUILT = {"codec-full", "words-minilm", "words-glove50", "image-faces-effnet"}


def word_model_name() -> str:
    assert WORD_MODELS, "no word model in the catalogue"
    return WORD_MODELS[0]


def test_every_catalogue_model_is_built_with_its_card():
    assert MUST_BE_BUILT <= set(BUILT), BUILT
    for name, spec in catalogue().items():
        if name not in BUILT:
            assert not (zoo_dir() / name).exists() or not any((zoo_dir() / name).iterdir()), name  # no half-built folder
            continue
        folder = pretrained_dir(name)
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "card.json", "config.json", "model.safetensors"]
        info = card(name)
        assert info["name"] == f"emoembed/{name}" and info["kind"] == spec["kind"]
        assert info["scores"] and all(-1 <= r["primary"] <= 1 for r in info["scores"].values())
        readme = (folder / "README.md").read_text(encoding="utf-8")
        for section in ("## Intended use", "## Formats and scales", "## Training data and licences", "## Test scores",
                        "## Known limits", "## Rebuild"):
            assert section in readme, (name, section)
        assert f"emoembed pretrained build {name}" in readme and info["evaluate"][0] in readme
        for lic in info["licences"].values():  # each dataset's licence is in the card
            assert lic in readme


def test_packaged_models_fit_the_size_budget_and_hold_no_pickle():
    total = sum(folder_size(zoo_dir() / n) for n in pretrained_names())
    assert 0 < total <= BUDGET_BYTES, total
    suffixes = {p.suffix for p in zoo_dir().rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors", ".md", ".yaml"}, suffixes


def test_the_codec_loads_by_name_and_converts_sensibly():
    codec = EmotionCodec.from_pretrained("emoembed/codec-full")
    assert {"vad", "be5", "be6", "nrc10", "goemotions28", "ekman7", "fer7"} <= set(codec.formats)
    assert isinstance(load_model("emoembed/codec-full"), EmotionCodec)
    out = codec.convert([[0.8, 0.5, 0.3], [-0.7, 0.6, -0.4]], source="vad", target="be5")
    assert out.loc[0, "joy"] > out.loc[1, "joy"] and out.loc[1, "anger"] > out.loc[0, "anger"]


@pytest.mark.parametrize("name", BUILT)
def test_every_shipped_model_with_class_formats_carries_the_codecs_calibration(name):
    """Each multilabel format of a shipped codec (and of the codec inside each shipped model) has a decision rule
    fitted on paired dev data, and the codec knows its trained pairs (for the zero-shot note)."""
    cfg = json.loads((pretrained_dir(name) / "config.json").read_text(encoding="utf-8"))
    codec_cfg = cfg if cfg["model_type"] == "emotion-codec" else cfg["codec"]
    multilabel = [n for n, f in codec_cfg["formats"].items() if f["kind"] == "multilabel"]
    assert multilabel, name
    for fmt in multilabel:
        rule = codec_cfg["calibration"][fmt]
        assert rule["fitted_on"].startswith("dev split of "), (name, fmt)
        assert set(rule["thresholds"]) == set(codec_cfg["formats"][fmt]["variables"])
        assert 1 <= rule["max_labels"] < len(codec_cfg["formats"][fmt]["variables"])
    assert ["goemotions_ekman", "goemotions28", "ekman7"] in codec_cfg["trained_pairs"]
    loaded = load_model(f"emoembed/{name}")  # the integrity checks (digests in config.json) still pass
    codec = loaded if isinstance(loaded, EmotionCodec) else loaded.codec
    assert set(codec.calibration) == set(multilabel)


def test_the_shipped_codec_gives_few_goemotions_labels_per_vad_row(tmp_path, capsys):
    """VAD ratings → GoEmotions 28 through emoembed/codec-full: at most the calibration's max labels per row
    (uncalibrated, every class was above 0.5: 17–24 labels per row), and the zero-shot note is printed."""
    path = tmp_path / "vad4.csv"
    path.write_text("word,valence,arousal,dominance\nvacation,8.53,5.67,7.23\nfuneral,1.6,6.1,3.0\n"
                    "table,5.2,3.1,5.5\nmidpoint,5,5,5\n", encoding="utf-8")
    rule = EmotionCodec.from_pretrained("emoembed/codec-full").calibration["goemotions28"]
    capsys.readouterr()
    assert main(["predict", "--model", "emoembed/codec-full", "--source-format", "vad", "--input", str(path),
                 "--format", "goemotions28", "--input-scale", "1,9"]) == 0
    out, err = capsys.readouterr()
    import pandas as pd
    from io import StringIO

    frame = pd.read_csv(StringIO(out), keep_default_na=False)
    assert list(frame["word"]) == ["vacation", "funeral", "table", "midpoint"]
    counts = [len(x.split(",")) for x in frame["label"]]
    assert all(rule["min_labels"] <= c <= rule["max_labels"] for c in counts), counts
    assert "vad → goemotions28 is zero-shot for this codec" in err and "zero-shot rule" in err
    labels = dict(zip(frame["word"], frame["label"]))  # through the equivalence anchors (docs/codec.md)
    assert "joy" in labels["vacation"].split(",") and labels["table"] == "neutral"
    assert set(labels["funeral"].split(",")) <= {"sadness", "grief", "fear", "disgust", "anger", "disappointment", "remorse"}


def test_the_shipped_codec_reads_classes_across_its_unlinked_groups():
    """FER faces and Ekman classes share no paired data with BE5: the anchors make each basic-emotion class decode
    as that emotion alone, inside BE5's range (before them a FER 'sad' gave joy, anger and sadness all 1.0)."""
    codec = EmotionCodec.from_pretrained("emoembed/codec-full")
    for src, names in {"fer7": ["happy", "angry", "sad", "fear", "disgust"],
                       "ekman7": ["joy", "anger", "sadness", "fear", "disgust"]}.items():
        be5 = codec.convert([[float(v == n) for v in codec.formats[src].variables] for n in names], src, "be5", clip=False)
        assert (be5.to_numpy().argmax(1) == range(5)).all(), be5.round(2)
        assert be5.to_numpy().min() > -0.3 and be5.to_numpy().max() < 1.3, be5.round(2)
        off = be5.to_numpy()[~np.eye(5, dtype=bool)]
        assert off.max() < 0.25, be5.round(2)  # the other emotions stay low
    assert codec.same_island("fer7", "be5") is False and codec.same_island("ekman7", "goemotions28") is True


@pytest.mark.parametrize("name", WORD_MODELS)
def test_the_word_models_predict_by_name_offline(name, capsys):
    model = EmotionModel.from_pretrained(f"emoembed/{name}")
    be5 = model.predict(["happy", "grief", "furious"], "be5")
    assert be5.loc["happy", "joy"] > be5.loc["grief", "joy"]
    assert be5.loc["grief", "sadness"] > be5.loc["happy", "sadness"]
    assert be5.loc["furious", "anger"] > be5.loc["happy", "anger"]
    capsys.readouterr()
    assert main(["predict", "--model", name, "--format", "vad", "happy", "grief"]) == 0  # the bare name works too
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("word,valence") and len(rows) == 3
    assert float(rows[1].split(",")[1]) > 0.3 and float(rows[2].split(",")[1]) < -0.1


@pytest.mark.realdata
def test_words_minilm_reads_words_with_no_clear_emotion_as_neutral_in_class_formats():
    """No training label of words-minilm is a class format: its GoEmotions/Ekman outputs come through the codec's
    space. Without the agreement term of its recipe a word's embedding was free in the directions the VAD/BE5
    heads do not read, and of the 512 EmoMap test words whose BE5 intensities all stay below .25 only 9 % (ekman7)
    and 15 % (goemotions28) were labelled neutral (`table` → joy; goemotions28 love). With it (agreement 1,
    compared on dev; benchmarks/word_recipes.py): 59 % / 79 %; on the codec with profile anchors (typical labels of
    each class tie the islands, docs/codec.md) 93 % / 97 %, and grief, funeral read sadness instead of fear."""
    from emoembed.data.registry import default_data_registry
    from emoembed.tasks import task_from_dataset

    model = EmotionModel.from_pretrained("emoembed/words-minilm")
    task = task_from_dataset(default_data_registry().dataset("emomap_warriner_be5"), "be5", list(model.formats))
    calm = task.labels["test"].max(axis=1) < 0.25
    words = [w for w, keep in zip(task.items["test"], calm) if keep]
    assert len(words) == 512
    with pytest.warns(UserWarning, match="several words"):  # EmoMap has a few phrases ('end table')
        assert (model.predict(words, "ekman7")["label"] == "neutral").mean() > 0.85  # .932 (.590 before profile anchors)
    assert (model.predict(words, "goemotions28")["label"] == "neutral").mean() > 0.9  # .971 (.789)
    items = ["table", "paper", "chair", "street", "happy", "vacation", "spider", "grief", "funeral"]
    expected = ["neutral"] * 4 + ["joy", "joy", "fear", "sadness", "sadness"]  # chair, street: joy; grief, funeral: fear before
    assert model.predict(items, "goemotions28")["label"].tolist() == expected
    assert model.predict(items, "ekman7")["label"].tolist() == expected


def test_list_pretrained_shows_each_models_card(capsys):
    capsys.readouterr()
    assert main(["list", "pretrained", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {f"emoembed/{n}" for n in catalogue()}
    for name in catalogue():
        r, info = rows[f"emoembed/{name}"], card(name)
        if name not in BUILT:
            assert r["size"] == "not built" and r["modality"] == catalogue()[name]["modality"], r
            continue
        assert r["formats"].split(",") == info["formats"]
        spec = catalogue()[name]
        if spec["kind"] == "codec":
            assert r["data"].split(",") == info["training_data"] and r["codec"] == r["augment"] == ""
        else:  # a content model: its own training data, apart from the codec it sits on
            assert r["data"].split(",") == info["model_data"] == [str(d) for d in spec["data"]]
            assert r["augment"] == ",".join(spec.get("augment", [])) == ",".join(info["augmented_formats"])
            assert r["codec"] == info["codec"] == f"emoembed/{spec['codec']}"
            assert info["codec_data"] == card(spec["codec"])["training_data"]
            assert set(info["training_data"]) == {d.split(":")[0] for d in info["model_data"]} | set(info["codec_data"])
        assert re.fullmatch(r"\d+(\.\d\d MB| kB)", r["size"])
        first = next(iter(info["scores"].values()))["primary"]
        assert f"{first:.3f}" in r["test"]
        assert "non-commercial research use" in r["licences"]  # every shipped model rests on NC/research-only data


def test_unknown_names_list_the_known_ones(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"unknown pretrained model 'emoembed/nope'; known: emoembed/codec-full"):
        EmotionModel.from_pretrained("emoembed/nope")
    capsys.readouterr()
    assert main(["predict", "--model", "emoembed/nope", "--format", "be5", "happy"]) == 2
    assert "unknown pretrained model" in capsys.readouterr().err
    # a folder of the same name in the working directory wins over the bare name
    monkeypatch.chdir(tmp_path)
    EmotionCodec.from_pretrained("emoembed/codec-full").save_pretrained(tmp_path / "codec-full")
    assert load_model("codec-full") is not None
    (tmp_path / "codec-full" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(Exception, match="model_type"):
        load_model("codec-full")


def test_missing_weights_say_how_to_rebuild(tmp_path, monkeypatch):
    import emoembed.model_zoo as zoo

    (tmp_path / "models.yaml").write_text("ghost: {kind: codec, recipe: default}\n", encoding="utf-8")
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="no weights in .*emoembed pretrained build ghost"):
        EmotionCodec.from_pretrained("emoembed/ghost")
    assert zoo.list_rows()[0]["size"] == "not built"


@pytest.mark.realdata
def test_codec_card_scores_are_what_evaluate_measures(capsys):
    info = card("codec-full")
    rows = {(r["pair"], r["source"], r["target"]): r["primary"] for r in info["test"]["rows"]}
    capsys.readouterr()
    assert main(["evaluate", "--model", "emoembed/codec-full", "--data", "binder,kapucu,warriner_emolex", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(got["rows"]) == 6 and got["pooled"] is not None
    for r in got["rows"]:
        assert r["primary"] == pytest.approx(rows[(r["pair"], r["source"], r["target"])], abs=1e-9)


@pytest.mark.realdata
@pytest.mark.slow
def test_word_card_scores_are_what_evaluate_measures(capsys):
    name = word_model_name()
    info = card(name)
    capsys.readouterr()
    assert main(["evaluate", "--model", f"emoembed/{name}", "--data", "warriner", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["results"]["warriner"]
    assert got["primary"] == pytest.approx(info["test"]["warriner"]["primary"], abs=1e-9)


def test_evaluate_on_a_codec_names_wrong_cards(capsys):
    capsys.readouterr()
    assert main(["evaluate", "--model", "emoembed/codec-full", "--data", "warriner"]) == 2
    assert "'warriner' is a dataset card; a codec is evaluated on pair cards" in capsys.readouterr().err
    assert main(["evaluate", "--model", "emoembed/codec-full", "--data", "binder", "--format", "be5"]) == 2
    assert "--codec and --format are for content models" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
def test_rebuilding_the_smallest_model_gives_bit_identical_weights(tmp_path, capsys):
    """`emoembed pretrained build words-glove50` (the quickest build: ~30 s CPU on the packaged codec) reproduces
    the shipped weights bit for bit and the same model card. (codec-full: the same, ~2 CPU-minutes; see
    docs/pretrained.md.)"""
    from emoembed.io import load_safetensors

    threads = torch.get_num_threads()
    capsys.readouterr()
    assert main(["pretrained", "build", "words-glove50", "--out", str(tmp_path / "rebuilt")]) == 0
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads  # the build's one thread is not left behind
    shipped = load_safetensors(pretrained_dir("words-glove50") / "model.safetensors")
    rebuilt = load_safetensors(tmp_path / "rebuilt" / "model.safetensors")
    assert shipped.keys() == rebuilt.keys()
    assert all(torch.equal(shipped[k], rebuilt[k]) for k in shipped)
    assert card("words-glove50")["weights_sha256"] == json.loads((tmp_path / "rebuilt" / "card.json").read_text())["weights_sha256"]
    assert "bit-identical to the shipped weights" in out
    shipped_cfg = json.loads((pretrained_dir("words-glove50") / "config.json").read_text(encoding="utf-8"))
    assert json.loads((tmp_path / "rebuilt" / "config.json").read_text(encoding="utf-8")) == shipped_cfg  # calibration included
    assert (pretrained_dir("words-glove50") / "README.md").read_text() == (tmp_path / "rebuilt" / "README.md").read_text()


@pytest.mark.parametrize("licence, restrictive", [
    ("CC BY-NC-ND 3.0 (non-commercial; shipped as an unmodified copy)", True),
    ("CC BY-NC 4.0 (NoRaRe compilation)", True),
    ("NRC EmoLex terms: research purposes only (commercial use needs a licence from NRC)", True),
    ("FER2013: Kaggle competition terms, research use only", True),
    ("not stated (SemEval-2007 task release)", True),
    ("MIT (JULIE Lab, EmoMap repository)", False),
    ("ODbL (Open Database License)", False),
    ("Apache-2.0 (google-research repository)", False),
    ("CC BY-SA 4.0", False),
])
def test_licences_that_restrict_the_weights_are_recognised(licence, restrictive):
    from emoembed.model_cards import is_restrictive

    assert is_restrictive(licence) is restrictive


@pytest.mark.parametrize("columns", [80, 120])
def test_list_pretrained_fits_the_terminal_and_keeps_every_field(columns, monkeypatch, capsys):
    """The default listing is one block per model wrapped to the terminal width: no line is longer, and nothing
    is cut — every format, training dataset, score (with its note) is there. --wide keeps one row per model."""
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()
    assert main(["list", "pretrained"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns
    flat = " ".join(out.split())
    for name in catalogue():
        spec = catalogue()[name]
        assert f"emoembed/{name}  ({spec.get('modality', 'codec')}, " in out
        if name not in BUILT:
            assert f"emoembed pretrained build {name}" in flat
            continue
        info = card(name)
        assert ", ".join(info["formats"]) in flat
        own = info.get("model_data", info["training_data"])  # a content model's own data; a codec's paired data
        assert f"data {', '.join(own)} " in flat
        if info["kind"] == "model":
            assert f"codec {info['codec']} " in flat and f"augment {', '.join(info['augmented_formats'])} " in flat
        for key, r in info["scores"].items():
            assert f"{key} " in flat and f"{r['primary']:.3f}" in flat
            if r.get("note"):
                assert " ".join(r["note"].split()) in flat
    assert main(["list", "pretrained", "--wide"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "modality", "formats", "data", "augment", "codec", "licences", "size", "test"]
    assert len(lines) == 2 + len(catalogue())
    words = next(line for line in lines if line.startswith("emoembed/words-minilm "))
    scores = card("words-minilm")["scores"]
    note = " ".join(scores["warriner vad"]["note"].split())
    last = f"afinn valence r {scores['afinn valence']['primary']:.3f}"
    assert note[-12:] in words and words.rstrip().endswith(last)  # the whole note and the last score, uncut


@pytest.mark.realdata
def test_evaluate_and_predict_agree_on_what_is_zero_shot(capsys):
    """A VAD-trained word model knows valence (evaluate used to call it zero-shot while predict, rightly, did not)."""
    assert main(["evaluate", "--model", "emoembed/words-minilm", "--data", "warriner:valence", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    row = row["results"]["warriner"]
    assert row["zero_shot"] is False and row["zero_shot_note"] is None
    assert main(["evaluate", "--model", "emoembed/words-minilm", "--data", "warriner:valence"]) == 0
    assert "(zero-shot)" not in capsys.readouterr().out


def test_list_pretrained_keeps_a_models_own_data_apart_from_its_codecs(capsys):
    """Issue 17: `data` of a word model listed the codec's 23 paired datasets (GoEmotions, FER2013 …) as if the
    word MLP had been trained on them. Now: its own data and augmentation, and the codec it sits on, apart."""
    capsys.readouterr()
    assert main(["list", "pretrained", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    glove = rows["emoembed/words-glove50"]
    assert (glove["data"], glove["augment"], glove["codec"]) == ("warriner", "be5,nrc10", "emoembed/codec-full")
    assert rows["emoembed/words-minilm"]["data"] == "warriner,emomap_warriner_be5"
    codec = rows["emoembed/codec-full"]
    assert "goemotions" in codec["data"].split(",") and "fer2013" in codec["data"].split(",") and codec["codec"] == ""
    assert "goemotions" not in glove["data"] and "non-commercial research use" in glove["licences"]
    readme = (pretrained_dir("words-glove50") / "README.md").read_text(encoding="utf-8")
    assert "This model was trained on `warriner`, with be5, nrc10 labels made from them by the codec" in readme
    assert "into the frozen codec `emoembed/codec-full`" in readme
    assert re.search(r"^\| warriner \| CC BY-NC-ND 3\.0 [^|]*\| this model and the codec \|$", readme, re.M)
    assert re.search(r"^\| goemotions \| Apache-2\.0 [^|]*\| the codec \|$", readme, re.M)
    assert main(["list", "pretrained"]) == 0
    out = capsys.readouterr().out
    block = out.split("emoembed/words-glove50")[1].split("\n\n")[0]
    assert re.search(r"^  data +warriner$", block, re.M) and re.search(r"^  augment +be5, nrc10$", block, re.M)
    assert re.search(r"^  codec +emoembed/codec-full ", block, re.M)


def test_the_api_says_what_is_zero_shot_as_predict_does():
    """The zero-shot note that `emoembed predict` prints comes with the API's DataFrames too (``attrs``)."""
    from emoembed.conversion import conversion_zero_shot_note, model_zero_shot_note

    model = load_model("emoembed/words-glove50")
    assert model.predict(["happy"], "vad").attrs["zero_shot_note"] is None
    note = model.predict(["happy"], "goemotions28").attrs["zero_shot_note"]
    assert note.startswith(model_zero_shot_note(model, "goemotions28") + "; its label is the most probable class")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["predict", "--model", "emoembed/words-glove50", "--format", "goemotions28", "happy"]) == 0
    assert f"note: {note}" in err.getvalue()  # the CLI prints the same note
    codec = EmotionCodec.from_pretrained(pretrained_dir("codec-full"))
    vad = [[0.6, 0.2, 0.1]]
    assert codec.convert(vad, "vad", "be5", input_scale=(-1, 1)).attrs["zero_shot_note"] is None  # paired (EmoMap)
    note = codec.convert(vad, "vad", "ekman7", input_scale=(-1, 1)).attrs["zero_shot_note"]
    assert note == conversion_zero_shot_note(codec, "vad", "ekman7")
    assert note.startswith("vad → ekman7 is zero-shot for this codec: no paired dataset")


@pytest.mark.realdata
def test_pretrained_calibrate_refits_a_models_own_rules_to_the_shipped_config(tmp_path):
    """`emoembed pretrained calibrate words-glove50 --out DIR` on a copy of the packaged folder rewrites the same
    config.json: the shipped rules are those the model's outputs give (what a build writes)."""
    import shutil

    src = pretrained_dir("words-glove50")
    dst = tmp_path / "glove"
    shutil.copytree(src, dst)
    assert main(["pretrained", "calibrate", "words-glove50", "--out", str(dst)]) == 0
    shipped = json.loads((src / "config.json").read_text(encoding="utf-8"))
    assert set(shipped["calibration"]) == {"nrc10"} and shipped["calibration"]["nrc10"]["min_labels"] == 0
    assert (dst / "config.json").read_bytes() == (src / "config.json").read_bytes()
