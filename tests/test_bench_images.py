"""benchmarks/images.py: the default profile is the full-size CPU recipe (encoders/image-effnet-lite0-fer-60min.yaml
on the packaged codec), each condition an ordinary fit-encoder run folder; a finished condition folder (also a
symlink to a run made elsewhere) is loaded and scored, never retrained; the table has a row per condition.
Tiny: a random-init resnet10t at 32 px (the smoke profile) on 42 generated 40 × 40 faces."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from bench_module import load_benchmark
import yaml

from emoembed.cli import main as cli_main
from emoembed.codec import codec_for
from emoembed.data.dataset import PairedDataset
from emoembed.tasks import task_from_dataset

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")
FER_CARD = {
    "name": "fer2013_fer7", "title": "generated toy faces", "modality": "image", "language": None, "dir": "faces",
    "files": {"table": {"path": "faces.csv"}}, "reader": {"type": "delimited", "file": "table", "sep": ","},
    "item": {"column": "image"}, "content": {"column": "image", "relative_to": "table"},
    "formats": {"fer7": {"column": "label", "encoding": "index"}},
    "splits": {"type": "column", "column": "split", "values": {"train": "train", "dev": "dev", "test": "test"}},
    "licence": "generated", "citation": "none", "obtain": "generated", "bundle": "no",
}
PIPELINE_CFG = {"epochs": 2, "steps_per_epoch": 5, "batch_size": 4, "lr": 0.01, "hidden": [8], "dropout": 0.0, "patience": 2}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("images", "bench_images_profiles")


def png(value: int, rng: np.random.Generator) -> bytes:
    from PIL import Image

    pixels = np.clip(value + rng.normal(0, 20, (40, 40)), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def toy(tmp_path, make_registry, format_registry, bench):
    """A registry whose fer2013_fer7 holds 42 grey faces (6 per class: 4 train, 1 dev, 1 test), a random codec
    with fer7, ferplus8, va, vad saved to tmp_path/codec, and the benchmark's data on those faces."""
    rng = np.random.default_rng(0)
    files, rows = {}, ["image,label,split"]
    for i in range(42):
        label, k = i % 7, i // 7
        split = "train" if k < 4 else "dev" if k == 4 else "test"
        files[f"faces/img{i}.png"] = png(30 + 30 * label, rng)
        rows.append(f"img{i}.png,{label},{split}")
    files["faces/faces.csv"] = "\n".join(rows) + "\n"
    reg = make_registry({"fer2013_fer7.yaml": FER_CARD}, files)
    codec = codec_for(["fer7", "ferplus8", "va", "vad"], format_registry, dim=16, hidden=(16,))
    codec.save_pretrained(tmp_path / "codec")
    fer = task_from_dataset(reg.dataset("fer2013_fer7"), "fer7")
    f = format_registry.get

    def labels(fmt: str, n: int) -> np.ndarray:  # ratings on [-1, 1]; class formats as distributions
        if f(fmt).kind == "regression":
            return rng.uniform(-1, 1, (n, f(fmt).size)).astype(np.float32)
        return rng.dirichlet(np.ones(f(fmt).size), n).astype(np.float32)

    def pair(name: str, a: str, b: str, n: int = 20) -> PairedDataset:
        split = np.array(["train"] * 12 + ["dev"] * 4 + ["test"] * 4)
        return PairedDataset(name, f(a), f(b), np.array([f"w{i}" for i in range(n)]), split, labels(a, n), labels(b, n),
                             (a, b))

    test = fer.items["test"]
    data = bench.BenchData(fer, list(test[:5]), labels("ferplus8", 5),
                           list(fer.items["train"][:8]), rng.uniform(-1, 1, (8, 2)).astype(np.float32),
                           np.arange(8) % 2 == 0,
                           {"ferplus8": pair("fer-plus", "fer7", "ferplus8"), "va": pair("va-be6", "va", "be6"),
                            "vad": pair("vad-be6", "vad", "be6")})
    return reg, data, tmp_path / "codec"


def test_default_profile_is_the_full_cpu_recipe_as_fit_encoder_resolves_it(bench, capsys):
    """No flags: the full-cpu profile on the packaged codec; each condition's recipe is the one `fit-encoder
    --recipe encoders/image-effnet-lite0-fer-60min.yaml [--heads direct | --augment vad]` resolves (so either resumes
    the other's run); the other profiles stay reachable and their size flags are refused by the recipe-file ones."""
    args = bench.parse_args([])
    assert args.profile == "full-cpu" and args.codec == "emoembed/codec-full" and args.out == "runs/bench-images"
    recipes = {c: bench.condition_recipe(args, c) for c in ("bsl", "sng", "aug")}
    for cond, flags in (("bsl", ["--heads", "direct"]), ("sng", []), ("aug", ["--augment", "vad"])):
        assert cli_main(["fit-encoder", "--modality", "image", "--recipe", str(bench.FULL_CPU_RECIPE), *flags,
                         "--print-config"]) == 0
        cli = yaml.safe_load(capsys.readouterr().out)
        assert {k: v for k, v in recipes[cond].items() if k != "source"} == cli
        assert recipes[cond]["source"] == str(REPO / "encoders" / "image-effnet-lite0-fer-60min.yaml")
    sng = recipes["sng"]
    assert sng["name"] == "image-effnet-lite0-fer-60min" and sng["encoder"]["image_size"] == 112
    assert not sng["encoder"]["freeze_backbone"] and sng["training"]["epochs"] == 8
    assert sng["training"]["max_steps_per_epoch"] == 225 and sng["training"]["scheduler"]["type"] == "cosine"
    assert (recipes["bsl"]["heads"], recipes["sng"]["heads"], recipes["aug"]["heads"]) == ("direct", "codec", "codec")
    assert recipes["aug"]["augment"] == ["vad"] and recipes["sng"]["augment"] == []
    ref = bench.parse_args(["--full"])
    assert ref.profile == "reference" and bench.condition_recipe(ref, "sng")["encoder"]["image_size"] == 224
    assert bench.condition_recipe(bench.parse_args(["--profile", "frozen"]), "sng")["encoder"]["freeze_backbone"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--size", "64"])
    assert "the full-cpu profile reads encoders/image-effnet-lite0-fer-60min.yaml" in capsys.readouterr().err


def test_finished_conditions_are_scored_not_retrained(bench, toy, tmp_path, monkeypatch):
    reg, data, codec_dir = toy
    out = tmp_path / "bench"
    first = bench.run(bench.parse_args(["--profile", "smoke", "--codec", str(codec_dir), "--out", str(out),
                                        "--skip-oasis-cv", "--quiet"]), reg, data, PIPELINE_CFG)
    for cond in ("bsl", "sng", "aug"):  # ordinary fit-encoder run folders
        assert {p.name for p in (out / cond).iterdir()} >= {"model.safetensors", "config.json", "recipe.json", "metrics.json"}
        assert not (out / cond / "training_state.pt").exists() and first["conditions"][cond]["trained_now"]
        metrics = json.loads((out / cond / "metrics.json").read_text())
        assert metrics["recipe"] == "image-tiny-test" and metrics["train_cpu_seconds"] > 0
        assert all(h["seconds"] > 0 and h["cpu_seconds"] > 0 for h in metrics["history"])
        row = first["conditions"][cond]
        assert row["train_cpu_seconds"] == pytest.approx(sum(h["cpu_seconds"] for h in metrics["history"]))
        assert row["fer7"]["n"] == 7 and 0 <= row["fer7"]["accuracy"] <= 1 and row["best_epoch"] == 1
    assert json.loads((out / "bsl" / "recipe.json").read_text())["heads"] == "direct"
    assert json.loads((out / "aug" / "recipe.json").read_text())["augment"] == ["vad"]

    # aug moved elsewhere and linked back: the default (full-cpu) profile now only loads and scores
    elsewhere = tmp_path / "elsewhere" / "aug-run"
    elsewhere.parent.mkdir()
    (out / "aug").rename(elsewhere)
    (out / "aug").symlink_to(elsewhere, target_is_directory=True)
    stamps = {c: (out / c / "model.safetensors").stat().st_mtime_ns for c in ("bsl", "sng", "aug")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished condition was retrained")

    monkeypatch.setattr(bench, "run_fit_encoder", no_training)
    args = bench.parse_args(["--codec", str(codec_dir), "--out", str(out), "--skip-oasis-cv"])
    assert args.profile == "full-cpu"
    second = bench.run(args, reg, data, PIPELINE_CFG)
    assert {c: (out / c / "model.safetensors").stat().st_mtime_ns for c in stamps} == stamps
    for cond in ("bsl", "sng", "aug"):
        a, b = first["conditions"][cond], second["conditions"][cond]
        assert not b["trained_now"] and b["recipe"] == "image-tiny-test"
        assert any(d.startswith("name:") for d in b["recipe_differences"])  # smoke run vs the full-cpu profile: noted
        for key in ("fer7", "ferplus8"):
            assert b[key]["accuracy"] == pytest.approx(a[key]["accuracy"])
        assert b["oasis_va"]["r"] == pytest.approx(a["oasis_va"]["r"], abs=1e-6)
        assert b["train_seconds"] == pytest.approx(a["train_seconds"]) and b["best_epoch"] == a["best_epoch"]
    assert second["conditions"]["aug"]["run_path"] == str(elsewhere.resolve())
    assert "ferplus8_relay" in second["conditions"]["sng"] and "ferplus8_relay" not in second["conditions"]["bsl"]

    table = (out / "results.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["conditions"]["bsl"]["fer7"]["accuracy"] == \
        pytest.approx(first["conditions"]["bsl"]["fer7"]["accuracy"])
    rows = {line.split("|")[1].strip(): [x.strip() for x in line.split("|")[2:-1]] for line in table.splitlines()
            if line.startswith("| ")}
    bsl = rows["Bsl (trainable fer7 head, `--heads direct`)"]
    sng = rows["Sng (the codec's frozen fer7 head)"]
    aug = rows["Aug (Sng + codec-made vad)"]
    pipeline = rows["Pipeline: Bsl's fer7 probabilities → FFN mapper (the zero-shot baseline)"]
    assert [bsl[1], sng[1], aug[1]] == [".704", ".644", ".658"]  # the reference beside
    for cond, row in (("bsl", bsl), ("sng", sng), ("aug", aug)):
        r = second["conditions"][cond]
        assert row[0] == f"{r['fer7']['accuracy']:.3f}"
        assert row[4] == bench.minutes(r["train_seconds"]) and row[5] == bench.minutes(r["train_cpu_seconds"])
        assert row[4].endswith(" s") and row[5].endswith(" s")
        assert row[6] == "1 / 1" and f"(image-tiny-test; codec `{codec_dir}`)" in row[7]
    assert sng[2] == (f"{second['conditions']['sng']['ferplus8']['accuracy']:.3f} / "
                      f"{second['conditions']['sng']['ferplus8']['pearson']:.3f}")
    assert pipeline[2].startswith(f"{second['conditions']['bsl']['ferplus8']['accuracy']:.3f} / ")
    assert pipeline[3].startswith(f"{second['conditions']['bsl']['oasis_va']['r']:.3f} (V ")
    assert "profile `full-cpu`" in table and "Runs whose recipe is not the profile's" in table
    assert bench.minutes(None) == "–" and bench.minutes(59.94) == "59.9 s" and bench.minutes(7040.49) == "117.3 min"


def test_a_folder_that_is_not_the_condition_or_is_unfinished_is_refused(bench, toy, tmp_path):
    reg, data, codec_dir = toy
    first = tmp_path / "first"
    bench.run(bench.parse_args(["--profile", "smoke", "--codec", str(codec_dir), "--out", str(first), "--conditions",
                                "bsl", "--skip-oasis-cv", "--quiet"]), reg, data, PIPELINE_CFG)
    out = tmp_path / "bench"
    out.mkdir()
    (out / "sng").symlink_to(first / "bsl", target_is_directory=True)  # a --heads direct run is not sng
    with pytest.raises(SystemExit, match=r"the sng condition needs a run trained with heads 'codec'; its recipe.json has heads 'direct'"):
        bench.run(bench.parse_args(["--codec", str(codec_dir), "--out", str(out), "--conditions", "sng",
                                    "--skip-oasis-cv"]), reg, data, PIPELINE_CFG)
    (out / "aug").mkdir()
    (out / "aug" / "training_state.pt").write_bytes(b"state")
    with pytest.raises(SystemExit, match=r"aug holds an unfinished run \(training_state.pt\): pass --resume"):
        bench.run(bench.parse_args(["--codec", str(codec_dir), "--out", str(out), "--conditions", "aug",
                                    "--skip-oasis-cv"]), reg, data, PIPELINE_CFG)
    assert (out / "aug" / "training_state.pt").read_bytes() == b"state"
