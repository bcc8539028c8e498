"""What ``predict`` writes beside its predictions and how: the input's other columns (id, metadata…) are kept, in
input order, before the item and the predictions, identically in memory and streamed (resumed, sharded); a kept
column named like an output column is an error naming it; JSON outputs (``--json``, ``.jsonl``/``.json`` files,
``evaluate --json``) hold numbers as JSON numbers, missing values as null and labels as strings."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_run import predict
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_tokenizer_dir,
    toy_corpus,
)

from emoembed.cli import main
from emoembed.model import EmotionModel
from emoembed.streaming import PARTIAL_SUFFIX

N = 41  # not a multiple of the chunk sizes below
VAD = ["valence", "arousal", "dominance"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, format_registry):
    root = tmp_path_factory.mktemp("model")
    tok = tiny_tokenizer_dir(root / "tok")
    model = EmotionModel(tiny_encoder(tok, dim=16, max_length=24),
                         tiny_codec(format_registry, formats=("vad", "be6", "fer7", "nrc10")),
                         meta={"trained_formats": ["vad"]}).eval()
    return model.save_pretrained(root / "m")


@pytest.fixture(scope="module")
def table():
    """An input whose content column sits between an id and metadata (text, a float with gaps, a zip code)."""
    texts = toy_corpus(N, seed=5)[0]
    return pd.DataFrame({"id": [1000 + 7 * i for i in range(N)], "text": texts,
                         "lang": ["en" if i % 3 else "en-GB" for i in range(N)],
                         "score": ["" if i % 5 == 0 else f"{i / 4:g}" for i in range(N)],
                         "zip": [f"{i:05d}" for i in range(N)]})


def write_input(table: pd.DataFrame, path):
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        typed = table.assign(score=[None if s == "" else float(s) for s in table["score"]])
        typed.to_json(path, orient="records", lines=True)
    else:
        table.assign(score=[None if s == "" else float(s) for s in table["score"]]).to_parquet(path, index=False)
    return path


def read_output(path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    return pd.read_csv(path, dtype={"zip": str})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_same_records(a: list[dict], b: list[dict], atol: float = 1e-5):
    """The same keys in the same order and the same values; floats within ``atol`` (chunks pad differently)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x) == list(y)
        for k in x:
            if type(x[k]) is float and type(y[k]) is float:
                assert x[k] == pytest.approx(y[k], abs=atol), k
            else:
                assert x[k] == y[k], k


def assert_rows_equal(a: pd.DataFrame, b: pd.DataFrame, atol: float):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        x, y = a[c].tolist(), b[c].tolist()
        if c in VAD or c in ("joy", "coverage", "score"):
            np.testing.assert_allclose(np.array(x, dtype=float), np.array(y, dtype=float), atol=atol, err_msg=c)
        else:
            assert [str(v) for v in x] == [str(v) for v in y], c


@pytest.mark.parametrize("source", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("target", [".parquet", ".csv", ".jsonl"])
def test_streamed_output_keeps_the_input_columns_as_in_memory(model_dir, table, tmp_path, capsys, source, target):
    src = write_input(table, tmp_path / f"in{source}")
    out = tmp_path / f"out{target}"
    rc, _, err = predict(["--model", model_dir, "--format", "vad", "--input", src, "--output", out,
                          "--chunk-size", "16", "--quiet"], capsys)
    assert rc == 0, err
    streamed = read_output(out)
    # the input's other columns first, in input order, then the item and the predictions
    assert list(streamed.columns) == ["id", "lang", "score", "zip", "text", *VAD, "coverage"]
    assert streamed["id"].tolist() == table["id"].tolist()  # joins back by id, row for row
    assert streamed["text"].tolist() == table["text"].tolist()
    assert [str(z).zfill(5) for z in streamed["zip"]] == table["zip"].tolist()
    # the in-memory predict of the same input (stdout) has the same columns and rows
    rc, stdout, err = predict(["--model", model_dir, "--format", "vad", "--input", src, "--json"], capsys)
    assert rc == 0, err
    in_memory = pd.DataFrame(json_lines(stdout))
    assert_rows_equal(streamed, in_memory, atol=1e-5)  # csv output: 6 significant digits


def test_kept_columns_survive_resume_and_shards(model_dir, table, tmp_path, capsys, monkeypatch):
    src = write_input(table, tmp_path / "in.csv")
    whole = tmp_path / "whole.parquet"
    base = ["--model", model_dir, "--format", "fer7", "--input", src, "--chunk-size", "8", "--quiet"]
    assert predict([*base, "--output", whole], capsys)[0] == 0
    ref = pd.read_parquet(whole)
    assert list(ref.columns) == ["id", "lang", "score", "zip", "text", "angry", "disgust", "fear", "happy",
                                 "sad", "surprise", "neutral", "label", "coverage"]
    out = tmp_path / "out.parquet"
    real, calls = EmotionModel.predict, {"n": 0}

    def dies_on_the_third_chunk(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(EmotionModel, "predict", dies_on_the_third_chunk)
    rc, _, err = predict([*base, "--output", out], capsys)  # what a kill (Ctrl-C) leaves: two whole parts
    assert rc == 130 and "interrupted" in err
    monkeypatch.setattr(EmotionModel, "predict", real)
    parts = tmp_path / ("out.parquet" + PARTIAL_SUFFIX)
    assert len(list(parts.glob("part-*.parquet"))) == 2 and not out.exists()
    rc, _, err = predict([*base, "--output", out, "--keep-columns", "id"], capsys)  # other kept columns: refused
    assert rc == 2 and "keep_columns differ" in err and "--fresh" in err
    rc, _, err = predict([*base, "--output", out], capsys)
    assert rc == 0 and "2 of 6 chunks done by an earlier run" in err
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref)
    pieces = []
    for i in range(3):
        assert predict([*base, "--output", tmp_path / f"s{i}.parquet", "--shard", f"{i}/3"], capsys)[0] == 0
        pieces.append(pd.read_parquet(tmp_path / f"s{i}.parquet"))
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), ref)
    assert ref["label"].map(type).eq(str).all()


def test_keep_columns_chooses_and_a_clash_is_an_error_naming_the_column(model_dir, table, tmp_path, capsys):
    src = write_input(table, tmp_path / "in.csv")
    for extra, cols in ((["--keep-columns", "ID,zip"], ["id", "zip"]), (["--keep-columns", "none"], [])):
        for where in (["--output", tmp_path / "o.csv"], []):  # streamed and in memory
            rc, stdout, err = predict(["--model", model_dir, "--format", "vad", "--input", src, *extra, *where], capsys)
            assert rc == 0, err
            got = pd.read_csv(tmp_path / "o.csv") if where else pd.read_csv(__import__("io").StringIO(stdout))
            assert list(got.columns) == [*cols, "text", *VAD, "coverage"]
    rc, _, err = predict(["--model", model_dir, "--format", "vad", "--input", src, "--keep-columns", "idx"], capsys)
    assert rc == 2 and "--keep-columns names ['idx']" in err
    # an input column named like an output column: an error naming it, before anything is written
    clash = tmp_path / "clash.csv"
    table.assign(Joy=1.0, label="pos").to_csv(clash, index=False)
    for fmt, bad in (("be6", "'Joy'"), ("fer7", "'label'")):
        for where in ([tmp_path / "c.parquet"], [tmp_path / "c.jsonl"], []):
            args = ["--model", model_dir, "--format", fmt, "--input", clash, *(["--output", *where] if where else [])]
            rc, stdout, err = predict(args, capsys)
            assert rc == 2 and bad in err and "clash with the output column" in err and "--keep-columns" in err, err
            assert stdout == "" and not any(p.name.startswith("c.") for p in tmp_path.iterdir())
    rc, _, err = predict(["--model", model_dir, "--format", "be6", "--input", clash, "--output", tmp_path / "c.csv",
                          "--keep-columns", "id,label"], capsys)
    assert rc == 0, err
    assert list(pd.read_csv(tmp_path / "c.csv").columns)[:3] == ["id", "label", "text"]


def test_json_outputs_hold_numbers_nulls_and_label_strings(model_dir, table, tmp_path, capsys):
    src = write_input(table.assign(text=[*table["text"][:-1], "中文"]), tmp_path / "in.csv")  # last: nothing known
    args = ["--model", model_dir, "--input", src, "--oov", "nan"]
    for fmt in ("nrc10", "fer7", "vad"):
        rc, stdout, err = predict([*args, "--format", fmt, "--json"], capsys)
        assert rc == 0, err
        rows = json_lines(stdout)
        rc, _, err = predict([*args, "--format", fmt, "--output", tmp_path / "o.jsonl", "--chunk-size", "10",
                              "--quiet"], capsys)
        assert rc == 0, err
        assert_same_records(json_lines((tmp_path / "o.jsonl").read_text(encoding="utf-8")), rows)  # as in memory
        assert predict([*args, "--format", fmt, "--output", tmp_path / "o.json", "--quiet"], capsys)[0] == 0
        assert_same_records(json.loads((tmp_path / "o.json").read_text(encoding="utf-8")), rows)
        assert len(rows) == N
        for i, row in enumerate(rows):
            assert type(row["id"]) is int and row["id"] == 1000 + 7 * i
            assert row["zip"] == f"{i:05d}" and row["lang"] in ("en", "en-GB")  # text stays text, leading zeros too
            assert row["score"] is None if i % 5 == 0 else row["score"] == pytest.approx(i / 4)
            assert type(row["coverage"]) is float
            values = [row[k] for k in row if k not in ("id", "zip", "lang", "score", "text", "label", "coverage")]
            if i == N - 1:  # unknown content under --oov nan: missing values are null, never NaN or ""
                assert row["coverage"] == 0.0 and all(v is None for v in values) and row.get("label", None) is None
            else:
                assert values and all(type(v) is float and math.isfinite(v) for v in values)
                if fmt != "vad":
                    assert row["label"] is None or type(row["label"]) is str
        if fmt == "fer7":
            assert all(type(r["label"]) is str for r in rows[:-1])
    assert "NaN" not in stdout


def test_text_cells_become_numbers_only_when_they_read_back_exactly():
    from emoembed.tables import text_column_kind

    assert text_column_kind(["1", "-12", "", "0"]) == "int"
    assert text_column_kind(["1", "0.25", None]) == "float"
    assert text_column_kind(["007", "12"]) == "text"  # an identifier with a leading zero
    assert text_column_kind(["0.50"]) == "text" and text_column_kind(["1e3"]) == "text"
    assert text_column_kind(["+3"]) == "text" and text_column_kind(["", ""]) == "empty"
    assert text_column_kind(["2"], seen="text") == "text" and text_column_kind(["2.5"], seen="int") == "float"


def test_outputs_are_written_in_the_format_their_name_says(model_dir, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("happy\nsad\n", encoding="utf-8")
    base = ["--model", model_dir, "--format", "vad", "--input", words, "--no-header"]
    assert predict([*base, "--output", tmp_path / "o.parquet"], capsys)[0] == 0  # in memory (--no-header)
    assert pd.read_parquet(tmp_path / "o.parquet")["text"].tolist() == ["happy", "sad"]
    assert predict([*base, "--output", tmp_path / "o.jsonl"], capsys)[0] == 0
    assert [r["text"] for r in json_lines((tmp_path / "o.jsonl").read_text(encoding="utf-8"))] == ["happy", "sad"]
    rc, _, err = predict([*base, "--output", tmp_path / "o.xlsx"], capsys)
    assert rc == 2 and "--output must be one of .csv, .tsv, .parquet, .jsonl" in err
    rc, _, err = predict([*base, "--output", tmp_path / "o.jsonl", "--json"], capsys)
    assert rc == 2 and "--json prints to stdout" in err
    rc, _, err = predict(["--model", model_dir, "--format", "vad", "happy", "--keep-columns", "id"], capsys)
    assert rc == 2 and "there is no --input" in err


def test_evaluate_json_prints_numbers_and_null(model_dir, capsys, monkeypatch):
    import emoembed.cli.predict as cli_predict

    def rows(model, data, fmt, split):  # metrics as evaluate computes them: numpy scalars, NaN for a constant output
        return {"toy": {"n": np.int64(12), "primary": np.float32(0.25), "per_variable": {"valence": np.float64(0.5),
                        "arousal": np.float64("nan")}, "zero_shot": np.bool_(False), "format": "vad"}}

    monkeypatch.setattr(cli_predict, "evaluate_rows", rows)
    assert main(["evaluate", "--model", str(model_dir), "--data", "toy", "--json"]) == 0
    text = capsys.readouterr().out
    got = json.loads(text)["results"]["toy"]
    assert "NaN" not in text and got["per_variable"]["arousal"] is None
    assert type(got["n"]) is int and got["n"] == 12 and got["primary"] == 0.25 and got["zero_shot"] is False
    assert got["per_variable"]["valence"] == 0.5 and got["format"] == "vad"


def test_codec_conversion_keeps_columns_the_same_way(format_registry, tmp_path, capsys):
    codec_dir = tiny_codec(format_registry, formats=("vad", "be6")).save_pretrained(tmp_path / "codec")
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("id,valence,note,arousal,dominance,joy\n7,0.5,a,0.1,0.2,4\n8,-0.5,,0.3,-0.1,1\n",
                       encoding="utf-8")
    base = ["--model", codec_dir, "--source-format", "vad", "--format", "be6", "--input", ratings]
    rc, stdout, err = predict([*base, "--json"], capsys)
    assert rc == 2 and "'joy' would clash with the output column(s) 'joy'" in err and stdout == ""
    rc, stdout, err = predict([*base, "--keep-columns", "id,note", "--json"], capsys)
    assert rc == 0, err
    rows = json_lines(stdout)
    assert [list(r)[:3] for r in rows] == [["id", "note", "joy"]] * 2
    assert [r["id"] for r in rows] == [7, 8] and [r["note"] for r in rows] == ["a", None]  # empty cell: null
    assert all(type(r[k]) is float for r in rows for k in ("joy", "anger", "surprise"))
