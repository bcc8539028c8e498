"""Headerless input tables (`--no-header`, or numbers on line 1): their columns are named 1, 2, … by position for
`--column`/`--columns`, but an output header never reads `1,anger,…`: the item column is named by what it holds
(`word`, `text`, `image`) or by the name given with `--columns NAME=N`, other columns `column_N`; `--keep-columns`
takes either name. In memory, streamed, as csv and as JSON."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from cli_run import predict
from emoembed.codec import EmotionCodec
from emoembed.conversion import convert_user_table

CODEC = "emoembed/codec-full"
WORDS = "emoembed/words-minilm"
VAD = ["--columns", "valence=2,arousal=3,dominance=4"]


@pytest.fixture
def vad_files(tmp_path):
    """The same headerless word + VAD rows as csv and as tsv."""
    rows = [("happy", 0.8, 0.3, 0.4), ("sad", -0.6, -0.2, -0.3), ("grief", -0.8, 0.1, -0.5)]
    out = {}
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        f = tmp_path / f"vad{suffix}"
        f.write_text("".join(sep.join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
        out[suffix] = f
    return out


def header(out: str) -> list[str]:
    return out.splitlines()[0].split(",")


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_codecs_headerless_item_column_is_named_by_what_it_holds(vad_files, suffix, capsys):
    f = vad_files[suffix]
    base = ["--model", CODEC, "--source-format", "vad", "--format", "ekman7", "--input", f, "--no-header", *VAD]
    rc, out, err = predict(base, capsys)
    assert rc == 0, err
    assert header(out) == ["word", "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral", "label"]
    assert [r.split(",")[0] for r in out.splitlines()[1:]] == ["happy", "sad", "grief"]
    for keep in ("1", "word", "WORD"):  # --keep-columns: the position or the output's name
        rc, out, err = predict([*base, "--keep-columns", keep], capsys)
        assert rc == 0 and header(out)[0] == "word", err
    rc, out, err = predict([*base, "--json"], capsys)
    assert rc == 0 and list(json.loads(out.splitlines()[0]))[0] == "word"
    rc, out, err = predict([*base[:-1], "term=1,valence=2,arousal=3,dominance=4"], capsys)  # the user's own name
    assert rc == 0 and header(out)[0] == "term", err
    rc, out, err = predict([*base, "--keep-columns", "none"], capsys)
    assert rc == 0 and header(out)[0] == "anger"
    # the API: the same names
    codec = EmotionCodec.from_pretrained(CODEC)
    frame = convert_user_table(codec, f, "vad", "be5", {"valence": "2", "arousal": "3", "dominance": "4"}, header=False)
    assert list(frame.columns) == ["word", "joy", "anger", "sadness", "fear", "disgust"]


def test_sentences_ids_and_typos_in_a_headerless_codec_table(tmp_path, capsys):
    f = tmp_path / "texts.tsv"
    f.write_text("t1\tI am so happy today\t0.8\t0.3\t0.4\t12\nt2\tThis is awful\t-0.6\t-0.2\t-0.3\t7\n", encoding="utf-8")
    base = ["--model", CODEC, "--source-format", "vad", "--format", "be5", "--input", f, "--no-header", "--columns"]
    rc, out, err = predict([*base, "id=1,valence=3,arousal=4,dominance=5"], capsys)
    assert rc == 0, err  # the one column of items left is the sentences: text; a column of numbers: column_6
    assert header(out) == ["id", "text", "column_6", "joy", "anger", "sadness", "fear", "disgust"]
    assert out.splitlines()[1].startswith("t1,I am so happy today,12,")
    rc, out, err = predict([*base, "valence=3,arousal=4,dominance=5"], capsys)  # t1, t2: identifiers, not items
    assert rc == 0 and header(out)[:3] == ["column_1", "text", "column_6"], err
    g = tmp_path / "two.csv"  # two columns of words, neither an identifier: which is the item is not guessed
    g.write_text("happy,joy,0.8,0.3,0.4\nsad,sorrow,-0.6,-0.2,-0.3\n", encoding="utf-8")
    rc, out, err = predict(["--model", CODEC, "--source-format", "vad", "--format", "be5", "--input", g,
                            "--no-header", "--columns", "valence=3,arousal=4,dominance=5"], capsys)
    assert rc == 0 and header(out)[:2] == ["column_1", "column_2"], err
    w = tmp_path / "ids_words.csv"
    w.write_text("S1,happy,0.8,0.3,0.4\nS2,sad,-0.6,-0.2,-0.3\n", encoding="utf-8")
    rc, out, err = predict(["--model", CODEC, "--source-format", "vad", "--format", "be5", "--input", w,
                            "--no-header", "--columns", "valence=3,arousal=4,dominance=5"], capsys)
    assert rc == 0 and header(out)[:2] == ["column_1", "word"], err
    rc, out, err = predict([*base, "valance=3,arousal=4,dominance=5"], capsys)
    assert rc == 2 and ("--columns valance=3: 'valance' is not a variable of the source format; did you mean "
                        "'valence'?") in err
    rc, out, err = predict([*base, "id=3,valence=3,arousal=4,dominance=5"], capsys)
    assert rc == 2 and "--columns id=3: column '3' holds the vad values read" in err
    rc, out, err = predict([*base, "joy=1,valence=3,arousal=4,dominance=5"], capsys)
    assert rc == 2 and "input column(s) 'joy' would clash with the output column(s) 'joy'" in err
    rc, out, err = predict([*base, "id=1,valence=3,arousal=4,dominance=5", "--keep-columns", "text"], capsys)
    assert rc == 2 and "--columns id=1 names a column for the output, but --keep-columns leaves it out" in err


def test_a_word_models_headerless_table_names_its_columns(tmp_path, capsys):
    """A headerless word list with gold ratings: the words are the content (the one column that is not numbers),
    named `word` as always; the ratings column is `column_2`, or what --columns calls it; streamed the same."""
    f = tmp_path / "rated.csv"
    f.write_text("happy,7.5\nsad,2.1\ngrief,1.5\n", encoding="utf-8")  # numbers on line 1: headerless
    base = ["--model", WORDS, "--format", "vad", "--input", f]
    rc, out, err = predict(base, capsys)
    assert rc == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == ["column_2", "word", "valence", "arousal", "dominance", "coverage"]
    assert table["word"].tolist() == ["happy", "sad", "grief"] and table["column_2"].tolist() == [7.5, 2.1, 1.5]
    rc, streamed, err = predict([*base, "--output", tmp_path / "o.csv"], capsys)  # read as in memory, not line 1 = header
    assert rc == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "o.csv"), table, check_dtype=False, atol=1e-4)
    rc, out, err = predict([*base, "--no-header", "--columns", "gold=2"], capsys)
    assert rc == 0 and header(out)[:2] == ["gold", "word"], err
    for keep in ("2", "column_2"):
        rc, out, err = predict([*base, "--keep-columns", keep], capsys)
        assert rc == 0 and header(out)[:2] == ["column_2", "word"], err
    rc, out, err = predict([*base, "--output", tmp_path / "p.csv", "--chunk-size", "2"], capsys)
    assert rc == 2 and "has no header line (--no-header, or numbers on line 1): it is read in memory" in err
    two = tmp_path / "two.tsv"
    two.write_text("happy\tjoyful\nsad\tgloomy\n", encoding="utf-8")
    rc, out, err = predict(["--model", WORDS, "--format", "vad", "--input", two, "--no-header"], capsys)
    assert rc == 2 and "its columns are named 1, 2 by position; pass --column N" in err
    ids = tmp_path / "ids.tsv"
    ids.write_text("w1\thappy\nw2\tsad\n", encoding="utf-8")
    for how in ([], ["--column", "2"], ["--columns", "word=2"], ["--columns", "id=1"], ["--columns", "id=1,word=2"]):
        rc, out, err = predict(["--model", WORDS, "--format", "vad", "--input", ids, "--no-header", *how], capsys)
        assert rc == 0, (how, err)
        names = header(out)
        assert names[1:3] == ["word", "valence"] and names[0] == ("id" if how and "id=1" in how[-1] else "column_1"), how
        assert out.splitlines()[1].startswith("w1,happy,")
    rc, out, err = predict(["--model", WORDS, "--format", "vad", "--input", ids, "--no-header", "--columns",
                            "word=2,id=2"], capsys)
    assert rc == 2 and "--columns id=2: column '2' holds the content, which the output calls 'word'" in err


def test_columns_names_kept_columns_of_a_table_with_a_header_too(tmp_path, capsys):
    f = tmp_path / "h.csv"
    f.write_text("ID,word,gold\nw1,happy,8\nw2,sad,2\n", encoding="utf-8")
    base = ["--model", WORDS, "--format", "vad", "--input", f, "--columns", "key=id,rating=GOLD"]
    rc, out, err = predict(base, capsys)
    assert rc == 0 and header(out)[:3] == ["key", "rating", "word"], err
    rc, out, err = predict([*base, "--output", tmp_path / "o.jsonl"], capsys)  # streamed
    assert rc == 0, err
    first = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert list(first)[:3] == ["key", "rating", "word"] and first["key"] == "w1" and first["rating"] == 8
    rc, out, err = predict(["--model", WORDS, "--format", "vad", "--input", f, "--columns", "valence=gold"], capsys)
    assert rc == 2 and "input column(s) 'valence' would clash" in err and "--columns NEWNAME=COLUMN" in err
    rc, out, err = predict(["--model", WORDS, "--format", "vad", "happy", "--columns", "id=1"], capsys)
    assert rc == 2 and "--column, --columns and --no-header are about --input FILE" in err
