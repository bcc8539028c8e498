"""Retrieval in the emotion space: exact top-k with deterministic ties, save/load/append, codec fingerprints,
emotion-label queries (a small codec trained on the bundled data + a tiny word model), a cross-modal word + image
index, and the ``index``/``search`` verbs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_training import WORDS

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.encoders.word import WordEncoder
from emoembed.formats import default_registry
from emoembed.model import EmotionModel
from emoembed.retrieval import (
    CodecMismatchError,
    EmotionIndex,
    IndexNotFoundError,
    RetrievalError,
    _topk_stable,
    codec_fingerprint,
    emotion_query,
    load_codec,
    values_query,
)
from emoembed.recipes import resolve_encoder_recipe
from emoembed.tasks import Task
from emoembed.training.encoder import fit

TINY_IMAGE = {"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32,
              "train_transform": [{"type": "Resize", "size": [32, 32]}],
              "eval_transform": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory) -> Path:
    """GloVe-style text file: 12-d vectors = a random projection of the VAD values + noise."""
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 12))
    lines = [w + " " + " ".join(f"{x:.5f}" for x in np.asarray(vad) @ proj + 0.05 * rng.normal(size=12))
             for w, vad in WORDS.items()]
    path = tmp_path_factory.mktemp("vec") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_codec(small_trained_codec) -> EmotionCodec:
    return small_trained_codec


@pytest.fixture(scope="module")
def word_model(vectors_file, small_codec, tmp_path_factory) -> EmotionModel:
    """A tiny word model trained on VAD labels of the toy words, into the small codec's space."""
    os.environ.setdefault("EMOEMBED_CACHE", str(tmp_path_factory.mktemp("cache")))
    words = list(WORDS)
    y = np.asarray([WORDS[w] for w in words], dtype=np.float32)
    task = Task("toy", default_registry().get("vad"), {"train": words[:14], "dev": words[14:], "test": words[14:]},
                {"train": y[:14], "dev": y[14:], "test": y[14:]}, {"valence": [1, 9], "arousal": [1, 9], "dominance": [1, 9]}, "word")
    r = resolve_encoder_recipe({"name": "t", "modality": "word", "seed": 5,
                                "encoder": {"vectors": str(vectors_file), "hidden": [16], "input_dropout": 0.0, "dropout": 0.0},
                                "training": {"epochs": 40, "batch_size": 4, "lr": 0.01, "patience": 100, "device": "cpu"}})
    res = fit(r, small_codec, [task], progress=False, log=lambda *_: None)
    return EmotionModel.from_training(res, small_codec, [task], r)


@pytest.fixture(scope="module")
def word_dir(word_model, tmp_path_factory) -> Path:
    return word_model.save_pretrained(tmp_path_factory.mktemp("models") / "words")


def hand_index(vectors, items=None, modalities=None) -> EmotionIndex:
    vectors = np.asarray(vectors, dtype=np.float32)
    idx = EmotionIndex(vectors.shape[1], "f" * 64)
    idx.embeddings = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    idx.items = list(items or [f"i{j}" for j in range(len(vectors))])
    idx.modalities = list(modalities or ["word"] * len(vectors))
    idx.sources = ["hand"] * len(vectors)
    return idx


# ---------------------------------------------------------------------------------------------- search
def test_topk_order_with_ties_is_by_score_then_row():
    #            row: 0        1        2           3            4         5        6
    idx = hand_index([[0, 1], [2, 0], [0.6, 0.8], [0.6, -0.8], [1, 0], [-1, 0], [0.6, 0.8]],
                     ["up", "east", "ne", "se", "east2", "west", "ne2"],
                     ["word", "word", "text", "word", "text", "image", "word"])
    res = idx.search(np.array([3.0, 0.0]), k=5)  # unnormalised query: cosine all the same
    assert res["item"].tolist() == ["east", "east2", "ne", "se", "ne2"]  # 1, 1, .6 ×3 (rows 2 < 3 < 6), …
    assert res["rank"].tolist() == [1, 2, 3, 4, 5] and res["row"].tolist() == [1, 4, 2, 3, 6]
    np.testing.assert_allclose(res["cosine"], [1, 1, 0.6, 0.6, 0.6], atol=1e-6)
    assert idx.search(np.array([1.0, 0.0]), k=3)["item"].tolist() == ["east", "east2", "ne"]  # tie cut at the boundary
    both = idx.search(np.array([[1.0, 0.0], [0.0, -1.0]]), k=2)
    assert isinstance(both, list) and [b["item"].tolist() for b in both] == [["east", "east2"], ["se", "east"]]
    assert idx.search(np.array([1.0, 0.0]), k=50)["item"].tolist()[-1] == "west"  # k > N: all rows
    text = idx.search(np.array([1.0, 0.0]), k=5, modality="text")
    assert text["item"].tolist() == ["east2", "ne"] and set(text["modality"]) == {"text"}
    assert idx.search(np.array([1.0, 0.0]), k=1, modality=["image"])["item"].tolist() == ["west"]
    with pytest.raises(RetrievalError, match="shape"):
        idx.search(np.ones(3), k=2)
    with pytest.raises(RetrievalError, match="zero vector"):
        idx.search(np.zeros(2), k=2)
    with pytest.raises(RetrievalError, match="unknown modality"):
        idx.search(np.ones(2), modality="audio")


def test_topk_stable_many_ties_matches_a_full_sort():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=500).astype(np.float32)  # hundreds of ties per value
    for k in (1, 7, 130, 499, 500):
        expect = sorted(range(500), key=lambda i: (-scores[i], i))[:k]
        assert _topk_stable(scores, k).tolist() == expect


# ---------------------------------------------------------------------------------------------- persistence
def test_save_load_round_trip_and_append(word_model, word_dir, tmp_path):
    words = list(WORDS)
    full = EmotionIndex()
    stats = full.add(word_model, words, source=word_dir)
    assert stats == {"added": 16, "skipped_nan": 0, "skipped_oov": 0, "modality": "word", "source": str(word_dir.resolve())}
    np.testing.assert_allclose(np.linalg.norm(full.embeddings, axis=1), 1.0, atol=1e-5)
    assert full.fingerprint == codec_fingerprint(word_model.codec) and full.dim == 16
    q = word_model.encode(["happy", "rage", "table"])

    out = tmp_path / "idx"
    first = EmotionIndex()
    first.add(word_model, words[:9], source=word_dir)
    first.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.safetensors", "index.json", "items.jsonl"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary folder was renamed
    meta = json.loads((out / "index.json").read_text())
    assert meta["dim"] == 16 and meta["count"] == 9 and meta["counts"] == {"word": 9}
    assert meta["fingerprint"] == full.fingerprint and meta["models"][0]["path"] == str(word_dir.resolve())
    loaded = EmotionIndex.load(out)
    for a, b in zip(first.search(q, k=4), loaded.search(q, k=4)):
        pd.testing.assert_frame_equal(a, b)

    loaded.add(word_model, words[9:], source=word_dir)  # append, then replace the folder atomically
    loaded.save(out)
    again = EmotionIndex.load(out)
    assert len(again) == 16 and again.items == words and again.models == [
        {"path": str(word_dir.resolve()), "modality": "word", "count": 16, "skipped": 0}]
    for a, b in zip(full.search(q, k=5), again.search(q, k=5)):
        pd.testing.assert_frame_equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(RetrievalError, match="not an emoembed index"):
        again.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(IndexNotFoundError, match="no index folder"):
        EmotionIndex.load(tmp_path / "nowhere")
    (out / "items.jsonl").write_text('{"item": "x", "modality": "word"}\n')
    with pytest.raises(RetrievalError, match="do not agree"):
        EmotionIndex.load(out)


def test_codec_fingerprint_mismatch_and_undefined_items(word_model, vectors_file, small_codec):
    idx = EmotionIndex()
    idx.add(word_model, ["happy", "sad"])
    torch.manual_seed(1)
    other = codec_for(["vad", "be5", "nrc10"], default_registry(), dim=16, hidden=[32], dropout=0.0)
    stranger = EmotionModel(WordEncoder(16, vectors=str(vectors_file), hidden=[16]), other)
    with pytest.raises(CodecMismatchError, match="is not the index's codec"):
        idx.add(stranger, ["joy"])
    with pytest.raises(CodecMismatchError, match="is not the index's codec"):
        idx.check_fingerprint(codec_fingerprint(other), "the codec")
    assert len(idx) == 2
    skip = EmotionModel(WordEncoder(16, vectors=str(vectors_file), hidden=[16], oov="skip"), small_codec)
    stats = idx.add(skip, ["love", "zzqx", "calm", "qqq"], source="skip-model")
    assert (stats["added"], stats["skipped_nan"]) == (2, 2) and idx.items == ["happy", "sad", "love", "calm"]
    learned = EmotionModel(WordEncoder(16, vectors=str(vectors_file), hidden=[16]), small_codec)
    stats = idx.add(learned, ["fury", "zzqx"], source="learned-model", skip_oov=True)
    assert (stats["added"], stats["skipped_oov"]) == (1, 1) and idx.items[-1] == "fury"
    assert [m["skipped"] for m in idx.models] == [0, 2, 1]


# ---------------------------------------------------------------------------------------------- label queries
def test_emotion_query_ranks_positive_words_above_negative(small_codec, word_model):
    idx = EmotionIndex()
    idx.add(word_model, list(WORDS))
    vec, info = emotion_query(small_codec, "joy=1")
    first = [f for f in small_codec.formats.values() if "joy" in f.variables]
    assert info["format"] == first[0].name and info["alternatives"] == [f.name for f in first[1:]]
    assert info["label"]["joy"] == 1.0 and sum(info["label"].values()) == 1.0  # unnamed intensities are 0
    ranked = idx.search(vec, k=16)["item"].tolist()
    assert ranked.index("happy") < ranked.index("grief") and ranked.index("love") < ranked.index("rage")
    assert set(ranked[:4]) & {"happy", "joy", "love", "sunny"}
    rank = {w: i for i, w in enumerate(ranked)}
    assert np.mean([rank[w] for w in ("happy", "joy", "love", "sunny")]) < np.mean([rank[w] for w in ("sad", "grief", "gloom", "tears")])

    pos, vinfo = values_query(small_codec, "vad", "0.9,0.5,0.5")
    assert vinfo["label"] == pytest.approx({"valence": 0.9, "arousal": 0.5, "dominance": 0.5})
    assert idx.search(pos, k=1)["item"].iloc[0] in {"happy", "joy", "love"}
    scaled, _ = values_query(small_codec, "vad", [8.6, 7.0, 7.0], input_scale=(1, 9))  # = (0.9, 0.5, 0.5)
    np.testing.assert_allclose(scaled, pos, atol=1e-5)

    _, neutral = emotion_query(small_codec, "valence=0.8", format="vad")  # bipolar: unnamed → midpoint 0
    assert neutral["label"] == pytest.approx({"valence": 0.8, "arousal": 0.0, "dominance": 0.0})
    _, on9 = emotion_query(small_codec, "valence=9", format="vad", input_scale=(1, 9))
    assert on9["label"] == pytest.approx({"valence": 1.0, "arousal": 0.0, "dominance": 0.0})
    _, alias = emotion_query(small_codec, "happiness")  # an equivalent name, bare = top of the range
    assert alias["format"] == info["format"] and alias["label"]["joy"] == 1.0
    _, multi = emotion_query(small_codec, {"joy": 0.9, "fear": 0.1}, format="nrc10")
    assert multi["label"]["joy"] == pytest.approx(0.9) and multi["label"]["fear"] == pytest.approx(0.1) and multi["label"]["anger"] == 0

    with pytest.raises(RetrievalError, match="has no variable 'glee'; its variables: joy, anger, sadness, fear, disgust"):
        emotion_query(small_codec, "glee=1", format="be5")
    with pytest.raises(RetrievalError, match="no format of this codec has all of 'glee'"):
        emotion_query(small_codec, "glee=1")
    with pytest.raises(RetrievalError, match=r"format 'vad' has 3 variables \['valence', 'arousal', 'dominance'\], got 2"):
        values_query(small_codec, "vad", "0.8,0.5")
    with pytest.raises(RetrievalError, match=r"be5.joy = 5 is outside the format's range \[0, 1\].*--input-scale"):
        emotion_query(small_codec, "joy=5")


# ---------------------------------------------------------------------------------------------- word + image
def test_words_and_images_share_one_index(word_dir, small_codec, tmp_path, capsys):
    from PIL import Image

    from emoembed.encoders.image import ImageEncoder

    torch.manual_seed(0)
    img_dir = EmotionModel(ImageEncoder.from_config({**TINY_IMAGE, "dim": 16}), small_codec).save_pretrained(tmp_path / "img")
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        arr = np.zeros((24, 24, 3), np.uint8)
        arr[: 8 * (i + 1)] = 40 + 90 * i
        Image.fromarray(arr).save(folder / name)
    out = tmp_path / "idx"
    assert main(["index", "--model", str(word_dir), "happy", "grief", "--out", str(out)]) == 0
    assert main(["index", "--model", str(img_dir), str(folder), "--out", str(out), "--append"]) == 0
    idx = EmotionIndex.load(out)
    assert idx.counts() == {"word": 2, "image": 3} and idx.items[2:] == [str(folder / "a.png"), str(folder / "b.png"),
                                                                          str(folder / "sub" / "c.png")]
    assert {m["modality"] for m in idx.models} == {"word", "image"}
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--image", str(folder / "b.png"), "-k", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["query"]["model"] == str(img_dir.resolve())  # the index's image model
    assert res["results"][0]["item"] == str(folder / "b.png") and res["results"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert {r["modality"] for r in res["results"]} == {"word", "image"} and len(res["results"]) == 5
    assert main(["search", "--index", str(out), "--image", str(folder / "b.png"), "--modality", "word"]) == 0
    assert [ln.split()[2] for ln in capsys.readouterr().out.splitlines()[3:]] == ["word", "word"]
    assert main(["search", "--index", str(out), "--emotion", "fear=1", "--modality", "image", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3 + 3


def test_cli_index_and_search(word_dir, tmp_path, capsys):
    csv = tmp_path / "words.csv"
    csv.write_text("id,word\n" + "".join(f"{i},{w}\n" for i, w in enumerate(list(WORDS)[:12])))
    out = tmp_path / "idx"
    assert main(["index", "--model", str(word_dir), "--input", str(csv), "--out", str(out), "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"indexed 12 word item(s) from {word_dir}" in printed and "12 items word 12, dim 16" in printed
    assert main(["index", "--model", str(word_dir), "calm", "fear", "panic", "table", "--out", str(out)]) == 2
    assert "already exists; pass --append" in capsys.readouterr().err
    assert main(["index", "--model", str(word_dir), "calm", "fear", "panic", "table", "--out", str(out), "--append"]) == 0
    assert "16 items word 16" in capsys.readouterr().out

    assert main(["search", "--index", str(out), "--emotion", "joy=1", "-k", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("query: ") and "joy=1" in lines[0] and f"[codec of {word_dir.resolve()}]" in lines[0]
    assert lines[1].split() == ["rank", "item", "modality", "cosine"]
    ranked = [ln.split()[1] for ln in lines[3:]]
    assert len(ranked) == 16 and ranked.index("happy") < ranked.index("grief")

    assert main(["search", "--index", str(out), "--word", "happy", "-k", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["query"] == {"type": "word", "input": "happy", "model": str(word_dir.resolve())}
    assert res["results"][0]["item"] == "happy" and res["results"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert [r["rank"] for r in res["results"]] == [1, 2, 3]
    assert main(["search", "--index", str(out), "--word", "zzqx", "-k", "1"]) == 0  # learned OOV vector: a warning
    assert "'zzqx' is not in the model's vocabulary" in capsys.readouterr().err

    assert main(["search", "--index", str(out), "--format", "vad", "--values", "9,5,5", "--input-scale", "1,9", "-k", "2"]) == 0
    assert "vad valence=1 arousal=0 dominance=0" in capsys.readouterr().out

    # errors: one line, exit 2, naming the field or file
    for argv, msg in [
        (["--format", "vad", "--values", "0.8,0.5"], "format 'vad' has 3 variables"),
        (["--values", "0.8,0.5,0.2"], "--values needs --format"),
        (["--emotion", "glee=1", "--format", "be5"], "its variables: joy, anger"),
        (["--text", "what a day"], "records no text model"),
        (["--text", "what a day", "--model", str(word_dir)], "--text needs a text model"),
        (["--word", "happy", "--modality", "image"], "holds no image items"),
    ]:
        assert main(["search", "--index", str(out), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("emoembed search: error: ") and msg in err and err.count("\n") == 1, (argv, err)
    assert main(["search", "--index", str(tmp_path / "missing"), "--emotion", "joy"]) == 2
    assert f"{tmp_path / 'missing'}: no index folder" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["index", "--model", str(word_dir), "--input", str(empty), "--out", str(tmp_path / "i2")]) == 2
    assert f"{empty}: no items" in capsys.readouterr().err and not (tmp_path / "i2").exists()


def test_search_refuses_a_model_of_another_codec(word_dir, vectors_file, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", "--model", str(word_dir), "happy", "sad", "--out", str(out)]) == 0
    torch.manual_seed(2)
    other = codec_for(["vad", "be5"], default_registry(), dim=16, hidden=[32], dropout=0.0)
    other_dir = other.save_pretrained(tmp_path / "other-codec")
    stranger = EmotionModel(WordEncoder(16, vectors=str(vectors_file), hidden=[16]), other).save_pretrained(tmp_path / "w2")
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--emotion", "joy=1", "--model", str(other_dir)]) == 2
    assert f"error: {other_dir}: its codec (fingerprint" in capsys.readouterr().err
    assert main(["search", "--index", str(out), "--word", "joy", "--model", str(stranger)]) == 2
    assert "is not the index's codec" in capsys.readouterr().err
    assert main(["index", "--model", str(stranger), "joy", "--out", str(out), "--append"]) == 2
    assert f"model {stranger}: its codec (fingerprint" in capsys.readouterr().err
    assert len(EmotionIndex.load(out)) == 2  # untouched
    assert codec_fingerprint(load_codec(word_dir)) == EmotionIndex.load(out).fingerprint  # codec read from a model dir


def test_an_index_of_a_packaged_model_is_searched_by_its_name(tmp_path, capsys, monkeypatch, one_torch_thread):
    """`index --model emoembed/words-minilm` records the packaged model as `emoembed/words-minilm` (also when given
    its folder), and `search` finds it through the model zoo from any working folder: word, emotion and values
    queries; `--model emoembed/codec-full` serves emotion queries of the same codec. A recorded folder that is gone
    is still reported."""
    from emoembed.model_zoo import pretrained_dir
    from emoembed.retrieval import model_reference, resolve_model_reference

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "idx"
    assert main(["index", "--model", "emoembed/words-minilm", "happy", "grief", "calm", "--out", str(out)]) == 0
    assert "indexed 3 word item(s) from emoembed/words-minilm" in capsys.readouterr().out
    folder = pretrained_dir("emoembed/words-minilm")
    assert main(["index", "--model", str(folder), "furious", "--out", str(out), "--append"]) == 0
    capsys.readouterr()
    meta = json.loads((out / "index.json").read_text())
    assert meta["models"] == [{"path": "emoembed/words-minilm", "modality": "word", "count": 4, "skipped": 0}]
    assert {json.loads(line)["source"] for line in (out / "items.jsonl").read_text().splitlines()} == {"emoembed/words-minilm"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["search", "--index", str(out), "--word", "joyful", "-k", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["query"] == {"type": "word", "input": "joyful", "model": "emoembed/words-minilm"}
    assert res["results"][0]["item"] == "happy" and res["results"][0]["cosine"] > 0.9
    assert main(["search", "--index", str(out), "--format", "vad", "--values", "-0.8,0.1,-0.5", "-k", "1"]) == 0
    printed = capsys.readouterr().out
    assert "[codec of emoembed/words-minilm]" in printed and printed.splitlines()[3].split()[1] == "grief"
    assert main(["search", "--index", str(out), "--emotion", "sadness=1", "--model", "emoembed/codec-full", "-k", "4"]) == 0
    assert "[codec of emoembed/codec-full]" in capsys.readouterr().out
    assert model_reference("words-minilm") == "emoembed/words-minilm" and resolve_model_reference("emoembed/words-minilm") == folder
    assert model_reference(elsewhere) == str(elsewhere.resolve()) and resolve_model_reference(tmp_path / "gone") is None
    meta["models"][0]["path"] = str(tmp_path / "gone")
    (out / "index.json").write_text(json.dumps(meta))
    assert main(["search", "--index", str(out), "--word", "joyful"]) == 2
    assert f"the recorded word model(s) {tmp_path / 'gone'} no longer exist; pass --model DIR" in capsys.readouterr().err
