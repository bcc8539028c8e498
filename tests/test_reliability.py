"""Faults found by kill/resume, damaged-checkpoint, concurrent-run and output probes (issue 15), each
reproduced: resumes that check what they resume, model folders that check their weights, config.json shape
errors that name the field, output writes that keep modes and follow symlinks, stale temporary files cleaned
up, one run per run folder, and sensible thread counts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from emoembed.cli import main
from emoembed.codec import EmotionCodec, codec_for
from emoembed.errors import CheckpointError, OutputError
from emoembed.formats import default_registry

REPO = Path(__file__).resolve().parent.parent
VECS = {"happy": (0.9, 0.5, 0.6), "joy": (0.95, 0.6, 0.5), "sad": (-0.8, -0.4, -0.5), "grief": (-0.9, -0.2, -0.6),
        "angry": (-0.7, 0.8, 0.3), "rage": (-0.8, 0.9, 0.2), "calm": (0.5, -0.8, 0.3), "fear": (-0.8, 0.7, -0.7)}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("EMOEMBED_CACHE", str(tmp_path / "cache"))
    from emoembed.data import registry

    monkeypatch.setattr(registry, "_DEFAULT", None)  # the CLI's cached registry: built from this test's environment


@pytest.fixture
def vectors_file(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(3, 6))
    path = tmp_path / "v.txt"
    path.write_text("".join(w + " " + " ".join(f"{x:.4f}" for x in np.asarray(v) @ proj) + "\n" for w, v in VECS.items()))
    return path


def _codec(seed: int = 0, dim: int = 6) -> EmotionCodec:
    torch.manual_seed(seed)
    return codec_for(["vad", "be5"], default_registry(), dim=dim, hidden=[8], dropout=0.0)


def _task():
    from emoembed.tasks import Task

    words = list(VECS)
    y = np.asarray([VECS[w] for w in words], dtype=np.float32)
    return Task("toy", default_registry().get("vad"), {"train": words[:6], "dev": words[6:], "test": words[6:]},
                {"train": y[:6], "dev": y[6:], "test": y[6:]}, {}, "word")


def _fit_recipe(vectors_file: Path, **over):
    from emoembed.recipes import resolve_encoder_recipe

    raw = {"name": "t", "modality": "word", "seed": 5, "encoder": {"vectors": str(vectors_file), "hidden": [8]},
           "training": {"epochs": 2, "batch_size": 4, "lr": 0.01, "device": "cpu"}}
    raw.update(over)
    return resolve_encoder_recipe(raw)


def _quiet(*_):
    return None


# ---------------------------------------------------------------------------------------------- resume
def test_fit_encoder_resume_refuses_another_seed_codec_heads_or_embedding_size(vectors_file, tmp_path):
    from emoembed.training.encoder import fit
    from emoembed.training.scaffold import STATE_NAME

    codec = _codec()
    run = tmp_path / "run"
    fit(_fit_recipe(vectors_file), codec, [_task()], state_dir=run, progress=False, log=_quiet)
    assert (run / STATE_NAME).exists()
    started: list[int] = []  # run_fit_encoder writes recipe.json in on_start: a refused resume must not reach it
    with pytest.raises(CheckpointError, match=r"another recipe \(seed: 5 in the run, 99 now\)"):
        fit(_fit_recipe(vectors_file, seed=99), codec, [_task()], state_dir=run, resume=True, progress=False, log=_quiet,
            on_start=lambda: started.append(1))
    with pytest.raises(CheckpointError, match="another codec"):
        fit(_fit_recipe(vectors_file), _codec(seed=1), [_task()], state_dir=run, resume=True, progress=False,
            log=_quiet, on_start=lambda: started.append(1))
    assert started == []
    with pytest.raises(CheckpointError, match=r"heads: \"codec\" in the run, \"direct\" now"):
        fit(_fit_recipe(vectors_file, heads="direct"), codec, [_task()], state_dir=run, resume=True, progress=False, log=_quiet)
    with pytest.raises(CheckpointError, match=r"trains against another codec \(--codec\)"):
        fit(_fit_recipe(vectors_file), _codec(seed=1), [_task()], state_dir=run, resume=True, progress=False, log=_quiet)
    with pytest.raises(CheckpointError, match="another codec"):
        fit(_fit_recipe(vectors_file), _codec(dim=5), [_task()], state_dir=run, resume=True, progress=False, log=_quiet)
    # the same options resume (and may run longer)
    logs: list[str] = []
    fit(_fit_recipe(vectors_file, training={"epochs": 3, "batch_size": 4, "lr": 0.01, "device": "cpu"}), codec, [_task()],
        state_dir=run, resume=True, progress=False, log=logs.append)
    assert any("resumed" in line for line in logs)


def test_older_training_states_still_resume_and_shape_errors_are_one_line(vectors_file, tmp_path):
    from emoembed.training.encoder import fit
    from emoembed.training.scaffold import STATE_NAME

    codec = _codec()
    run = tmp_path / "run"
    fit(_fit_recipe(vectors_file), codec, [_task()], state_dir=run, progress=False, log=_quiet)
    st = torch.load(run / STATE_NAME, weights_only=True)
    for key in ("recipe_json", "codec_fingerprint"):  # what a state of an older emoembed lacks
        st.pop(key)
    torch.save(st, run / STATE_NAME)
    logs: list[str] = []
    fit(_fit_recipe(vectors_file, training={"epochs": 3, "batch_size": 4, "lr": 0.01, "device": "cpu"}), codec, [_task()],
        state_dir=run, resume=True, progress=False, log=logs.append)
    assert any("not verified" in line for line in logs) and any("resumed" in line for line in logs)
    torch.save(st, run / STATE_NAME)
    with pytest.raises(CheckpointError, match=r"cannot resume .*training_state\.pt: the saved state does not fit") as err:
        fit(_fit_recipe(vectors_file), _codec(dim=5), [_task()], state_dir=run, resume=True, progress=False, log=_quiet)
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="does not fit"):
        fit(_fit_recipe(vectors_file, heads="direct"), codec, [_task()], state_dir=run, resume=True, progress=False, log=_quiet)


MAP_RECIPE = "pairs: [warriner_emomap]\ncodec: {dim: 8, hidden: [8], dropout: 0.0}\ntraining: {epochs: 2, steps_per_epoch: 5, batch_size: 16}\n"


def test_map_resume_with_another_seed_is_refused(tmp_path, capsys, monkeypatch):
    """``map --resume --seed 14`` on a seed-13 run used to write the seed-13 codec labelled seed 14."""
    from emoembed.data.registry import default_data_registry
    from emoembed.recipes import load_codec_recipe as load_recipe
    from emoembed.training.codec import load_pairs, train_codec

    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    path = tmp_path / "r.yaml"
    path.write_text(MAP_RECIPE)
    out = tmp_path / "run"
    recipe = load_recipe(path)  # seed 13, as the CLI resolves it; an interrupted run leaves its state behind
    reg = default_data_registry()
    train_codec(recipe, load_pairs(recipe, reg, _quiet), reg.formats, state_dir=out, progress=False, log=_quiet)
    (out / "recipe.json").write_text(json.dumps(dict(recipe)))  # what the interrupted run wrote
    assert (out / "training_state.pt").exists()
    assert main(["map", "--recipe", str(path), "--out", str(out), "--resume", "--seed", "14", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "seed: 13 in the run, 14 now" in err and len(err.splitlines()) == 1
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / "recipe.json").read_text())["seed"] == 13  # the refused recipe is not written
    assert main(["map", "--recipe", str(path), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors", "recipe.json", "results.md"]
    # --resume on the finished run (model saved, no state) is refused and leaves the model alone
    model = (out / "model.safetensors").read_bytes()
    assert main(["map", "--recipe", str(path), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the run is complete" in err and "nothing to resume" in err and "--out" in err
    assert (out / "model.safetensors").read_bytes() == model


def test_resume_into_a_new_folder_says_it_starts_a_new_run(tmp_path, capsys):
    from emoembed.training.scaffold import check_resume_target

    check_resume_target(tmp_path / "new", True, "map")
    assert "nothing to resume in" in capsys.readouterr().err and not (tmp_path / "new").exists()
    check_resume_target(tmp_path / "new", False, "map")
    assert capsys.readouterr().err == ""


def test_a_run_that_fails_early_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """A run that fails before training (a missing base codec or --codec) used to leave a folder holding only
    recipe.json."""
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    path = tmp_path / "r.yaml"
    path.write_text(MAP_RECIPE)
    out = tmp_path / "runs" / "new"
    assert main(["map", "--recipe", str(path), "--out", str(out), "--extend", str(tmp_path / "nope"), "--quiet"]) != 0
    assert not out.exists()
    assert main(["fit-encoder", "--modality", "word", "--codec", str(tmp_path / "nope"), "--out", str(out), "--quiet"]) != 0
    assert not out.exists()
    kept = tmp_path / "kept"  # a folder the user made stays
    kept.mkdir()
    assert main(["fit-encoder", "--modality", "word", "--codec", str(tmp_path / "nope"), "--out", str(kept), "--quiet"]) != 0
    assert kept.is_dir() and not any(kept.iterdir())


def test_map_extend_resume_refuses_another_base_codec(small_trained_codec, tmp_path, capsys, monkeypatch):
    """An interrupted ``map --extend BASE`` resumed with another BASE would mix two codecs' frozen formats."""
    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    base = small_trained_codec.save_pretrained(tmp_path / "base")
    other = _perturbed(small_trained_codec).save_pretrained(tmp_path / "other")
    recipe = tmp_path / "ext.yaml"
    recipe.write_text("pairs: [vader_emolex]\ntraining: {epochs: 2, steps_per_epoch: 10, batch_size: 32}\n")
    out = tmp_path / "ext"

    def killed(*_a, **_k):
        raise KeyboardInterrupt  # the run dies after training, before it writes the codec

    with monkeypatch.context() as mp:
        mp.setattr(EmotionCodec, "save_pretrained", killed)
        assert main(["map", "--extend", str(base), "--recipe", str(recipe), "--out", str(out), "--quiet"]) == 130
    assert (out / "training_state.pt").exists() and not (out / "model.safetensors").exists()
    assert not (out / ".emoembed.lock").exists()  # an interrupted run releases its folder
    capsys.readouterr()
    args = ["map", "--recipe", str(recipe), "--out", str(out), "--resume", "--quiet"]
    assert main([*args, "--extend", str(other)]) == 2
    assert "trains against another base codec (--extend)" in capsys.readouterr().err
    assert main([*args, "--extend", str(base)]) == 0
    assert "resumed from" in capsys.readouterr().out


def _perturbed(codec: EmotionCodec) -> EmotionCodec:
    import copy

    out = copy.deepcopy(codec)
    with torch.no_grad():
        out.heads["vad"].weight.add_(0.01)
    return out


# ---------------------------------------------------------------------------------------------- model folders
def _saved_model(vectors_file: Path, tmp_path: Path) -> Path:
    from emoembed.encoders.word import WordEncoder
    from emoembed.model import EmotionModel

    torch.manual_seed(3)
    model = EmotionModel(WordEncoder(6, vectors=str(vectors_file), hidden=[8]), _codec())
    return model.save_pretrained(tmp_path / "model")


def test_model_with_another_codecs_tensors_refuses_to_load(vectors_file, tmp_path, capsys):
    from emoembed.model import EmotionModel

    model_dir = _saved_model(vectors_file, tmp_path)
    cfg = json.loads((model_dir / "config.json").read_text())
    assert len(cfg["weights_sha256"]) == 64 and len(cfg["codec_fingerprint"]) == 64
    before = EmotionModel.from_pretrained(model_dir).predict(["happy", "sad"], "be5")
    state = load_file(str(model_dir / "model.safetensors"))
    other = _codec(seed=7).state_dict()
    save_file({k: (other[k[len("codec."):]].contiguous() if k.startswith("codec.") else v) for k, v in state.items()},
              str(model_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match="the codec tensors in model.safetensors are not those the model was saved with"):
        EmotionModel.from_pretrained(model_dir)
    assert main(["predict", "--model", str(model_dir), "--format", "be5", "happy"]) == 2
    assert "altered after saving" in capsys.readouterr().err
    # other tensors changed: the weights digest catches it
    state["encoder.mlp.1.weight"] = state["encoder.mlp.1.weight"] + 0.5
    save_file(state, str(model_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        EmotionModel.from_pretrained(model_dir)
    # a folder saved before these fields existed still loads (and predicts what it did)
    state["encoder.mlp.1.weight"] = state["encoder.mlp.1.weight"] - 0.5
    save_file(state, str(model_dir / "model.safetensors"))
    for key in ("weights_sha256", "codec_fingerprint"):
        cfg.pop(key)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    pd.testing.assert_frame_equal(EmotionModel.from_pretrained(model_dir).predict(["happy", "sad"], "be5"), before)


def test_nan_or_inf_weights_are_an_error(vectors_file, tmp_path):
    from emoembed.model import EmotionModel

    model_dir = _saved_model(vectors_file, tmp_path)
    cfg = json.loads((model_dir / "config.json").read_text())
    for key in ("weights_sha256", "codec_fingerprint"):
        cfg.pop(key)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    state = load_file(str(model_dir / "model.safetensors"))
    state["encoder.mlp.1.weight"][0, 0] = float("nan")
    save_file(state, str(model_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"tensor 'encoder\.mlp\.1\.weight' holds 1 NaN/Inf value"):
        EmotionModel.from_pretrained(model_dir)
    codec_dir = _codec().save_pretrained(tmp_path / "codec")
    cstate = load_file(str(codec_dir / "model.safetensors"))
    cstate["heads.vad.weight"][1, 1] = float("inf")
    save_file(cstate, str(codec_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"heads\.vad\.weight"):
        EmotionCodec.from_pretrained(codec_dir)


@pytest.mark.parametrize("edit, field", [
    (lambda cfg: [cfg], "(top level)"),
    (lambda cfg: {**cfg, "codec": {**cfg["codec"], "formats": {**cfg["codec"]["formats"], "vad": 3}}}, "codec.formats.vad"),
    (lambda cfg: {**cfg, "encoder": "word"}, "encoder"),
    (lambda cfg: {**cfg, "codec": {**cfg["codec"], "hidden": "8"}}, "codec.hidden"),
    (lambda cfg: {**cfg, "heads": 1}, "heads"),
    # the encoder's own fields (a raw RuntimeError, a shape error, a path from the working directory before)
    (lambda cfg: {**cfg, "encoder": {**cfg["encoder"], "hidden": [256, -1]}}, "encoder.hidden"),
    (lambda cfg: {**cfg, "encoder": {**cfg["encoder"], "hidden": "8"}}, "encoder.hidden"),
    (lambda cfg: {**cfg, "encoder": {**cfg["encoder"], "vectors": 5}}, "encoder.vectors"),
    (lambda cfg: {**cfg, "encoder": {**cfg["encoder"], "dropout": 2}}, "encoder.dropout"),
    (lambda cfg: {**cfg, "encoder": {**cfg["encoder"], "dim": "6"}}, "encoder.dim"),
    (lambda cfg: {**cfg, "modality": "smell"}, "modality"),
])
def test_config_json_of_the_wrong_shape_names_the_field(vectors_file, tmp_path, capsys, edit, field):
    from emoembed.model import EmotionModel

    model_dir = _saved_model(vectors_file, tmp_path)
    cfg = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(edit(cfg)))
    with pytest.raises(CheckpointError) as err:
        EmotionModel.from_pretrained(model_dir)
    assert str(model_dir / "config.json") in str(err.value)
    assert ("JSON object" in str(err.value)) if field == "(top level)" else (f"field {field!r}" in str(err.value))
    assert main(["predict", "--model", str(model_dir), "--format", "vad", "happy"]) == 2
    err_text = capsys.readouterr().err
    assert "Traceback" not in err_text and str(model_dir / "config.json") in err_text


def test_codec_config_of_the_wrong_shape_names_the_field(tmp_path):
    codec_dir = _codec().save_pretrained(tmp_path / "codec")
    cfg = json.loads((codec_dir / "config.json").read_text())
    cfg["formats"]["be5"] = [1, 2]
    (codec_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"field 'formats\.be5' must be an object"):
        EmotionCodec.from_pretrained(codec_dir)


# ---------------------------------------------------------------------------------------------- output files
@pytest.fixture
def codec_dir(tmp_path) -> Path:
    return _codec().save_pretrained(tmp_path / "codec")


def _convert(codec_dir: Path, tmp_path: Path, output: Path) -> int:
    ratings = tmp_path / "in.csv"
    ratings.write_text("valence,arousal,dominance\n0.5,0.2,0.1\n-0.5,0.3,0.0\n")
    return main(["predict", "--model", str(codec_dir), "--source-format", "vad", "--format", "be5", "--input", str(ratings),
                 "--output", str(output)])


def test_output_onto_a_folder_or_into_an_unwritable_place_is_one_line(codec_dir, tmp_path, capsys):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert _convert(codec_dir, tmp_path, folder) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emoembed predict: error: {folder}: is a folder; give a file name to write to"
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    assert _convert(codec_dir, tmp_path, a_file / "out.csv") == 2
    err = capsys.readouterr().err.strip()
    assert str(a_file / "out.csv") in err and "not a folder" in err and ".tmp" not in err
    if Path("/proc/self").exists():  # a place nobody, not even root, can create files in
        with pytest.raises(OutputError, match=r"cannot write /proc/emoembed-out\.csv") as exc:
            from emoembed.io import atomic_write_text
            atomic_write_text("x", "/proc/emoembed-out.csv")
        assert ".tmp" not in str(exc.value)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert _convert(codec_dir, tmp_path, locked / "out.csv") == 2
        err = capsys.readouterr().err.strip()
        assert f"cannot write {locked / 'out.csv'}: permission denied" in err and ".tmp" not in err
    # a read-only (0444) file: the atomic rename used to replace it silently; refused like the shell's `>`
    read_only = tmp_path / "ro.csv"
    read_only.write_text("keep\n")
    read_only.chmod(0o444)
    assert _convert(codec_dir, tmp_path, read_only) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot write {read_only}: permission denied" in err and ".tmp" not in err
    assert read_only.read_text() == "keep\n" and (read_only.stat().st_mode & 0o777) == 0o444


def test_overwriting_keeps_permission_bits_and_writes_through_symlinks(codec_dir, tmp_path):
    out = tmp_path / "private.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    assert _convert(codec_dir, tmp_path, out) == 0
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_text().startswith("joy,")
    target_dir = tmp_path / "results"
    target_dir.mkdir()
    target = target_dir / "table.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert _convert(codec_dir, tmp_path, link) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)  # the link is kept …
    assert target.read_text().startswith("joy,") and target.stat().st_mode & 0o777 == 0o640  # … its target written
    assert [p.name for p in target_dir.iterdir()] == ["table.csv"]


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from emoembed.io import atomic_write
    def slow(tmp):
        tmp.write_text("partial")
        print("writing", flush=True)
        time.sleep(60)
    atomic_write(sys.argv[1], slow)
""")


def test_temporaries_of_killed_writes_are_cleaned_up(tmp_path):
    from emoembed.io import atomic_write_text, remove_stale_temporaries

    target = tmp_path / "run" / "metrics.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    leftovers = [p.name for p in target.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".metrics.json.") and leftovers[0].endswith(".tmp")
    live = target.parent / f".metrics.json.{os.getppid()}-abcd.tmp"  # a writer that still runs: left alone
    live.write_text("in progress")
    atomic_write_text("{}", target)  # the next write to the same target cleans up
    assert sorted(p.name for p in target.parent.iterdir()) == [live.name, "metrics.json"]
    other = target.parent / f".results.md.{proc.pid}-beef.tmp"  # a dead writer's temporary of another file
    other.write_text("x")
    assert remove_stale_temporaries(target.parent) == [other]  # what a run does when it ends


# ---------------------------------------------------------------------------------------------- run folder lock
HOLDER = textwrap.dedent("""
    import sys, time
    from emoembed.runlock import run_folder_lock
    with run_folder_lock(sys.argv[1], "map"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_two_runs_into_one_folder_the_second_fails_and_stale_locks_are_taken_over(tmp_path, capsys, monkeypatch):
    from emoembed.runlock import LOCK_NAME, run_folder_lock

    monkeypatch.delenv("EMOEMBED_DATA", raising=False)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        recipe = tmp_path / "r.yaml"
        recipe.write_text(MAP_RECIPE)
        assert main(["map", "--recipe", str(recipe), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"run folder {out} is in use by `emoembed map` (pid {holder.pid}" in err and "choose another --out" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the second run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (out / LOCK_NAME).exists()  # a killed run leaves its lock file: stale, since flock died with it
    logs: list[str] = []
    with run_folder_lock(out, "map", log=logs.append):
        assert any("stale lock" in line and str(holder.pid) in line for line in logs)
        with pytest.raises(OutputError, match="is in use by"):  # held here: a second holder is refused
            with run_folder_lock(out, "fit-encoder"):
                pass
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------------------------------------- threads
def test_thread_counts(monkeypatch):
    from emoembed.cli import build_parser
    from emoembed.threads import default_threads, physical_cores, threads_for

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("EMOEMBED_THREADS", raising=False)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        assert default_threads(light=True) == 1
        assert default_threads(light=False) == physical_cores() >= 1
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(physical_cores() * 2))
        assert default_threads() == 1  # several processes per node: never more threads than cores
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert default_threads(light=True) == 3  # the user's setting wins
        parser = build_parser()
        args = parser.parse_args(["predict", "--model", "m", "--format", "vad", "--threads", "2", "x"])
        assert threads_for(args) == 2 and torch.get_num_threads() == 2
        for verb in (["map"], ["fit-encoder", "--modality", "word", "--codec", "c"], ["evaluate"]):
            assert parser.parse_args([*verb, "--threads", "1"]).threads == 1
        assert threads_for(parser.parse_args(["data", "list"])) is None
        # a bad EMOEMBED_THREADS is an error naming it (it was silently ignored); too many threads warn
        from emoembed.errors import ConfigError, EmoembedWarning

        for bad in ("abc", "0", "-2"):
            monkeypatch.setenv("EMOEMBED_THREADS", bad)
            with pytest.raises(ConfigError, match=f"EMOEMBED_THREADS='{bad}': must be a positive integer"):
                default_threads()
        monkeypatch.setenv("EMOEMBED_THREADS", "2")
        assert default_threads(light=True) == 2
        monkeypatch.delenv("EMOEMBED_THREADS")
        many = (os.cpu_count() or 1) * 4 + 1000
        with pytest.warns(EmoembedWarning, match=f"--threads {many} is more than the"):
            assert threads_for(parser.parse_args(["map", "--threads", str(many)])) == many
    finally:
        torch.set_num_threads(before)


def test_bad_threads_env_is_a_one_line_cli_error(monkeypatch, capsys):
    monkeypatch.setenv("EMOEMBED_THREADS", "abc")
    assert main(["map", "--print-config"]) == 2
    assert "error: EMOEMBED_THREADS='abc'" in capsys.readouterr().err


def test_quiet_fit_shows_no_epoch_lines_like_map(vectors_file, tmp_path):
    """``fit-encoder --quiet`` (progress=False) printed every ``epoch N: loss …`` line while ``map --quiet`` hid them."""
    from emoembed.training.encoder import fit

    quiet: list[str] = []
    fit(_fit_recipe(vectors_file), _codec(), [_task()], progress=False, log=quiet.append)
    assert not any(line.startswith("epoch ") for line in quiet)
    loud: list[str] = []
    fit(_fit_recipe(vectors_file), _codec(), [_task()], progress=True, log=loud.append)
    assert [line.split(":")[0] for line in loud if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]
