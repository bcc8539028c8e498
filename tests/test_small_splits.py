"""Every batch and split size the data can produce trains and evaluates (issue 16): a last training batch of one
image with BatchNorm, a one-item test split (a metric or a clear "too few items", never NaN plus a numpy warning),
too few items to train or select a model on (a clear error), and `predict --on-bad-image` over a folder with
broken files. Reproduces the issue's case: 30 random images split 25/4/1, batch 8 (25 % 8 == 1)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from emoembed import formats as formats_module
from emoembed.cli import main
from emoembed.data import registry as registry_module
from emoembed.errors import DataError
from emoembed.metrics import evaluate_format
from emoembed.training.encoder import MIN_TRAIN_BATCH, epoch_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parent.parent
CARD = {  # the issue's my_images_card.yaml
    "name": "my_images", "title": "QA random images", "modality": "image", "language": None, "dir": "my_images",
    "files": {"ratings": {"path": "ratings.csv"}}, "reader": {"type": "delimited", "file": "ratings", "sep": ","},
    "item": {"column": "image"}, "content": {"column": "image", "relative_to": "ratings"},
    "formats": {"vad": {v: {"column": v, "scale": [1, 9]} for v in ("valence", "arousal", "dominance")}},
    "missing": "drop", "splits": {"type": "random"}, "licence": "generated noise", "citation": "none",
    "obtain": "generated", "bundle": "no",
}


def make_tiny_image_set(root: Path, n: int = 30) -> Path:
    """The issue's make_tiny_image_set.py: n random 40×40 RGB JPEGs with random 1–9 VAD ratings."""
    from PIL import Image

    folder = root / "my_images"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["image,valence,arousal,dominance"]
    for i in range(n):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(folder / f"images/img{i}.jpg")
        rows.append(f"images/img{i}.jpg,{rng.uniform(1, 9):.2f},{rng.uniform(1, 9):.2f},{rng.uniform(1, 9):.2f}")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def tiny_home(monkeypatch, tmp_path):
    """EMOEMBED_HOME with the repo's mappings/ and encoders/ and the my_images card; EMOEMBED_DATA with the images;
    a small codec knowing vad and va."""
    from emoembed.codec import codec_for
    from emoembed.formats import FormatRegistry

    home = tmp_path / "home"
    (home / "data_registry").mkdir(parents=True)
    shutil.copytree(REPO / "mappings", home / "mappings")
    shutil.copytree(REPO / "encoders", home / "encoders")
    (home / "data_registry" / "my_images.yaml").write_text(yaml.safe_dump(CARD), encoding="utf-8")
    data = tmp_path / "data"
    make_tiny_image_set(data)
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    monkeypatch.setattr(formats_module, "_DEFAULT", None)
    monkeypatch.setenv("EMOEMBED_HOME", str(home))
    monkeypatch.setenv("EMOEMBED_DATA", str(data))
    fmts = FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")
    codec_for(["vad", "va"], fmts, dim=16).save_pretrained(tmp_path / "codec")
    return tmp_path


def test_a_last_batch_of_one_joins_the_one_before():
    mask = np.ones(25, dtype=bool)
    batches = epoch_batches([None], [mask], 8, seed=1, epoch=0, drop_last=False, max_steps=None)
    sizes = sorted(len(b) for _, b in batches)
    assert sizes == [8, 8, 9] and min(sizes) >= MIN_TRAIN_BATCH
    assert sorted(np.concatenate([b for _, b in batches]).tolist()) == list(range(25))  # every item, once
    assert sorted(len(b) for _, b in epoch_batches([None], [np.ones(26, bool)], 8, 1, 0, False, None)) == [2, 8, 8, 8]
    assert [len(b) for _, b in epoch_batches([None], [np.ones(1, bool)], 8, 1, 0, False, None)] == [1]
    assert sorted(len(b) for _, b in epoch_batches([None], [mask], 8, 1, 0, True, None)) == [8, 8, 8]


def test_one_item_regression_split_gives_a_clear_too_few_items_without_warnings():
    from emoembed.formats import FormatRegistry

    fmt = FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")["vad"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail the test
        out = evaluate_format(np.array([[0.1, 0.2, 0.3]]), np.array([[0.0, 0.5, 0.5]]), fmt)
    assert np.isnan(out["primary"]) and out["undefined"].startswith("too few items: pearson needs at least 2, the split has 1")
    assert out["mae"] == pytest.approx((0.1 + 0.3 + 0.2) / 3)
    two = evaluate_format(np.array([[0.1, 0.2, 0.3], [0.2, 0.1, 0.5]]), np.array([[0.0, 0.5, 0.5], [0.4, 0.1, 0.9]]), fmt)
    assert two["primary"] == pytest.approx(1.0) and "undefined" not in two


def test_issue_case_trains_evaluates_and_predicts(tiny_home, capsys):
    """25/4/1 split, batch 8: training used to crash in BatchNorm on the last batch of one image."""
    run = tiny_home / "run"
    code = main(["fit-encoder", "--modality", "image", "--codec", str(tiny_home / "codec"), "--data", "my_images",
                 "--recipe", str(REPO / "encoders" / "image-tiny-test.yaml"), "--out", str(run), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Expected more than 1 value" not in err and "Traceback" not in err and "RuntimeWarning" not in err
    assert "my_images (vad: 25/4/1)" in out
    assert "too few items: pearson needs at least 2, the split has 1 (MAE is reported)" in out
    assert "test mean undefined" in out and "vale MAE" in out
    assert (run / "model.safetensors").is_file()

    # predict over a folder with a truncated JPEG, a text file named .png and a missing file
    folder = tiny_home / "folder"
    folder.mkdir()
    images = sorted((tiny_home / "data" / "my_images" / "images").glob("img*.jpg"))[:3]
    for p in images:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(images[0].read_bytes()[:300])
    (folder / "notes.png").write_text("not an image")
    argv = ["predict", "--model", str(run), "--format", "va", str(folder), str(tiny_home / "gone.jpg")]
    assert main(argv + ["--on-bad-image", "error"]) == 2  # the first bad item in order: the folder's broken.jpg
    assert "broken.jpg: cannot decode the image" in (err := capsys.readouterr().err) and "gone.jpg" not in err
    assert main(argv[:5] + [argv[-1], argv[-2], "--on-bad-image", "error"]) == 2  # the missing file first
    assert "row index 0 (0-based): " + str(tiny_home / "gone.jpg") + ": image file not found" in capsys.readouterr().err
    assert main(argv[:-1] + ["--on-bad-image", "error"]) == 2
    assert "row index 0 (0-based): " in (err := capsys.readouterr().err) and "broken.jpg: cannot decode the image (truncated or corrupt file)" in err
    assert main(argv + ["--on-bad-image", "skip"]) == 0
    out, err = capsys.readouterr()
    rows = {line.split(",")[0].rsplit("/", 1)[-1]: line.split(",")[1:] for line in out.strip().splitlines()[1:]}
    assert set(rows) == {"broken.jpg", "notes.png", "img0.jpg", "img1.jpg", "img10.jpg", "gone.jpg"}
    for bad in ("broken.jpg", "notes.png", "gone.jpg"):
        assert rows[bad] == ["", ""]
    assert all(float(v) == float(v) for name in ("img0.jpg", "img1.jpg", "img10.jpg") for v in rows[name])
    assert "skipped 3 unreadable image(s) of 6 (on_bad_image: skip)" in err and "gone.jpg: image file not found" in err


def test_too_few_items_to_train_or_select_is_a_clear_error(tiny_home):
    from emoembed.codec import EmotionCodec
    from emoembed.recipes import load_encoder_recipe
    from emoembed.tasks import Task
    from emoembed.training.encoder import fit

    codec = EmotionCodec.from_pretrained(tiny_home / "codec")
    paths = [str(p) for p in sorted((tiny_home / "data" / "my_images" / "images").glob("*.jpg"))]
    y = np.random.default_rng(0).uniform(-1, 1, (len(paths), 3)).astype(np.float32)
    recipe = load_encoder_recipe(REPO / "encoders" / "image-tiny-test.yaml", "image")
    recipe["training"].update({"epochs": 1, "device": "cpu"})

    def task(n_train: int, n_dev: int) -> Task:
        s = {"train": slice(0, n_train), "dev": slice(n_train, n_train + n_dev), "test": slice(28, 30)}
        return Task("few", codec.formats["vad"], {k: paths[v] for k, v in s.items()}, {k: y[v] for k, v in s.items()},
                    {}, "image")

    with pytest.raises(DataError, match=r"'few': too few items to train on \(1 usable in the train split; training needs at least 2\)"):
        fit(recipe, codec, [task(1, 4)], progress=False, log=lambda *_: None)
    with pytest.raises(DataError, match=r"'few': too few dev items for model selection \(1; pearson needs at least 2\)"):
        fit(recipe, codec, [task(9, 1)], progress=False, log=lambda *_: None)
    result = fit(recipe, codec, [task(2, 2)], progress=False, log=lambda *_: None)  # the smallest that trains
    assert result.best_epoch == 1
