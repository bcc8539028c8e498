"""Stage 2 with the word encoder: frozen heads, label augmentation, resume, DDP, EmotionModel predict/encode,
evaluate, OOV reports and bad input. Tiny word vectors written to a tmp file stand in for GloVe except in the
CLI test, which uses the packaged GloVe 6B 50-d."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.coverage import UnknownContentWarning
from emoembed.encoders.word import WordEncoder, load_vectors
from emoembed.errors import CheckpointError, ConfigError, DataError, EmoembedError
from emoembed.formats import default_registry
from emoembed.model import EmotionModel
from emoembed.codec import head_fingerprint
from emoembed.recipes import resolve_encoder_recipe
from emoembed.tasks import Task
from emoembed.training.encoder import _step_loss, fit, synthetic_labels

WORDS = {  # word -> (valence, arousal, dominance) in [-1, 1]; the vectors below make them learnable
    "happy": (0.9, 0.5, 0.6), "joy": (0.95, 0.6, 0.5), "love": (0.9, 0.4, 0.5), "sunny": (0.7, 0.2, 0.4),
    "sad": (-0.8, -0.4, -0.5), "grief": (-0.9, -0.2, -0.6), "gloom": (-0.7, -0.5, -0.4), "tears": (-0.6, 0.1, -0.5),
    "angry": (-0.7, 0.8, 0.3), "rage": (-0.8, 0.9, 0.2), "fury": (-0.85, 0.9, 0.3), "calm": (0.5, -0.8, 0.3),
    "fear": (-0.8, 0.7, -0.7), "panic": (-0.7, 0.9, -0.8), "table": (0.0, -0.5, 0.0), "chair": (0.05, -0.6, 0.0),
}


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory) -> Path:
    """A GloVe-style text file (no header): 12-d vectors = a random projection of the VAD values + noise."""
    d = tmp_path_factory.mktemp("vec")
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 12))
    lines = []
    for w, vad in WORDS.items():
        v = np.asarray(vad) @ proj + 0.05 * rng.normal(size=12)
        lines.append(w + " " + " ".join(f"{x:.5f}" for x in v))
    path = d / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def codec() -> EmotionCodec:
    torch.manual_seed(0)
    return codec_for(["vad", "be5", "nrc10"], default_registry(), dim=8, hidden=[16], dropout=0.0)


def toy_task(name: str = "toy") -> Task:
    fmt = default_registry().get("vad")
    words = list(WORDS)
    y = np.asarray([WORDS[w] for w in words], dtype=np.float32)
    split = {"train": slice(0, 12), "dev": slice(12, 14), "test": slice(14, 16)}
    order = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15]
    words, y = [words[i] for i in order], y[order]
    return Task(name, fmt, {s: words[sl] for s, sl in split.items()}, {s: y[sl] for s, sl in split.items()},
                {"valence": [1, 9], "arousal": [1, 9], "dominance": [1, 9]}, "word")


def recipe(vectors_file: Path, **over):
    raw = {"name": "t", "modality": "word", "seed": 5,
           "encoder": {"vectors": str(vectors_file), "hidden": [16], "input_dropout": 0.0, "dropout": 0.0},
           "training": {"epochs": 4, "batch_size": 4, "lr": 0.01, "patience": 100, "device": "cpu"}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = {**raw[k], **v}
        else:
            raw[k] = v
    return resolve_encoder_recipe(raw)


def state_of(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------- vectors
def test_vectors_are_converted_once_and_memory_mapped(vectors_file, tmp_path):
    kv = load_vectors(str(vectors_file))
    assert isinstance(kv.vectors, np.memmap)
    cached = [p for p in (tmp_path / "cache" / "vectors").iterdir() if p.is_dir()]
    assert len(cached) == 1 and sorted(f.name for f in cached[0].iterdir()) == ["meta.json", "vectors.npy", "vocab.json"]
    assert list((tmp_path / "cache").rglob("*.kv")) == []  # no pickle anywhere in the cache
    assert kv.vector_size == 12 and "grief" in kv.key_to_index


def test_parallel_processes_convert_the_same_vectors_safely(tmp_path):
    """DDP ranks (or parallel jobs) converting one vector file at the same moment must all succeed and agree."""
    rng = np.random.default_rng(1)
    big = tmp_path / "big.txt"  # big enough that the conversions overlap
    vecs = rng.normal(size=(20000, 20)).round(4)
    big.write_text("".join(f"w{i} " + " ".join(map(str, v)) + "\n" for i, v in enumerate(vecs)), encoding="utf-8")
    code = ("import sys, time; from emoembed.encoders.word import load_vectors; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
            "kv = load_vectors(sys.argv[1]); print(float(kv.vectors.sum()))")
    env = {**os.environ, "EMOEMBED_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    start_at = str(time.time() + 6)  # after every interpreter has imported emoembed
    procs = [subprocess.Popen([sys.executable, "-c", code, str(big), start_at], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    assert len({out for out, _ in results}) == 1
    assert [f.name for f in (tmp_path / "cache" / "vectors").iterdir() if ".tmp" in f.name] == []


def test_oov_report_and_policies(vectors_file):
    enc = WordEncoder(8, vectors=str(vectors_file), oov="learned")
    rep = enc.input_report(["happy", "Happy", "zzqx", "sad-gloom", "qqq"])
    assert rep["oov"] == 2 and rep["oov_rate"] == pytest.approx(0.4) and rep["oov_examples"] == ["zzqx", "qqq"]
    batch = enc.collate(["happy", "zzqx", "sad gloom"])
    assert batch["known"].tolist() == [True, False, True]
    kv = load_vectors(str(vectors_file))
    assert np.allclose(batch["vectors"][2].numpy(), (kv["sad"] + kv["gloom"]) / 2, atol=1e-6)
    assert enc.oov_vector.requires_grad
    skip = WordEncoder(8, vectors=str(vectors_file), oov="skip")
    assert skip.training_mask(["happy", "zzqx"]).tolist() == [True, False]
    assert not WordEncoder(8, vectors=str(vectors_file), oov="zero").oov_vector.requires_grad
    with pytest.raises(ConfigError, match="oov must be one of"):
        WordEncoder(8, vectors=str(vectors_file), oov="guess")


def test_fit_prints_oov_rate(vectors_file, codec):
    task = toy_task()
    task.items["train"][0] = "notaword"
    logs: list[str] = []
    fit(recipe(vectors_file, training={"epochs": 1}), codec, [task], log=logs.append, progress=False)
    assert any("toy: items 16, oov 1, oov_rate 6.25%" in line for line in logs), logs


# ---------------------------------------------------------------------------------------------- loop
def test_frozen_heads_unchanged_and_loss_falls(vectors_file, codec):
    before = head_fingerprint(codec)
    heads_before = state_of(codec)
    res = fit(recipe(vectors_file, training={"epochs": 12}, augment=["be5", "nrc10"]), codec, [toy_task()], progress=False, log=lambda *_: None)
    assert head_fingerprint(codec) == before
    for k, v in codec.state_dict().items():
        assert torch.equal(v, heads_before[k]), k
    assert not any(p.requires_grad for p in codec.parameters())
    losses = [h["gold"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0], losses
    assert {"gold", "augment"} <= set(res.history[0])


def test_augmentation_targets_soft_and_hard(codec):
    vad = default_registry().get("vad")
    y = torch.tensor([[0.9, 0.5, 0.6], [-0.8, 0.7, -0.7]])
    soft = synthetic_labels(codec, vad, y, "nrc10", "soft")
    hard = synthetic_labels(codec, vad, y, "nrc10", "hard")
    expected = torch.sigmoid(codec.decode("nrc10", codec.encode_labels("vad", y)))
    assert torch.allclose(soft, expected)
    assert torch.equal(hard, (expected > 0.5).float())
    be5 = synthetic_labels(codec, vad, y, "be5", "soft")
    assert torch.allclose(be5, codec.decode("be5", codec.encode_labels("vad", y)).clamp(0, 1))
    z = torch.zeros(2, 8, requires_grad=True)
    w = {"gold": 1.0, "augment": 1.0, "agreement": 0.0}
    _, plain = _step_loss(codec, codec, vad, z, y, [], w, "soft", 1.0, False)
    total_soft, with_aug = _step_loss(codec, codec, vad, z, y, ["nrc10"], w, "soft", 1.0, False)
    _, with_hard = _step_loss(codec, codec, vad, z, y, ["nrc10"], w, "hard", 1.0, False)
    assert "augment" not in plain
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert with_aug["augment"] == pytest.approx(float(bce(codec.decode("nrc10", z), soft).detach()), rel=1e-5)
    assert with_hard["augment"] == pytest.approx(float(bce(codec.decode("nrc10", z), hard).detach()), rel=1e-5)
    assert float(total_soft) == pytest.approx(with_aug["gold"] + with_aug["augment"], rel=1e-5)


def test_augment_weight_changes_the_result(vectors_file, codec):
    a = fit(recipe(vectors_file, augment=["be5"]), codec, [toy_task()], progress=False, log=lambda *_: None)
    b = fit(recipe(vectors_file, augment=["be5"], loss_weights={"augment": 0.0}), codec, [toy_task()], progress=False, log=lambda *_: None)
    c = fit(recipe(vectors_file, augment=[]), codec, [toy_task()], progress=False, log=lambda *_: None)
    wa, wb, wc = (r.encoder.mlp[-1].weight for r in (a, b, c))
    assert not torch.allclose(wa, wb)
    assert torch.equal(wb, wc)  # weight 0 = no augmentation


def test_resume_is_identical_to_an_uninterrupted_run(vectors_file, codec, tmp_path):
    no_dropout = fit(recipe(vectors_file, training={"epochs": 4}), codec, [toy_task()], progress=False, log=lambda *_: None)
    r = recipe(vectors_file, encoder={"vectors": str(vectors_file), "hidden": [16], "input_dropout": 0.2, "dropout": 0.5})
    ref = fit({**r, "training": {**r["training"], "epochs": 4}}, codec, [toy_task()], state_dir=tmp_path / "b", progress=False, log=lambda *_: None)
    fit({**r, "training": {**r["training"], "epochs": 2}}, codec, [toy_task()], state_dir=tmp_path / "c", progress=False, log=lambda *_: None)
    logs: list[str] = []
    resumed = fit({**r, "training": {**r["training"], "epochs": 4}}, codec, [toy_task()], state_dir=tmp_path / "c", resume=True,
                  progress=False, log=logs.append)
    assert any("resumed" in line and "after epoch 2" in line for line in logs)
    for k, v in ref.encoder.state_dict().items():
        assert torch.equal(v, resumed.encoder.state_dict()[k]), k
    assert [h["loss"] for h in ref.history] == [h["loss"] for h in resumed.history]
    assert no_dropout.history[0]["loss"] != ref.history[0]["loss"]  # dropout (RNG state) is in play: the check has teeth


DDP_WORKER = textwrap.dedent('''
    import sys, torch
    from safetensors.torch import save_file
    from emoembed.codec import EmotionCodec
    from emoembed.recipes import resolve_encoder_recipe
    from emoembed.tasks import Task
    from emoembed.training.encoder import fit
    import json, numpy as np
    spec = json.load(open(sys.argv[1]))
    codec = EmotionCodec.from_pretrained(spec["codec"])
    fmt = codec.formats["vad"]
    t = spec["task"]
    task = Task("toy", fmt, t["items"], {k: np.asarray(v, dtype=np.float32) for k, v in t["labels"].items()})
    res = fit(resolve_encoder_recipe(spec["recipe"]), codec, [task], progress=False, log=lambda *_: None)
    if torch.distributed.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in res.encoder.state_dict().items()}, spec["out"])
''')


def test_ddp_two_gloo_processes_match_one_process(vectors_file, codec, tmp_path):
    r = recipe(vectors_file, training={"epochs": 2, "batch_size": 4, "drop_last": True})
    task = toy_task()
    single = fit(r, codec, [toy_task()], progress=False, log=lambda *_: None)
    codec_dir = codec.save_pretrained(tmp_path / "codec")
    spec = {"codec": str(codec_dir), "out": str(tmp_path / "ddp.safetensors"), "recipe": {k: v for k, v in r.items() if k != "source"},
            "task": {"items": task.items, "labels": {k: v.tolist() for k, v in task.labels.items()}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMOEMBED_CACHE": os.environ["EMOEMBED_CACHE"]}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(port), str(tmp_path / "worker.py"), str(tmp_path / "spec.json")],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from safetensors.torch import load_file

    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    for k, v in single.encoder.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-5), (k, (v - ddp[k]).abs().max())
    assert not torch.allclose(single.encoder.mlp[-1].weight, WordEncoder(8, vectors=str(vectors_file), hidden=[16]).mlp[-1].weight)


# ---------------------------------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def trained(vectors_file, codec, tmp_path_factory):
    os.environ.setdefault("EMOEMBED_CACHE", str(tmp_path_factory.mktemp("cache")))
    r = recipe(vectors_file, training={"epochs": 30})
    res = fit(r, codec, [toy_task()], progress=False, log=lambda *_: None)
    return EmotionModel.from_training(res, codec, [toy_task()], r)


def test_predict_and_encode_shapes_columns_and_zero_shot(trained):
    vad = trained.predict(["happy", "grief"], format="vad")
    assert list(vad.columns) == ["valence", "arousal", "dominance"] and list(vad.index) == ["happy", "grief"]
    assert vad.loc["happy", "valence"] > vad.loc["grief", "valence"]
    be5 = trained.predict(["happy", "grief"], format="be5")  # zero-shot: no BE5 data in training
    assert list(be5.columns) == ["joy", "anger", "sadness", "fear", "disgust"]
    assert "be5" not in trained.trained_formats
    nrc = trained.predict("happy", format="nrc10")
    assert nrc.shape == (1, 11) and nrc.columns[-1] == "label" and ((nrc.iloc[:, :10] >= 0) & (nrc.iloc[:, :10] <= 1)).all().all()
    emb = trained.encode(["happy", "grief", "calm"])
    assert emb.shape == (3, 8) and emb.dtype == np.float32
    src = trained.predict(["happy"], format="vad", scale="source")
    assert 1 <= src.loc["happy", "valence"] <= 9
    assert src.loc["happy", "valence"] == pytest.approx(5 + 4 * vad.loc["happy", "valence"], abs=1e-4)


def test_save_load_round_trip_and_version_check(trained, tmp_path):
    d = trained.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    again = EmotionModel.from_pretrained(d)
    pd.testing.assert_frame_equal(trained.predict(["joy", "rage"], "be5"), again.predict(["joy", "rage"], "be5"))
    cfg = json.loads((d / "config.json").read_text())
    cfg["checkpoint_format"] = 99
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="checkpoint format 99"):
        EmotionModel.from_pretrained(d)


def test_bad_prediction_input(trained):
    with pytest.raises(DataError, match=r"row index 1 \(0-based\): empty word"):
        trained.predict(["happy", "  "], "vad")
    with pytest.raises(DataError, match=r"row index 0 \(0-based\): missing word"):
        trained.predict([None], "vad")
    with pytest.raises(EmoembedError, match="empty"):
        trained.predict([], "vad")
    with pytest.raises(ConfigError, match="cannot predict format 'vadd'"):
        trained.predict(["happy"], "vadd")
    with pytest.raises(ConfigError, match="no source scale is known for format 'be5'"):
        trained.predict(["happy"], "be5", scale="source")


def test_oov_skip_gives_nan_rows(vectors_file, codec):
    r = recipe(vectors_file, encoder={"vectors": str(vectors_file), "hidden": [16], "oov": "skip"}, training={"epochs": 1})
    res = fit(r, codec, [toy_task()], progress=False, log=lambda *_: None)
    model = EmotionModel.from_training(res, codec, [toy_task()], r)
    with pytest.warns(UnknownContentWarning) as record:
        out = model.predict(["happy", "qqqzz"], "vad")
    assert out.loc["happy"].notna().all() and out.loc["qqqzz"].isna().all()
    assert [str(w.message) for w in record] == [  # says what happens to them with this model, not the learned vector
        "1 of 2 words is unknown to the word encoder ('qqqzz'); their outputs are empty: this model was trained with "
        "oov: skip (--oov nan leaves them empty, --oov error refuses them)"]


def test_direct_baseline_predicts_only_its_format(vectors_file, codec):
    r = recipe(vectors_file, heads="direct", training={"epochs": 2})
    res = fit(r, codec, [toy_task()], progress=False, log=lambda *_: None)
    model = EmotionModel.from_training(res, codec, [toy_task()], r)
    assert model.predict(["happy"], "vad").shape == (1, 3)
    with pytest.raises(ConfigError, match="direct baseline"):
        model.predict(["happy"], "be5")


def test_recipe_errors(vectors_file):
    with pytest.raises(ConfigError, match="unknown field"):
        resolve_encoder_recipe({"modality": "word", "trainig": {}})
    with pytest.raises(ConfigError, match="augment_targets"):
        resolve_encoder_recipe({"modality": "word", "augment_targets": "medium"})
    with pytest.raises(ConfigError, match="training.epochs"):
        resolve_encoder_recipe({"modality": "word", "training": {"epochs": 0}})


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_fit_predict_evaluate_on_bundled_warriner(tmp_path, monkeypatch, capsys, small_trained_codec):
    """The packaged GloVe, the bundled Warriner norms, a small codec: train, zero-shot predict, evaluate."""
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    codec_dir = small_trained_codec.save_pretrained(tmp_path / "codec")
    rec = tmp_path / "r.yaml"
    rec.write_text("name: w\nmodality: word\nencoder: {hidden: [32]}\n"
                   "training: {epochs: 6, batch_size: 128, lr: 0.005, max_train_items: 4000, device: cpu}\n")
    out = tmp_path / "run"
    assert main(["fit-encoder", "--modality", "word", "--codec", str(codec_dir), "--data", "warriner", "--recipe", str(rec),
                 "--augment", "be5", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| warriner | vad | 1032 | pearson |" in printed
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors", "recipe.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["warriner"]["primary"] > 0.3  # 6 short epochs on 4,000 words already learn valence
    assert metrics["inputs"]["warriner"]["oov_rate"] < 0.05
    assert main(["predict", "--model", str(out), "--format", "be5", "happy", "murder"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(table.columns) == ["word", "joy", "anger", "sadness", "fear", "disgust", "coverage"]
    csv = tmp_path / "in.csv"
    csv.write_text("id,entry\n1,happy\n2,murder\n")
    assert main(["predict", "--model", str(out), "--format", "vad", "--input", str(csv)]) == 2
    assert "pass --column" in capsys.readouterr().err
    assert main(["predict", "--model", str(out), "--format", "vad", "--input", str(csv), "--column", "word"]) == 2
    assert "no column 'word'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"word\n\xff\xfehappy\n")
    assert main(["predict", "--model", str(out), "--format", "vad", "--input", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["predict", "--model", str(out), "--format", "vad", "--input", str(csv), "--column", "Entry",
                 "--scale", "source", "--output", str(tmp_path / "o.csv")]) == 0
    o = pd.read_csv(tmp_path / "o.csv")
    assert list(o["word"]) == ["happy", "murder"] and o["valence"].between(1, 9).all() and o["valence"][0] > o["valence"][1]
    assert main(["evaluate", "--model", str(out), "--data", "warriner", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]["warriner"]
    assert res["zero_shot"] is False and res["n"] == 1032
    assert res["primary"] == pytest.approx(metrics["test"]["warriner"]["primary"], abs=1e-6)
    assert main(["evaluate", "--model", str(out), "--data", "emomap_warriner_be5", "--json"]) == 0
    zs = json.loads(capsys.readouterr().out)["results"]["emomap_warriner_be5"]
    assert zs["zero_shot"] is True and zs["format"] == "be5" and zs["primary"] > 0.2
    assert main(["predict", "--model", str(out), "--format", "plutchik8", "happy"]) == 2
    assert "cannot predict format 'plutchik8'" in capsys.readouterr().err


def test_registry_lookups_import_lazily_and_name_what_is_known():
    from emoembed.encoders.base import encoder_class, objective_class

    assert encoder_class("word").modality == "word" and objective_class("carl").name == "carl"
    with pytest.raises(ConfigError, match=r"unknown modality 'audio'; known: \['image', 'text', 'word'\]"):
        encoder_class("audio")
    with pytest.raises(ConfigError, match=r"unknown objective 'simcse'; known: \['carl'\]"):
        objective_class("simcse")
