"""Streaming predict: chunked output equals the in-memory predict, an interrupted run resumes to the same output,
shards together equal the whole, bad rows are named by file line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_tokenizer_dir,
    toy_corpus,
)

from emoembed.cli import main
from emoembed.errors import DataError, EmoembedError
from emoembed.model import EmotionModel
from emoembed.streaming import PARTIAL_SUFFIX, iter_chunks, parse_shard, predict_file

N = 103  # not a multiple of any chunk size used below


@pytest.fixture(scope="module")
def model(tmp_path_factory, format_registry):
    tok = tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))
    return EmotionModel(tiny_encoder(tok, dim=16, max_length=24), tiny_codec(format_registry),
                        meta={"trained_formats": ["vad"]}).eval()


@pytest.fixture(scope="module")
def texts():
    return toy_corpus(N, seed=3)[0]


@pytest.fixture
def inputs(tmp_path, texts):
    frame = pd.DataFrame({"id": range(N), "text": texts})
    out = {"csv": tmp_path / "in.csv", "jsonl": tmp_path / "in.jsonl", "parquet": tmp_path / "in.parquet"}
    frame.to_csv(out["csv"], index=False)
    frame.to_json(out["jsonl"], orient="records", lines=True)
    frame.to_parquet(out["parquet"], index=False)
    return out


def read(path):
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def assert_same(a: pd.DataFrame, b: pd.DataFrame, atol=1e-5):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        if not pd.api.types.is_numeric_dtype(a[c]):
            assert a[c].tolist() == b[c].tolist(), c
        else:
            np.testing.assert_allclose(a[c].to_numpy(float), b[c].to_numpy(float), atol=atol, err_msg=c)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_chunked_equals_in_memory(model, texts, inputs, tmp_path, kind):
    whole = model.predict(texts, "be6").reset_index()
    whole.insert(0, "id", range(N))  # the input's other column, kept in front
    res = predict_file(model, inputs[kind], tmp_path / "out.parquet", "be6", chunk_size=10, progress=False)
    assert (res.rows, res.chunks, res.resumed_chunks) == (N, 11, 0)
    assert_same(read(tmp_path / "out.parquet"), whole)
    assert not (tmp_path / ("out.parquet" + PARTIAL_SUFFIX)).exists()
    predict_file(model, inputs[kind], tmp_path / "out.csv", "be6", chunk_size=32, progress=False)
    assert_same(read(tmp_path / "out.csv"), whole, atol=1e-5)  # %.6g in the csv


def test_interrupted_run_resumes_without_duplicates(model, texts, inputs, tmp_path, monkeypatch):
    whole = tmp_path / "whole.parquet"
    predict_file(model, inputs["csv"], whole, "vad", chunk_size=8, progress=False)
    out = tmp_path / "out.parquet"
    calls = {"n": 0}
    real = EmotionModel.predict

    def dies_on_the_fifth_chunk(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # what a kill leaves: four whole parts, no output
        return real(self, *a, **kw)

    monkeypatch.setattr(EmotionModel, "predict", dies_on_the_fifth_chunk)
    with pytest.raises(KeyboardInterrupt):
        predict_file(model, inputs["csv"], out, "vad", chunk_size=8, progress=False)
    parts = tmp_path / ("out.parquet" + PARTIAL_SUFFIX)
    assert not out.exists() and len(list(parts.glob("part-*.parquet"))) == 4
    (parts / ".part-00000004.parquet.x1.tmp").write_bytes(b"half a file")  # a write cut short by the kill
    monkeypatch.setattr(EmotionModel, "predict", real)
    # other settings refuse to mix with the partial results ...
    with pytest.raises(DataError, match="earlier interrupted run.*chunk_size differ.*add --fresh"):
        predict_file(model, inputs["csv"], out, "vad", chunk_size=16, progress=False)
    # ... the same settings continue where it stopped
    res = predict_file(model, inputs["csv"], out, "vad", chunk_size=8, progress=False)
    assert (res.resumed_chunks, res.chunks, res.rows) == (4, 13, N)
    got, ref = read(out), read(whole)
    assert_same(got, ref, atol=0)
    assert got["text"].tolist() == texts and not parts.exists()


def test_shards_together_equal_the_whole(model, inputs, tmp_path):
    whole = tmp_path / "whole.parquet"
    predict_file(model, inputs["parquet"], whole, "be6", chunk_size=7, progress=False)
    pieces = []
    for i in range(3):
        res = predict_file(model, inputs["parquet"], tmp_path / f"s{i}.parquet", "be6", chunk_size=7, shard=(i, 3),
                           progress=False)
        assert res.rows in (34, 35)
        pieces.append(read(tmp_path / f"s{i}.parquet"))
    assert_same(pd.concat(pieces, ignore_index=True), read(whole), atol=0)
    # more shards than rows: the empty ones still write an (empty) table with the columns
    small = tmp_path / "small.csv"
    pd.DataFrame({"text": ["happy day", "sad dog"]}).to_csv(small, index=False)
    res = predict_file(model, small, tmp_path / "e.csv", "vad", shard=(0, 3), progress=False)
    assert res.rows == 0 and list(read(tmp_path / "e.csv").columns) == ["text", "valence", "arousal", "dominance"]


def test_iter_chunks_windows_and_shard_parsing(inputs, texts):
    got = list(iter_chunks(inputs["jsonl"], "text", 10, start=15, stop=48))
    assert [(i, first, len(items)) for i, first, items in got] == [(0, 15, 10), (1, 25, 10), (2, 35, 10), (3, 45, 3)]
    assert sum((items for _, _, items in got), []) == texts[15:48]
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) == (0, 1)
    for bad in ("5/5", "a/b", "1", "-1/3"):
        with pytest.raises(EmoembedError):
            parse_shard(bad)


def test_cli_streams_names_bad_lines_and_keeps_nothing_half_written(model, inputs, tmp_path, capsys):
    mdir = model.save_pretrained(tmp_path / "m")
    out = tmp_path / "o.parquet"
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(inputs["csv"]), "--output", str(out),
                 "--chunk-size", "25", "--shard", "1/2", "--quiet"]) == 0
    assert f"wrote 52 rows to {out}" in capsys.readouterr().err and len(read(out)) == 52
    # the streamed file equals the in-memory predict of the same command (printed to stdout), coverage column included
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(inputs["csv"]), "--output",
                 str(tmp_path / "all.parquet"), "--chunk-size", "16", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(inputs["csv"])]) == 0
    in_memory = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    streamed = read(tmp_path / "all.parquet")
    assert "coverage" in streamed.columns
    assert_same(streamed, in_memory, atol=1e-4)  # stdout keeps 4 decimals
    words = tmp_path / "words.csv"  # pandas would read these as missing values; they are texts
    words.write_text("text\nNone\nNA\nnull\nn/a\n", encoding="utf-8")
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(words), "--output",
                 str(tmp_path / "w.parquet"), "--quiet"]) == 0
    assert read(tmp_path / "w.parquet")["text"].tolist() == ["None", "NA", "null", "n/a"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,fine\n2,good\n3,\n", encoding="utf-8")
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(bad), "--output",
                 str(tmp_path / "b.csv"), "--quiet"]) == 2
    assert f"{bad}, line 4, column 'text': empty cell" in capsys.readouterr().err
    assert not (tmp_path / "b.csv").exists() and not (tmp_path / ("b.csv" + PARTIAL_SUFFIX)).exists()
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--input", str(inputs["csv"]), "--output",
                 str(tmp_path / "x.xlsx"), "--chunk-size", "10"]) == 2
    assert "--output must be one of .csv, .tsv, .parquet" in capsys.readouterr().err
    assert main(["predict", "--model", str(mdir), "--format", "vad", "--shard", "0/2", "happy"]) == 2
    assert "give both" in capsys.readouterr().err


def test_data_error_leaves_nothing_and_the_corrected_rerun_needs_no_fresh(model, texts, tmp_path, capsys,
                                                                          monkeypatch):
    mdir = model.save_pretrained(tmp_path / "m")
    src = tmp_path / "late.csv"
    rows = list(texts[:10])
    rows[6] = ""  # line 8: an empty cell after three whole chunks of 2
    pd.DataFrame({"id": range(10), "text": rows}).to_csv(src, index=False)
    out = tmp_path / "late_out.csv"
    cmd = ["predict", "--model", str(mdir), "--format", "vad", "--input", str(src), "--output", str(out),
           "--chunk-size", "2", "--quiet"]
    assert main(cmd) == 2
    assert f"{src}, line 8, column 'text': empty cell" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / ("late_out.csv" + PARTIAL_SUFFIX)).exists()
    rows[6] = "a fixed line"
    pd.DataFrame({"id": range(10), "text": rows}).to_csv(src, index=False)  # input size and mtime change
    assert main(cmd) == 0  # no --fresh needed
    assert read(out)["text"].tolist() == rows
    # the same for a library call whose error comes from the model (here: any DataError mid-stream)
    out2 = tmp_path / "o2.parquet"
    calls = {"n": 0}
    real = EmotionModel.predict

    def bad_third_chunk(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise DataError("late.csv, line 6: unknown word 'zzqxv'")
        return real(self, *a, **kw)

    monkeypatch.setattr(EmotionModel, "predict", bad_third_chunk)
    with pytest.raises(DataError, match="zzqxv"):
        predict_file(model, src, out2, "vad", chunk_size=2, progress=False)
    monkeypatch.setattr(EmotionModel, "predict", real)
    assert not out2.exists() and not (tmp_path / ("o2.parquet" + PARTIAL_SUFFIX)).exists()
    assert predict_file(model, src, out2, "vad", chunk_size=2, progress=False).resumed_chunks == 0


def test_data_error_on_resume_keeps_the_interrupted_runs_parts(model, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out.parquet"
    parts = tmp_path / ("out.parquet" + PARTIAL_SUFFIX)
    real = EmotionModel.predict
    calls = {"n": 0}

    def fails_at(n, exc):
        def predict(self, *a, **kw):
            calls["n"] += 1
            if calls["n"] == n:
                raise exc
            return real(self, *a, **kw)
        return predict

    monkeypatch.setattr(EmotionModel, "predict", fails_at(3, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # an interruption keeps its two whole parts to resume
        predict_file(model, inputs["csv"], out, "vad", chunk_size=10, progress=False)
    assert sorted(p.name for p in parts.glob("part-*")) == ["part-00000000.parquet", "part-00000001.parquet"]
    calls["n"] = 0
    monkeypatch.setattr(EmotionModel, "predict", fails_at(3, DataError("in.csv, line 52: bad")))
    with pytest.raises(DataError, match="line 52"):  # resumed, adds chunks 2 and 3, then fails on chunk 4
        predict_file(model, inputs["csv"], out, "vad", chunk_size=10, progress=False)
    assert sorted(p.name for p in parts.glob("part-*")) == ["part-00000000.parquet", "part-00000001.parquet"]
    monkeypatch.setattr(EmotionModel, "predict", real)
    res = predict_file(model, inputs["csv"], out, "vad", chunk_size=10, progress=False)
    assert (res.resumed_chunks, res.chunks, res.rows) == (2, 11, N) and not parts.exists()
