"""Issue 14, the remaining input kinds: bad image rows named by their table file and line (predict and training),
relative image paths read relative to the table's folder (Hugging Face imagefolder's metadata.csv convention),
EmotionModel.predict(on_bad_image=…), Python API errors that name a row unambiguously (0-based position or the
pandas index label; the CLI keeps the file's line), and `predict … | head -1` without a BrokenPipeError traceback."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emoembed.cli import main
from emoembed.errors import DataError, EmoembedError, index_row_names, row_ref
from emoembed.model import EmotionModel

REPO = Path(__file__).resolve().parent.parent
TINY_IMAGE = {"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32,
              "train_transform": [{"type": "Resize", "size": [32, 32]}],
              "eval_transform": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}]}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((20, 20), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_model_dir(tmp_path_factory, format_registry):
    from emoembed.codec import codec_for
    from emoembed.encoders.image import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder.from_config({**TINY_IMAGE, "dim": 8})
    model = EmotionModel(enc, codec_for(["va", "vad"], format_registry, dim=8, hidden=(8,), dropout=0.0),
                         meta={"trained_formats": ["va"]}).eval()
    d = tmp_path_factory.mktemp("imgmodel")
    model.save_pretrained(d)
    return d


@pytest.fixture
def image_table(tmp_path):
    """data/meta.csv naming images/a.png, images/b.png (present) and images/gone.png (absent), relative to data/."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "a.png").write_bytes(png(20))
    (data / "images" / "b.png").write_bytes(png(220))
    (data / "meta.csv").write_text("file_name,note\nimages/a.png,x\nimages/b.png,y\nimages/gone.png,z\n")
    return data


from cli_run import predict  # noqa: E402  (shared CLI helper)


# ---------------------------------------------------------------------------------------------- images
def test_relative_paths_in_an_input_csv_are_relative_to_its_folder(image_model_dir, image_table, capsys, monkeypatch,
                                                                 tmp_path):
    monkeypatch.chdir(tmp_path)  # not the csv's folder
    meta = image_table / "meta.csv"
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", meta, "--on-bad-image", "error"],
                           capsys)
    assert rc == 2
    gone = image_table / "images" / "gone.png"
    assert (f"{meta}, line 4: {gone}: image file not found (a relative path in a table is read relative to the "
            f"table's folder; tried {gone} (relative to meta.csv's folder) and {tmp_path / 'images' / 'gone.png'} "
            "(relative to the working directory))") in err
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", meta, "--on-bad-image", "skip"],
                           capsys)
    assert rc == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert table["image"].tolist() == [str(image_table / "images" / n) for n in ("a.png", "b.png", "gone.png")]
    assert table["valence"].isna().tolist() == [False, False, True]
    assert f"{meta}, line 4: {gone}: image file not found" in err
    # streamed to --output: the same resolution and the same line in the error
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", meta, "--output",
                            tmp_path / "o.csv", "--on-bad-image", "error", "--quiet"], capsys)
    assert rc == 2 and f"{meta}, line 4: {gone}: image file not found (a relative path in a table" in err
    assert not (tmp_path / "o.csv").exists()


def test_image_rows_keep_the_tables_other_columns(image_model_dir, image_table, capsys, tmp_path):
    folder = image_table / "folders.csv"  # a folder row stands for each image in it: its columns repeat
    folder.write_text("note,file_name,id\nboth,images,1\none,images/b.png,2\n", encoding="utf-8")
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", folder], capsys)
    assert rc == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == ["note", "id", "image", "valence", "arousal"]
    assert table["note"].tolist() == ["both", "both", "one"] and table["id"].tolist() == [1, 1, 2]
    assert table["image"].tolist() == [str(image_table / "images" / n) for n in ("a.png", "b.png", "b.png")]
    meta = image_table / "meta.csv"
    meta.write_text("file_name,note\nimages/a.png,x\nimages/b.png,y\n", encoding="utf-8")
    rc, _, err = predict(["--model", image_model_dir, "--format", "va", "--input", meta, "--output",
                          tmp_path / "o.parquet", "--quiet"], capsys)  # streamed: the same columns
    assert rc == 0, err
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert list(got.columns) == ["note", "image", "valence", "arousal"] and got["note"].tolist() == ["x", "y"]


def test_an_undecodable_image_is_named_with_the_file_line(image_model_dir, image_table, capsys):
    (image_table / "images" / "gone.png").write_bytes(b"not a png")
    meta = image_table / "meta.csv"
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", meta, "--on-bad-image", "error"],
                           capsys)
    assert rc == 2 and f"{meta}, line 4: {image_table / 'images' / 'gone.png'}: not an image file PIL can read" in err


@pytest.fixture(scope="module")
def exists_check_model_dir(tmp_path_factory, format_registry):
    """The tiny image model with `check: exists` (as the packaged face model): files are only checked to exist."""
    from emoembed.codec import codec_for
    from emoembed.encoders.image import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder.from_config({**TINY_IMAGE, "dim": 8, "check": "exists"})
    model = EmotionModel(enc, codec_for(["va", "vad"], format_registry, dim=8, hidden=(8,), dropout=0.0),
                         meta={"trained_formats": ["va"]}).eval()
    d = tmp_path_factory.mktemp("imgmodel-exists")
    model.save_pretrained(d)
    return d


def test_an_undecodable_image_skipped_at_prediction_is_reported_once(exists_check_model_dir, image_table, capsys):
    """With the model's `check: exists` a file that exists but does not decode passes the check and fails while
    being embedded: under --on-bad-image skip its row is empty and stderr names it with the file line, once (a
    fresh-user check found it dropped silently)."""
    (image_table / "images" / "gone.png").write_bytes(b"not a png")
    meta = image_table / "meta.csv"
    gone = image_table / "images" / "gone.png"
    for extra in ([], ["--output", str(image_table / "o.csv"), "--quiet"]):
        rc, out, err = predict(["--model", exists_check_model_dir, "--format", "va", "--input", meta, "--on-bad-image",
                                "skip", *extra], capsys)
        assert rc == 0, err
        assert f"skipped 1 unreadable image(s) of 3 (on_bad_image: skip; their rows are left empty): {meta}, line 4: " \
               f"{gone}: not an image file PIL can read" in err
        assert err.count("unreadable image") == 1
        table = pd.read_csv(io.StringIO(out)) if not extra else pd.read_csv(image_table / "o.csv")
        assert table["valence"].isna().tolist() == [False, False, True]


def test_predict_api_takes_on_bad_image(image_model_dir, image_table):
    model = EmotionModel.from_pretrained(image_model_dir)
    paths = [str(image_table / "images" / n) for n in ("a.png", "gone.png")]
    with pytest.raises(DataError, match=r"^input, row index 1 \(0-based\): .*gone.png: image file not found$"):
        model.predict(paths, "va", on_bad_image="error")
    out = model.predict(paths, "va", on_bad_image="skip")
    assert out["valence"].isna().tolist() == [False, True]
    assert model.encoder.on_bad_image == "error"  # the model's own setting is back after the call
    with pytest.raises(DataError, match=r"^index label 'b': .*gone.png: image file not found$"):
        model.predict(pd.Series(paths, index=["a", "b"]), "va", on_bad_image="error")
    with pytest.raises(EmoembedError, match="on_bad_image must be 'skip' or 'error', got 'ignore'"):
        model.predict(paths, "va", on_bad_image="ignore")


def test_training_names_the_card_csv_and_line_of_a_bad_image(make_registry, tmp_path, format_registry):
    from emoembed import recipes
    from emoembed.codec import codec_for
    from emoembed.tasks import task_from_dataset
    from emoembed.training import encoder as training

    card = {"name": "mine", "title": "t", "modality": "image", "language": None, "dir": "mine",
            "files": {"ratings": {"path": "labels/ratings.csv"}}, "reader": {"type": "delimited", "file": "ratings"},
            "item": {"column": "image"}, "content": {"column": "image"},  # no relative_to: the csv's folder
            "formats": {"va": {"valence": {"column": "v", "scale": [1, 9]}, "arousal": {"column": "a", "scale": [1, 9]}}},
            "splits": {"type": "column", "column": "split", "values": {"train": "train", "dev": "dev", "test": "test"}},
            "licence": "x", "citation": "x", "obtain": "x", "bundle": "no"}
    split = ["train"] * 8 + ["dev"] * 2 + ["test"] * 2
    rows = ["image,v,a,split"] + [f"../pics/{i}.png,{1 + i % 9},{9 - i % 9},{split[i]}" for i in range(12)]
    files = {f"mine/pics/{i}.png": png(10 * i) for i in range(12) if i != 7}
    files["mine/labels/ratings.csv"] = "\n".join(rows) + "\n"
    reg = make_registry({"mine.yaml": card}, files)
    ds = reg.dataset("mine")
    csv = tmp_path / "data" / "mine" / "labels" / "ratings.csv"
    assert str(tmp_path / "data" / "mine" / "pics" / "0.png") in ds.content  # relative to the csv's folder
    task = task_from_dataset(ds, "va")
    recipe = recipes.load_encoder_recipe(REPO / "encoders" / "image-tiny-test.yaml", "image")
    recipe["training"].update({"epochs": 1, "device": "cpu"})
    codec = codec_for(["va"], format_registry, dim=8, hidden=(8,), dropout=0.0)
    with pytest.raises(DataError) as exc:
        training.fit(recipe, codec, [task], progress=False, log=lambda *_: None)
    gone = tmp_path / "data" / "mine" / "pics" / "7.png"
    assert str(exc.value).startswith(f"{csv}, line 9: {gone}: image file not found (a relative path in a table is read "
                                     f"relative to the table's folder; tried {gone} (relative to ratings.csv's folder)")


# ---------------------------------------------------------------------------------------------- rows
def test_row_names():
    assert row_ref(4) == "input, row index 4 (0-based)"
    assert row_ref(4, "") == "row index 4 (0-based)"
    assert row_ref(1, "x", ["in.csv, line 2", "in.csv, line 3"]) == "in.csv, line 3"
    assert index_row_names(pd.Index([2, 3], name="line")) == ["line 2", "line 3"]
    assert index_row_names(pd.Index(["a", 7])) == ["index label 'a'", "index label 7"]


def test_python_api_scale_errors_name_the_row_unambiguously(small_trained_codec):
    codec = small_trained_codec
    ok = [[0.1, 0.2, 0.3]] * 4
    with pytest.raises(EmoembedError, match=r"^row index 4 \(0-based\), column 'arousal': 5 is outside vad's normalised"):
        codec.convert(np.array(ok + [[0.5, 5.0, 0.1]]), "vad", "be5")
    frame = pd.DataFrame(ok + [[0.5, 5.0, 0.1]], columns=["valence", "arousal", "dominance"], index=list("abcde"))
    with pytest.raises(EmoembedError, match=r"^index label 'e', column 'arousal': 5 is outside"):
        codec.convert(frame, "vad", "be5")
    frame.index = [10, 11, 12, 13, 14]
    with pytest.raises(EmoembedError, match=r"^index label 14, column 'arousal': 5 is outside"):
        codec.convert(frame, "vad", "be5")
    with pytest.raises(EmoembedError, match=r"^row index 1 \(0-based\), column 'valence': value is missing"):
        codec.convert([[0.1, 0.2, 0.3], [float("nan"), 0, 0]], "vad", "be5")


def test_cli_scale_errors_keep_the_file_line(small_trained_codec, tmp_path, capsys):
    small_trained_codec.save_pretrained(tmp_path / "codec")
    f = tmp_path / "r.csv"
    f.write_text("word,valence,arousal,dominance\n" + "w,0.1,0.2,0.3\n" * 4 + "x,0.5,5,0.1\n")
    rc, out, err = predict(["--model", tmp_path / "codec", "--source-format", "vad", "--format", "be5", "--input", f],
                           capsys)
    assert rc == 2 and "line 6, column 'arousal': 5 is outside vad's normalised range" in err


def test_predict_api_item_errors_name_the_position(tmp_path, format_registry):
    from tiny_text import tiny_codec, tiny_encoder, tiny_tokenizer_dir

    model = EmotionModel(tiny_encoder(tiny_tokenizer_dir(tmp_path)), tiny_codec(format_registry)).eval()
    with pytest.raises(DataError, match=r"^input, row index 2 \(0-based\): empty text$"):
        model.predict(["good", "bad", "  "], "vad")
    with pytest.raises(DataError, match=r"^index label 'c': missing text"):
        model.predict(pd.Series(["good", "bad", None], index=list("abc")), "vad")


# ---------------------------------------------------------------------------------------------- pipes
def test_a_closed_stdout_pipe_ends_quietly(small_trained_codec, tmp_path):
    small_trained_codec.save_pretrained(tmp_path / "codec")
    rng = np.random.default_rng(0)
    big = tmp_path / "big.csv"  # ~300 kB of output: more than a pipe holds, so the writer meets the closed pipe
    pd.DataFrame(rng.uniform(-1, 1, (6000, 3)), columns=["valence", "arousal", "dominance"]).to_csv(big, index=False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = (f"'{sys.executable}' -m emoembed.cli predict --model '{tmp_path / 'codec'}' --source-format vad --format be5 "
           f"--input '{big}' 2>'{tmp_path / 'err'}' | head -1; echo \"status ${{PIPESTATUS[0]}}\"")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=300).stdout.splitlines()
    err = (tmp_path / "err").read_text()
    assert out == ["joy,anger,sadness,fear,disgust", "status 141"], (out, err)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def test_main_returns_141_on_a_broken_pipe(monkeypatch):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("no fd")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["list", "formats"]) == 141


def test_a_decoding_error_found_late_still_names_the_row(tmp_path):
    """check: exists opens images only when a batch is built; the error then still names the table line."""
    from emoembed.encoders.image import ImageEncoder

    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "ok.png").write_bytes(png(90))
    torch.manual_seed(0)
    enc = ImageEncoder.from_config({**TINY_IMAGE, "dim": 8, "check": "exists"})
    items = [str(tmp_path / "ok.png"), str(tmp_path / "bad.png")]
    assert enc.check_items(items, "mine (train)", rows=["r.csv, line 2", "r.csv, line 3"]) == items
    with pytest.raises(DataError, match=rf"^r.csv, line 3: {tmp_path / 'bad.png'}: not an image file PIL can read$"):
        enc.collate(items)
