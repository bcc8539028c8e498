"""``emoembed plot``: head maps of a small trained codec (tied rows end up together), content maps of a tiny word
model coloured by gold labels or predictions, the PNG and CSV written, and bad input. Bundled data only."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.errors import ConfigError, DataError
from emoembed.formats import default_registry
from emoembed.model import EmotionModel
from emoembed.plotting import (
    content_coordinates,
    head_coordinates,
    plot_content,
    plot_heads,
    tie_similarity,
)
from emoembed.recipes import resolve_encoder_recipe
from emoembed.tasks import Task
from emoembed.training.encoder import fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOY = {"happy": (0.9, 0.5, 0.6), "joy": (0.95, 0.6, 0.5), "love": (0.9, 0.4, 0.5), "sunny": (0.7, 0.2, 0.4),
       "sad": (-0.8, -0.4, -0.5), "grief": (-0.9, -0.2, -0.6), "gloom": (-0.7, -0.5, -0.4), "tears": (-0.6, 0.1, -0.5),
       "angry": (-0.7, 0.8, 0.3), "rage": (-0.8, 0.9, 0.2), "fury": (-0.85, 0.9, 0.3), "calm": (0.5, -0.8, 0.3),
       "fear": (-0.8, 0.7, -0.7), "panic": (-0.7, 0.9, -0.8), "table": (0.0, -0.5, 0.0), "chair": (0.05, -0.6, 0.0)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def bundled():
    from emoembed.data.registry import DataRegistry
    from emoembed.settings import bundled_data_dir

    return DataRegistry.load(roots=[bundled_data_dir()])


@pytest.fixture(scope="module")
def small_codec(small_trained_codec) -> EmotionCodec:
    return small_trained_codec


@pytest.fixture(scope="module")
def warriner_test(bundled) -> Task:
    from emoembed.tasks import task_from_dataset

    return task_from_dataset(bundled.dataset("warriner"), "vad")


@pytest.fixture(scope="module")
def word_model(small_codec, warriner_test, tmp_path_factory) -> tuple[EmotionModel, Path]:
    """A tiny word model: 12-d vectors = a random projection of each Warriner word's VAD (+ noise), an MLP trained
    on 12 toy words into the small codec's space (OOV words → NaN). Returned with its saved directory."""
    d = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 12))
    vad = dict(TOY)
    for split in ("train", "dev", "test"):
        vad.update({w: tuple(y) for w, y in zip(warriner_test.items[split], warriner_test.labels[split])})
    lines = [w + " " + " ".join(f"{x:.4f}" for x in np.asarray(v) @ proj + 0.05 * rng.normal(size=12))
             for w, v in vad.items() if " " not in w]
    vectors = d / "vectors.txt"
    vectors.write_text("\n".join(lines) + "\n", encoding="utf-8")
    words = list(TOY)
    y = np.asarray([TOY[w] for w in words], dtype=np.float32)
    split = {"train": slice(0, 12), "dev": slice(12, 14), "test": slice(14, 16)}
    task = Task("toy", default_registry().get("vad"), {s: words[sl] for s, sl in split.items()},
                {s: y[sl] for s, sl in split.items()}, {v: [1, 9] for v in ("valence", "arousal", "dominance")}, "word")
    recipe = resolve_encoder_recipe({"name": "t", "modality": "word", "seed": 5,
                                     "encoder": {"vectors": str(vectors), "hidden": [16], "input_dropout": 0.0,
                                                 "dropout": 0.0, "oov": "skip"},
                                     "training": {"epochs": 20, "batch_size": 4, "lr": 0.01, "patience": 100, "device": "cpu"}})
    codec = copy.deepcopy(small_codec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOEMBED_CACHE", str(d / "cache"))
        res = fit(recipe, codec, [task], progress=False, log=lambda *_: None)
        model = EmotionModel.from_training(res, codec, [task], recipe)
        return model, model.save_pretrained(d / "model")


def check_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        w, h = im.size
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert w > 200 and h > 200
    assert colours is not None and len(colours) > 50  # a drawing, not a blank canvas
    return w, h


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------- heads
def test_head_coordinates_groups_and_tied_rows_land_together(small_codec):
    coords = head_coordinates(small_codec)
    assert list(coords.columns) == ["format", "variable", "group", "tied", "x", "y"]
    assert len(coords) == 3 + 5 + 10 and coords.index[0] == "vad.valence"
    assert coords.loc["be5.joy", "group"] == coords.loc["nrc10.joy", "group"] == "joy"
    assert coords.loc["be5.joy", "tied"] and coords.loc["nrc10.sadness", "tied"]
    # in a class, but nothing to tie it to among vad/be5/nrc10
    assert coords.loc["vad.arousal", "group"] == "arousal" and not coords.loc["vad.arousal", "tied"]
    assert coords.loc["nrc10.trust", "group"] == "trust" and not coords.loc["nrc10.trust", "tied"]
    tied_by_codec = {f"{f}.{small_codec.formats[f].variables[i]}" for fa, ia, fb, ib in small_codec.tied_rows
                     for f, i in ((fa, ia), (fb, ib))}
    assert set(coords.index[coords["tied"]]) == tied_by_codec
    ratio = coords.attrs["explained_variance"]
    assert len(ratio) == 2 and 1 >= ratio[0] >= ratio[1] > 0 and sum(ratio) <= 1
    assert coords.attrs["method"] == "pca"

    # full space: the tie loss made equivalent rows nearly parallel; an untrained codec shows no such thing
    sim = tie_similarity(small_codec)
    assert sim["tied_pairs"] == 5 and sim["untied_pairs"] == 90
    assert sim["tied_mean_cos"] > 0.9 and sim["untied_mean_cos"] < 0.3
    torch.manual_seed(0)
    untrained = tie_similarity(codec_for(["vad", "be5", "nrc10"], default_registry(), dim=16, hidden=[32]))
    assert untrained["tied_mean_cos"] < 0.5

    # and in the 2-D map: tied pairs are far closer than untied cross-format pairs
    xy = coords[["x", "y"]].to_numpy()
    rows = list(coords.index)
    tied, untied = [], []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if coords["format"].iloc[i] == coords["format"].iloc[j]:
                continue
            dist = float(np.linalg.norm(xy[i] - xy[j]))
            same = coords["tied"].iloc[i] and coords["group"].iloc[i] == coords["group"].iloc[j]
            (tied if same else untied).append(dist)
    assert len(tied) == 5 and max(tied) < 0.25 * float(np.mean(untied))


def test_head_coordinates_use_unit_rows_and_format_subset(small_codec):
    scaled = copy.deepcopy(small_codec)
    with torch.no_grad():
        scaled.heads["be5"].weight.mul_(10.0)  # only the direction of a head row counts
    a, b = head_coordinates(small_codec), head_coordinates(scaled)
    np.testing.assert_allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy(), atol=1e-6)
    sub = head_coordinates(small_codec, formats="be5,nrc10")
    assert sorted(set(sub["format"])) == ["be5", "nrc10"] and len(sub) == 15
    with pytest.raises(ConfigError, match="'plutchik9'"):
        head_coordinates(small_codec, formats=["be5", "plutchik9"])
    with pytest.raises(ConfigError, match="method must be one of"):
        head_coordinates(small_codec, method="tsne")


def test_plot_heads_writes_png_and_coordinates_csv(small_codec, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    out = plot_heads(small_codec, tmp_path / "plots" / "heads.png")
    assert out == tmp_path / "plots" / "heads.png"
    check_png(out)
    csv = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)
    assert list(csv.columns) == ["row", "format", "variable", "group", "tied", "x", "y"]
    expected = head_coordinates(small_codec).reset_index()
    assert list(csv["row"]) == list(expected["row"])
    np.testing.assert_allclose(csv[["x", "y"]].to_numpy(), expected[["x", "y"]].to_numpy(), atol=1e-5)
    assert csv.loc[csv["row"] == "nrc10.fear", "group"].item() == "fear"
    assert sorted(p.name for p in out.parent.iterdir()) == ["heads.csv", "heads.png"]  # no temp files left
    assert matplotlib.get_backend() == backend  # the caller's backend is untouched
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
    with pytest.raises(ConfigError, match="ending in .png"):
        plot_heads(small_codec, tmp_path / "heads.svg")


def test_importing_emoembed_loads_no_plotting_library():
    code = "import sys, emoembed, emoembed.cli, emoembed.plotting; print('matplotlib' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ---------------------------------------------------------------------------------------------- content
def test_content_coordinates_gold_prediction_and_classes(word_model, warriner_test):
    model, _ = word_model
    items = warriner_test.items["test"][:300]
    gold = pd.DataFrame(warriner_test.labels["test"][:300], columns=["valence", "arousal", "dominance"])
    gold.attrs["format"] = "vad"
    c = content_coordinates(model, items, "valence", gold=gold)
    assert list(c.columns) == ["item", "x", "y", "valence"] and list(c["item"]) == items
    assert c.attrs["color_source"] == "gold" and c.attrs["color_format"] == "vad" and not c.attrs["categorical"]
    np.testing.assert_allclose(c["valence"].to_numpy(), gold["valence"].to_numpy())
    assert abs(np.corrcoef(c["x"], c["valence"])[0, 1]) > 0.7  # the space is organised by valence
    assert c.attrs["explained_variance"][0] > 0.3

    p = content_coordinates(model, items[:40] + ["qqqzzzx"], "joy")  # no gold: the model's be5 prediction
    assert p.attrs["color_source"] == "prediction" and p.attrs["color_format"] == "be5"
    assert p.attrs["dropped"] == 1 and len(p) == 40  # the OOV word (NaN embedding) is left out
    np.testing.assert_allclose(p["joy"].to_numpy(), model.predict(items[:40], "be5")["joy"].to_numpy(), atol=1e-6)
    same = content_coordinates(model, items[:40], "be5.joy")
    np.testing.assert_allclose(same[["x", "y"]].to_numpy(), p[["x", "y"]].to_numpy(), atol=1e-6)
    happy = content_coordinates(model, items[:40], "happy")  # an alias of the joy class
    assert happy.attrs["color_by"] == "joy" and happy.attrs["color_format"] == "be5"

    top = content_coordinates(model, items[:40], "top", format="nrc10")
    assert top.attrs["categorical"] and set(top["top"]) <= set(model.format("nrc10").variables)
    strongest = content_coordinates(model, items[:40], "be5.top")  # the largest intensity of a regression format
    be5 = model.predict(items[:40], "be5")
    assert list(strongest["top"]) == list(be5.idxmax(axis=1))
    label = content_coordinates(model, items[:40], "label", format="nrc10")
    assert label["label"].map(lambda s: s == "(none)" or set(s.split(",")) <= set(model.format("nrc10").variables)).all()

    with pytest.raises(ConfigError, match="'happyness'"):
        content_coordinates(model, items, "happyness")
    with pytest.raises(ConfigError, match="no variable 'joy'"):
        content_coordinates(model, items, "joy", format="vad")
    with pytest.raises(ConfigError, match="regression format"):
        content_coordinates(model, items, "label", format="vad")
    with pytest.raises(ConfigError, match="'plutchik9'"):
        content_coordinates(model, items, "joy", format="plutchik9")
    with pytest.raises(DataError, match="empty"):
        content_coordinates(model, [], "valence")
    with pytest.raises(DataError, match="at least 3"):
        content_coordinates(model, ["happy", "qqqzzzx", "zzqqqx"], "valence")


def test_plot_content_continuous_and_categorical(word_model, tmp_path):
    model, _ = word_model
    words = list(TOY)
    out = plot_content(model, words, tmp_path / "valence.png", "valence")
    check_png(out)
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert list(csv.columns) == ["item", "x", "y", "valence"] and list(csv["item"]) == words
    assert csv.set_index("item").loc["happy", "valence"] > csv.set_index("item").loc["grief", "valence"]
    out2 = plot_content(model, words, tmp_path / "top.png", "top", format="nrc10")
    check_png(out2)
    assert set(pd.read_csv(out2.with_suffix(".csv"))["top"]) <= set(model.format("nrc10").variables)
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_plot_heads_from_codec_and_model_dirs(small_codec, word_model, tmp_path, capsys):
    codec_dir = small_codec.save_pretrained(tmp_path / "codec")
    out = tmp_path / "heads.png"
    assert main(["plot", "heads", "--model", str(codec_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} and {out.with_suffix('.csv')} (18 head rows of 3 formats; 10 rows in 5 tied equivalence classes)" in printed
    ratio = head_coordinates(small_codec).attrs["explained_variance"]
    assert f"PCA explained variance: PC1 {ratio[0]:.1%}, PC2 {ratio[1]:.1%}" in printed
    assert "mean cosine of head rows: tied pairs 0.9" in printed and "(n=5)" in printed
    check_png(out)
    _, model_dir = word_model
    out2 = tmp_path / "model_heads.png"
    assert main(["plot", "heads", "--model", str(model_dir), "--formats", "be5,nrc10", "--no-labels", "--out", str(out2)]) == 0
    assert len(pd.read_csv(out2.with_suffix(".csv"))) == 15
    assert main(["plot", "heads", "--model", str(codec_dir), "--formats", "vad,fer7", "--out", str(tmp_path / "x.png")]) == 2
    assert "--formats: this codec does not know 'fer7'" in capsys.readouterr().err


def test_cli_plot_content_data_items_and_input(word_model, warriner_test, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)  # bundled Warriner
    _, model_dir = word_model
    out = tmp_path / "w.png"
    assert main(["plot", "content", "--model", str(model_dir), "--data", "warriner", "--color", "valence",
                 "--limit", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(200 words, a fixed random 200 of 1032)" in printed
    assert "colour: vad.valence from gold labels of warriner (test, vad)" in printed and "PCA explained variance" in printed
    check_png(out)
    csv = pd.read_csv(out.with_suffix(".csv"))
    gold = dict(zip(warriner_test.items["test"], warriner_test.labels["test"][:, 0]))
    np.testing.assert_allclose(csv["valence"].to_numpy(), [gold[w] for w in csv["item"]], atol=1e-5)

    assert main(["plot", "content", "--model", str(model_dir), "--data", "warriner", "--color", "joy", "--limit", "100",
                 "--out", str(out)]) == 0
    assert "colour: be5.joy from prediction of the model" in capsys.readouterr().out

    src = tmp_path / "in.csv"
    src.write_text("id,term\n" + "".join(f"{i},{w}\n" for i, w in enumerate(TOY)))
    assert main(["plot", "content", "--model", str(model_dir), "--input", str(src), "--column", "term", "--color", "top",
                 "--format", "nrc10", "--out", str(tmp_path / "in.png")]) == 0
    assert "colour: nrc10.top from prediction" in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "in.csv")["item"]) == list(TOY)
    assert main(["plot", "content", "--model", str(model_dir), "--color", "arousal", "happy", "rage", "calm", "table",
                 "--out", str(tmp_path / "few.png")]) == 0
    assert len(pd.read_csv(tmp_path / "few.csv")) == 4


@pytest.mark.parametrize("args, message", [
    (["--color", "nosuchvar", "happy", "sad", "calm"], "no format of this model has a variable 'nosuchvar'"),
    (["--color", "joy", "--format", "nosuchfmt", "happy", "sad", "calm"], "cannot predict format 'nosuchfmt'"),
    (["--color", "valence", "--input", "MISSING.csv"], "--input MISSING.csv: no such file"),
    (["--color", "valence"], "nothing to plot"),
    (["--color", "joy", "--data", "warriner", "--color-source", "gold"], "no gold variable 'joy'"),
    (["--color", "valence", "--data", "goemotions"], "holds texts; this model encodes words"),
])
def test_cli_plot_content_errors_exit_2_and_write_nothing(word_model, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    _, model_dir = word_model
    out = tmp_path / "plots" / "bad.png"
    assert main(["plot", "content", "--model", str(model_dir), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emoembed plot: error:") and message in err and "\n" not in err
    assert not out.exists() and not out.with_suffix(".csv").exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_cli_plot_bad_model_and_out(small_codec, tmp_path, capsys):
    codec_dir = small_codec.save_pretrained(tmp_path / "codec")
    assert main(["plot", "content", "--model", str(codec_dir), "--color", "valence", "happy", "sad", "calm",
                 "--out", str(tmp_path / "c.png")]) == 2
    assert "is a codec; content plots need a model written by fit-encoder" in capsys.readouterr().err
    assert main(["plot", "heads", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "h.png")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["plot", "heads", "--model", str(codec_dir), "--out", str(tmp_path / "h.jpg")]) == 2
    assert "ending in .png" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.jpg"))
