"""No file that a model folder, a cache or a user argument names is ever unpickled. Each loader gets a file
holding a pickle payload that would create a marker file when unpickled; the test asserts the load is refused
(with a one-line error, without torch's "retry with weights_only=False" advice) and the marker was not made.
``test_the_payload_runs_when_unpickled`` shows the payload works, so the other tests can fail."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from emoembed.errors import CheckpointError, ConfigError, DataError, EmoembedError


class Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))
    from emoembed.data import registry

    monkeypatch.setattr(registry, "_DEFAULT", None)  # the CLI's cached registry: built from this test's environment


def _no_advice(message: str) -> None:
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert "\n" not in message.strip()


def test_the_payload_runs_when_unpickled(marker):
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


# ---------------------------------------------------------------------------------------------- word vectors
VECS = "happy 0.1 0.2 0.3\nsad -0.1 -0.2 -0.3\ncalm 0.0 0.1 -0.1\n"


def _word_model(tmp_path: Path, vectors: str) -> Path:
    """A saved word model (random weights) whose config names ``vectors``."""
    from emoembed.codec import codec_for
    from emoembed.encoders.word import WordEncoder
    from emoembed.formats import default_registry
    from emoembed.model import EmotionModel

    good = tmp_path / "good.txt"
    good.write_text(VECS, encoding="utf-8")
    enc = WordEncoder(4, vectors=str(good), hidden=[4])
    model = EmotionModel(enc, codec_for(["vad"], default_registry(), dim=4, hidden=[4], dropout=0.0))
    out = model.save_pretrained(tmp_path / "model")
    cfg = json.loads((out / "config.json").read_text())
    cfg["encoder"]["vectors"] = vectors
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_word_model_config_naming_a_pickled_kv_is_refused(tmp_path, marker, monkeypatch, where):
    from emoembed.model import EmotionModel

    model_dir = _word_model(tmp_path, "placeholder")
    evil = model_dir / "evil.kv"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["encoder"]["vectors"] = str(evil) if where == "absolute" else "evil.kv"  # relative: to the model folder
    (model_dir / "config.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EmoembedError, match=r"evil\.kv: gensim '\.kv' files are Python pickles") as err:
        model = EmotionModel.from_pretrained(model_dir)
        model.predict(["happy"], "vad")
    _no_advice(str(err.value))
    assert str(model_dir / "evil.kv") in str(err.value)  # resolved against the model folder, not the cwd
    assert not marker.exists()


def test_user_vectors_go_through_word2vec_readers_only(tmp_path, marker):
    from emoembed.encoders.word import WordEncoder, load_vectors

    for name in ("evil.bin", "evil.txt"):
        p = tmp_path / name
        p.write_bytes(pickle.dumps(Payload(marker)))
        with pytest.raises(ConfigError, match=f"{name}: cannot read word vectors"):
            load_vectors(str(p))
    with pytest.raises(ConfigError, match="pickles"):
        WordEncoder(4, vectors=str(tmp_path / "x.kv"))
    assert not marker.exists()


def test_cached_vectors_are_never_unpickled(tmp_path, marker):
    """Whoever can write the cache folder cannot run code: a pickle planted in a cached ``.npy`` is refused
    (``allow_pickle=False``) and the cache rebuilt from the source; ``.kv`` files there are never read."""
    from emoembed.encoders import vectors as V

    src = tmp_path / "v.txt"
    src.write_text(VECS, encoding="utf-8")
    expected = np.array(V.load_vectors(str(src))["sad"])
    folder = V.cache_folder(str(src))
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "vectors.npy", "vocab.json"]
    V._LOADED.clear()
    np.save(folder / "vectors.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    (folder.parent / f"{folder.name}.kv").write_bytes(pickle.dumps(Payload(marker)))  # the old cache name
    again = V.load_vectors(str(src))
    assert not marker.exists()
    assert np.allclose(np.asarray(again["sad"]), expected) and np.allclose(expected, [-0.1, -0.2, -0.3])
    assert isinstance(again.vectors, np.memmap)


def test_relative_vectors_path_in_a_model_config_is_taken_from_the_model_folder(tmp_path, monkeypatch):
    from emoembed.model import EmotionModel

    model_dir = _word_model(tmp_path, "vecs.txt")
    (model_dir / "vecs.txt").write_text(VECS, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "vecs.txt").write_text("happy 9 9 9\n", encoding="utf-8")  # must not be used
    monkeypatch.chdir(elsewhere)
    model = EmotionModel.from_pretrained(model_dir)
    assert model.encoder.vectors_spec == str(model_dir / "vecs.txt")
    assert model.encoder.known_mask(["sad", "calm"]).all()


def test_models_saved_before_model_relative_paths_still_find_their_vectors(tmp_path, monkeypatch):
    """A config without ``weights_sha256`` (an older emoembed) whose relative path is not in the model folder is
    looked up in the working directory, as that version did, with a warning; newer models never are."""
    from emoembed.model import EmotionModel

    model_dir = _word_model(tmp_path, "vecs.txt")
    cfg = json.loads((model_dir / "config.json").read_text())
    (tmp_path / "vecs.txt").write_text(VECS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="word vector file not found"):  # new model: only the model folder counts
        EmotionModel.from_pretrained(model_dir).predict(["sad"], "vad")
    for key in ("weights_sha256", "codec_fingerprint"):
        cfg.pop(key)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="saved by an older emoembed"):
        model = EmotionModel.from_pretrained(model_dir)
    assert model.encoder.vectors_spec == str(tmp_path / "vecs.txt") and model.encoder.known_mask(["sad"]).all()


# ---------------------------------------------------------------------------------------------- torch files
def test_training_state_with_a_payload_is_refused_without_the_unsafe_advice(tmp_path, marker):
    from emoembed.io import load_training_state

    path = tmp_path / "training_state.pt"
    torch.save({"epoch": 1, "evil": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"training_state\.pt: cannot read training state: it holds Python objects") as err:
        load_training_state(path)
    _no_advice(str(err.value))
    assert "never unpickles" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_refusal_names_what_it_found_and_torch_warnings_stay_quiet(tmp_path, marker, protocol, recwarn):
    """A protocol-4 pickle gave ``not only tensors ()`` (empty) and torch's pickle-protocol UserWarning leaked."""
    import pickle

    from emoembed.integrity import safe_torch_load

    path = tmp_path / "state.pt"
    with open(path, "wb") as fh:
        pickle.dump({"evil": Payload(marker)}, fh, protocol=protocol)
    with pytest.raises(CheckpointError, match="it holds Python objects, not only tensors") as err:
        safe_torch_load(path)
    assert "()" not in str(err.value) and "\n" not in str(err.value)
    _no_advice(str(err.value))
    assert not [w for w in recwarn.list if "pickle protocol" in str(w.message)]
    assert not marker.exists()


def test_map_resume_on_a_payload_state_exits_2(tmp_path, marker, capsys, monkeypatch):
    from emoembed.cli import main

    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"evil": Payload(marker)}, out / "training_state.pt")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("pairs: [warriner_emomap]\ncodec: {dim: 8, hidden: [8]}\ntraining: {epochs: 1, steps_per_epoch: 2}\n")
    assert main(["map", "--recipe", str(recipe), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "training_state.pt: cannot read training state" in err
    _no_advice(err.strip().splitlines()[-1])
    assert not marker.exists()


def test_image_backbone_file_with_a_payload_is_refused(tmp_path, marker):
    from emoembed.encoders.image import file_state_dict

    path = tmp_path / "backbone.pth"
    torch.save({"conv.weight": torch.zeros(1), "evil": Payload(marker)}, path)
    with pytest.raises(ConfigError, match=r"backbone\.pth: cannot read backbone weights") as err:
        file_state_dict(str(path))
    _no_advice(str(err.value))
    assert not marker.exists()


def test_text_backbone_folder_with_pickled_bin_weights_is_refused(tmp_path, marker):
    from transformers import BertConfig

    from emoembed.encoders.text import build_backbone
    from tiny_text import tiny_bert_config

    folder = tmp_path / "bert"
    BertConfig(**tiny_bert_config()).save_pretrained(str(folder))
    torch.save({"evil": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="cannot load a model from") as err:
        build_backbone(pretrained=str(folder))
    _no_advice(str(err.value))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- numpy, YAML
def test_dataset_arrays_with_pickled_objects_are_refused(tmp_path, marker):
    from emoembed.data.images import open_image

    npz, npy = tmp_path / "imgs.npz", tmp_path / "imgs.npy"
    np.savez(npz, images=np.array([Payload(marker)], dtype=object))
    np.save(npy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    for ref in (f"{npz}#0", f"{npy}#0"):
        with pytest.raises(DataError, match="cannot read as"):
            open_image(ref)
    assert not marker.exists()


def test_dataset_npz_reader_refuses_pickled_object_arrays(tmp_path, marker):
    from emoembed.data.readers import read_npz

    path = tmp_path / "d.npz"
    np.savez(path, ids=np.arange(2), labels=np.array([Payload(marker), 1], dtype=object))
    opts = {"file": "data", "arrays": ["ids", "labels"]}
    with pytest.raises(DataError, match=r"d\.npz: cannot read array 'labels': Object arrays cannot be loaded"):
        read_npz({"data": path}, opts, "card test")
    assert not marker.exists()


def test_yaml_recipes_and_cards_use_the_safe_loader(tmp_path, marker, make_registry):
    from emoembed.recipes import load_codec_recipe as load_recipe
    from emoembed.recipes import load_encoder_recipe

    evil = f"!!python/object/apply:builtins.open ['{marker}', 'w']\n"
    path = tmp_path / "r.yaml"
    path.write_text("name: " + evil)
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(path)
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_encoder_recipe(path, "word")
    with pytest.raises(ConfigError):
        make_registry({"evil.yaml": "name: " + evil})
    assert not marker.exists()
