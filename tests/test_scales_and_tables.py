"""Issue 14, kinds 1 and 3: a rating scale is never assumed silently, and the user's own tables are read as they
are (column names in any case, sniffed delimiters, no token turned into a missing value, file line numbers in
errors). The cases are copies of ../shared/cases (tests/cases) with their right outcomes."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoembed.cli import main
from emoembed.errors import EmoembedError
from emoembed.formats import default_registry
from emoembed.inputs import InputError, content_items, label_table, parse_columns_option, read_user_table, sniff_delimiter
from emoembed.scales import AssumedScaleWarning, InputScaleError, ScaleWarning, fitting_scale, suspicious_scale

CASES = Path(__file__).parent / "cases"


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory, _small_codec_master):
    d = tmp_path_factory.mktemp("codec")
    _small_codec_master.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def goemo_codec_dir(tmp_path_factory):
    """vad, be5, goemotions28, ekman7 (dim 16), trained for a few seconds on bundled pairs."""
    from emoembed.data.registry import DataRegistry
    from emoembed.recipes import resolve_codec_recipe as resolve_recipe
    from emoembed.training.codec import load_pairs, train_codec
    from emoembed.settings import bundled_data_dir

    reg = DataRegistry.load(roots=[bundled_data_dir()])
    r = resolve_recipe({"pairs": ["warriner_emomap", "goemotions_ekman"], "codec": {"dim": 16, "hidden": [32], "dropout": 0.0},
                        "training": {"epochs": 2, "steps_per_epoch": 60, "batch_size": 64, "lr": 0.005}})
    codec = train_codec(r, load_pairs(r, reg, log=lambda *_: None), reg.formats, progress=False, log=lambda *_: None).codec
    d = tmp_path_factory.mktemp("goemo")
    codec.save_pretrained(d)
    return d


from cli_run import predict  # noqa: E402  (shared CLI helper)


# ---------------------------------------------------------------------------------------------- 1. scales
def test_scale_helpers():
    assert fitting_scale(np.array([1.8, 4.2, 3.0])) == (1.0, 5.0)
    assert fitting_scale(np.array([1.6, 8.53])) == (1.0, 9.0)
    assert fitting_scale(np.array([12.0, 87.0])) == (0.0, 100.0)
    assert fitting_scale(np.array([-250.0])) is None
    assert suspicious_scale(np.array([[0.91, 0.52, 0.7], [0.12, 0.46, 0.25]]), (-1, 1)) == (0.0, 1.0)
    assert suspicious_scale(np.array([[0.5, -0.2, 0.1]]), (-1, 1)) is None  # a negative value: really [-1, 1]
    assert suspicious_scale(np.array([[2.0], [4.5], [3.0]]), (1, 9)) == (1.0, 5.0)
    assert suspicious_scale(np.array([[2.0], [8.0]]), (1, 9)) is None
    assert suspicious_scale(np.array([[0.87, 0.26, 0.55]]), (-1, 1)) is None  # one item: no evidence


def test_1to5_ratings_without_a_scale_are_an_error_naming_line_column_value(codec_dir, capsys):
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "emobank_1to5.csv"], capsys)
    assert rc == 2 and out == ""
    assert "line 2, column 'valence': 4.2 is outside vad's normalised range [-1, 1]" in err
    assert "--input-scale 1,5" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "be5", "--format", "vad", "--input",
                            CASES / "be5_1to5.csv", "--output-scale", "1,9"], capsys)
    assert rc == 2 and "line 2, column 'joy': 4.6 is outside be5's normalised range [0, 1]" in err and "--input-scale 1,5" in err


def test_1to5_ratings_with_their_scale_convert_sensibly(codec_dir, capsys, tmp_path):
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "emobank_1to5.csv", "--input-scale", "1,5", "--output", tmp_path / "o.csv"], capsys)
    assert rc == 0 and "reading vad values on the scale [1, 5]" in err
    df = pd.read_csv(tmp_path / "o.csv").set_index("text")
    assert df.loc["S1", "joy"] > df.loc["S1", "sadness"] and df.loc["S2", "joy"] < df.loc["S1", "joy"]
    assert not ((df[["joy", "anger", "fear"]] > 0.99).all(axis=1)).any()  # never joy 1 and anger 1 and fear 1
    rc, out, err = predict(["--model", codec_dir, "--source-format", "be5", "--format", "vad", "--input",
                            CASES / "be5_1to5.csv", "--input-scale", "1,5", "--output-scale", "1,9",
                            "--output", tmp_path / "v.csv"], capsys)
    v = pd.read_csv(tmp_path / "v.csv").set_index("word")
    assert rc == 0 and v.loc["vacation", "valence"] > 5 > v.loc["funeral", "valence"]
    assert v.to_numpy().max() < 9  # not 9/9/9


def test_the_assumed_scale_is_printed_and_0to1_values_warned(codec_dir, capsys):
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "nrc_vad_style.tsv"], capsys)
    assert rc == 0
    assert "no --input-scale given: reading vad values on its normalised range [-1, 1]" in err
    assert "warning: every vad value lies within 0–1" in err and "--input-scale 0,1" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "nrc_vad_style.tsv", "--input-scale", "0,1"], capsys)
    assert rc == 0 and "warning" not in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,5"], capsys)
    assert rc == 2 and "line 2, column 'valence': 8.53 is outside the input scale [1, 5]" in err and "--input-scale 1,9" in err


def test_convert_api_checks_the_scale_too(small_trained_codec):
    codec = small_trained_codec
    with pytest.raises(InputScaleError, match=r"row index 0 \(0-based\), column 'valence': 4.2 is outside vad's normalised range.*input_scale=\(1, 5\)"):
        codec.convert([[4.2, 3.4, 3.1], [1.8, 3.6, 2.6]], "vad", "be5")
    with pytest.warns(ScaleWarning, match="within 0–1"):
        codec.convert([[0.91, 0.52, 0.70], [0.12, 0.46, 0.25]], "vad", "be5")
    with pytest.warns(ScaleWarning, match="within 1–5"):
        codec.convert([[4.2, 3.4, 3.1], [1.8, 3.6, 2.6]], "vad", "be5", input_scale=(1, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # genuinely on [-1, 1] and said so: silent
        codec.convert([[0.9, -0.2, 0.4], [-0.8, 0.5, -0.3]], "vad", "be5", input_scale=(-1, 1))
    frame = pd.DataFrame({"valence": [0.1, 7.0], "arousal": [0.0, 0.0], "dominance": [0.0, 0.0]},
                         index=pd.Index([2, 3], name="line"))
    with pytest.raises(InputScaleError, match="line 3, column 'valence': 7"):
        codec.convert(frame, "vad", "be5")
    with pytest.raises(InputScaleError, match="column 'joy'"):
        codec.convert([[2.0, 0, 0, 0, 0]], "be5", "vad")


def test_convert_api_says_which_scale_it_assumed_as_the_cli_does(small_trained_codec, codec_dir, capsys, tmp_path):
    """No input_scale: the API issues an AssumedScaleWarning (pointing at the caller's line) with what the CLI prints
    as a note; an explicit scale, a class source or a refused table: none. Out-of-range values raise the CLI's
    InputScaleError, with the same text but for how the row is named."""
    codec = small_trained_codec
    values = [[0.9, -0.2, 0.4], [-0.8, 0.5, -0.3]]
    with pytest.warns(AssumedScaleWarning) as record:
        via_api = codec.convert(values, "vad", "be5")
    assert [str(w.message) for w in record] == [
        "no input_scale given: reading vad values on its normalised range [-1, 1]; pass input_scale=(low, high) if "
        "they are ratings on another scale, or input_scale=(-1, 1) to say they are normalised"]
    assert record[0].filename == __file__  # the caller's line, not emoembed's
    with pytest.warns(AssumedScaleWarning, match=r"reading be5 values on its normalised range \[0, 1\]"):
        codec.convert([[0.7, 0.1, 0.1, 0.1, 0.0]], "be5", "vad")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.convert(values, "vad", "be5", input_scale=(-1, 1))
        codec.convert([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]], "nrc10", "vad")  # a class source has no rating scale
    f = tmp_path / "vad.csv"
    f.write_text("valence,arousal,dominance\n0.9,-0.2,0.4\n-0.8,0.5,-0.3\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 0 and err.count("no --input-scale given") == 1 and "AssumedScaleWarning" not in err
    assert ("emoembed predict: note: no --input-scale given: reading vad values on its normalised range [-1, 1]; pass "
            "--input-scale LOW,HIGH if they are ratings on another scale\n") in err
    np.testing.assert_allclose(pd.read_csv(io.StringIO(out))[list(via_api.columns)].to_numpy(), via_api.to_numpy(),
                               atol=1e-4)
    g = tmp_path / "vad_1to5.csv"
    g.write_text("valence,arousal,dominance\n4.2,3.4,3.1\n1.8,3.6,2.6\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", g], capsys)
    hint = ("4.2 is outside vad's normalised range [-1, 1], which is what values are read on when no --input-scale is "
            "given; the values (1.8 to 4.2) fit a 1–5 rating scale: if that is the scale, pass --input-scale 1,5 "
            "(input_scale=(1, 5))")
    assert rc == 2 and err == f"emoembed predict: error: {g}, line 2, column 'valence': {hint}\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused: no note of a scale the values were not read on
        with pytest.raises(InputScaleError) as exc:
            codec.convert([[4.2, 3.4, 3.1], [1.8, 3.6, 2.6]], "vad", "be5")
    assert str(exc.value) == f"row index 0 (0-based), column 'valence': {hint}"


def test_help_lists_each_formats_normalised_range(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert "normalised ranges" in out
    for name, rng in (("vad", "[-1, 1]"), ("be5", "[0, 1]"), ("goemotions28", "probabilities in [0, 1]")):
        assert any(line.split()[:1] == [name] and rng in line for line in out.splitlines()), name


# ---------------------------------------------------------------------------------------------- 3. tables
def test_nrc_style_headers_and_tabs_are_read(codec_dir, capsys, tmp_path):
    frame = read_user_table(CASES / "nrc_vad_style.tsv")
    assert list(frame.columns) == ["Word", "Valence", "Arousal", "Dominance"] and list(frame.index) == [2, 3]
    txt = tmp_path / "NRC-VAD-Lexicon.txt"  # NRC's own files are tab-separated .txt
    txt.write_text((CASES / "nrc_vad_style.tsv").read_text())
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", txt,
                            "--input-scale", "0,1"], capsys)
    assert rc == 0 and out.splitlines()[0].startswith("Word,joy") and len(out.splitlines()) == 3


def test_columns_option_maps_any_layout(codec_dir, capsys, tmp_path):
    f = tmp_path / "warriner_style.csv"
    f.write_text("Word,V.Mean.Sum,A.Mean.Sum,D.Mean.Sum\nvacation,8.53,5.67,7.23\nfuneral,1.6,6.1,3.0\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f,
                            "--input-scale", "1,9"], capsys)
    assert rc == 2 and "missing column(s) ['valence', 'arousal', 'dominance']" in err and "--columns valence=COLUMN" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f, "--input-scale",
                            "1,9", "--columns", "valence=v.mean.sum,arousal=A.Mean.Sum,dominance=D.Mean.Sum"], capsys)
    assert rc == 0 and out.splitlines()[0] == "Word,joy,anger,sadness,fear,disgust"
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f, "--input-scale",
                            "1,9", "--columns", "valence=Nope,arousal=A.Mean.Sum,dominance=D.Mean.Sum"], capsys)
    assert rc == 2 and "no column 'Nope' (named by --columns valence=…" in err
    assert parse_columns_option("valence=V, arousal=A") == {"valence": "V", "arousal": "A"}
    with pytest.raises(EmoembedError, match="VARIABLE=COLUMN"):
        parse_columns_option("valence")


def test_headerless_numeric_tables_get_positional_columns(tmp_path):
    f = tmp_path / "lex.txt"
    f.write_text("aback\t0.385\t0.407\t0.288\nabacus\t0.51\t0.276\t0.485\n")
    frame = read_user_table(f)
    assert list(frame.columns) == ["1", "2", "3", "4"] and frame.loc[1, "1"] == "aback"
    values, used = label_table(frame, default_registry().get("vad"), str(f),
                               parse_columns_option("valence=2,arousal=3,dominance=4"))
    assert values.loc[2, "arousal"] == pytest.approx(0.276) and used == ["2", "3", "4"]


def test_a_name_column_for_a_multilabel_source(goemo_codec_dir, capsys, tmp_path):
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            CASES / "goemo_names.csv", "--output", tmp_path / "o.csv"], capsys)
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "o.csv")
    assert list(df.columns) == ["id", "valence", "arousal", "dominance"] and list(df["id"]) == ["t1", "t2", "t3"]
    many = tmp_path / "many.csv"
    many.write_text('id,labels\nt1,"joy,love"\nt2,Grief\nt3,\n')
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            many, "--column", "labels"], capsys)
    assert rc == 0, err
    bad = tmp_path / "bad.csv"
    bad.write_text("id,emotion\nt1,joy\nt2,glee\n")
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            bad, "--column", "emotion"], capsys)
    assert rc == 2 and f"{bad}, line 3, column 'emotion': unknown class 'glee' for goemotions28" in err
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            bad], capsys)  # the header 'emotion' says what the column is: its bad cell is named
    assert rc == 2 and f"{bad}, line 3, column 'emotion': unknown class 'glee' for goemotions28" in err


@pytest.mark.parametrize("header", ["emotion", "Label", "labels", "category", "class", "Emotion Label", "emotion-label",
                                    "gold_label", "tags"])
def test_a_name_column_is_found_by_its_usual_header(goemo_codec_dir, capsys, tmp_path, header):
    f = tmp_path / "names.csv"
    f.write_text(f'id,{header}\nt1,"joy,love"\nt2,Grief\nt3,neutral\n')
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            f], capsys)
    assert rc == 0, err
    assert out.splitlines()[0] == "id,valence,arousal,dominance" and len(out.splitlines()) == 4


def test_a_name_column_under_another_header_is_asked_for_exactly(goemo_codec_dir, capsys, tmp_path):
    f = tmp_path / "feels.csv"
    f.write_text("id,feels\nt1,joy\nt2,glee\nt3,grief\n")
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            f], capsys)
    assert rc == 2
    assert ("or one column of class names (several comma-separated per row, e.g. joy,love): name it with --column "
            "COLUMN, or head it label/labels/emotion/emotions/class (found without --column); column 'feels' looks "
            "like goemotions28 class names except 'glee': --column feels") in err
    f.write_text("id,feels\nt1,joy\nt2,admiration\nt3,grief\n")  # every cell a class: found without a header
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            f], capsys)
    assert rc == 0, err
    two = tmp_path / "two.csv"
    two.write_text("id,label,emotion\nt1,joy,x\nt2,sadness,y\n")  # two headed columns, one of class names
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            two], capsys)
    assert rc == 0, err
    two.write_text("id,label,emotion\nt1,joy,x\nt2,glee,y\n")
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            two], capsys)
    assert rc == 2 and "several columns could hold the goemotions28 class names ('label', 'emotion'); name the one " \
                       "to read with --column" in err


def test_a_name_column_of_aliases_for_a_multiclass_source(codec_dir, tmp_path):
    from emoembed.codec import class_index

    fer7 = default_registry().get("fer7")
    assert [class_index(n, fer7) for n in ("Happiness", "anger", "sad", "glee")] == [3, 0, 4, None]
    frame = pd.DataFrame({"id": ["a", "b"], "category": ["happiness", "anger"]}, dtype=object,
                         index=pd.Index([2, 3], name="line"))
    values, used = label_table(frame, fer7, "e.csv")
    assert used == ["category"] and values.tolist() == ["happiness", "anger"]


def test_multilabel_names_equal_indicator_columns(goemo_codec_dir):
    from emoembed.codec import EmotionCodec

    codec = EmotionCodec.from_pretrained(goemo_codec_dir)
    fmt = codec.format("goemotions28")
    ind = np.zeros((2, fmt.size))
    ind[0, fmt.index("joy")] = ind[0, fmt.index("love")] = ind[1, fmt.index("grief")] = 1
    a = codec.convert(pd.Series(["joy,love", "grief"]), "goemotions28", "vad")
    b = codec.convert(pd.DataFrame(ind, columns=fmt.variables), "goemotions28", "vad")
    pd.testing.assert_frame_equal(a, b)


def test_na_and_none_words_are_words(tmp_path):
    frame = read_user_table(CASES / "words_na_tokens.csv")
    assert content_items(frame, None, "f") == ["happy", "NA", "None", "sad"]
    assert list(frame.index) == [2, 3, 4, 5]
    f = tmp_path / "r.csv"
    f.write_text("word,valence,arousal,dominance\nNA,0.1,0.2,0.3\nnull,NA,0.1,0.1\n")
    with pytest.raises(InputError, match=r"line 3, column 'valence': 'NA' is not a number"):
        label_table(read_user_table(f), default_registry().get("vad"), str(f))
    empty = tmp_path / "e.csv"
    empty.write_text("word,x\nhappy,1\n,2\n")
    with pytest.raises(InputError, match="line 3, column 'word': empty cell"):
        content_items(read_user_table(empty), "word", str(empty))


def test_headerless_word_lists_keep_their_first_line(tmp_path):
    f = tmp_path / "words.txt"
    f.write_text("happy\nsad\nNA\n\n")
    frame = read_user_table(f)
    assert content_items(frame, None, "f") == ["happy", "sad", "NA"] and list(frame.index) == [1, 2, 3]
    g = tmp_path / "words2.txt"
    g.write_text("Word\nhappy\n")
    assert content_items(read_user_table(g), None, "g") == ["happy"]
    s = tmp_path / "sentences.txt"  # commas inside sentences are not a delimiter
    s.write_text("I am happy, really\nnot sad at all\nwell, well, well\n")
    assert content_items(read_user_table(s), None, "s") == ["I am happy, really", "not sad at all", "well, well, well"]


def test_delimiters_are_sniffed_and_ragged_rows_named(tmp_path):
    assert sniff_delimiter(["a;b;c", "1;2;3"], ".csv") == ";"
    assert sniff_delimiter(["a\tb", "1\t2"], ".txt") == "\t"
    assert sniff_delimiter(["happy", "sad"], ".txt") is None
    f = tmp_path / "r.csv"
    f.write_text("word,valence\nhappy,0.5\nsad,0.1,9\n")
    with pytest.raises(InputError, match="line 3: 3 field"):
        read_user_table(f)
    t = tmp_path / "texts.csv"  # a text with a comma, unquoted: say how to give it
    t.write_text("text\nI am happy\nGreat job, team\n")
    with pytest.raises(InputError, match=r"line 3: 2 field\(s\) where the header has 1 \(delimiter comma\); a field that "
                                         r"contains the delimiter must be quoted"):
        read_user_table(t)
    q = tmp_path / "q.csv"  # a quoted field over two lines: line numbers still count file lines
    q.write_text('text,valence\n"a long\ntext",0.5\nshort,x\n')
    with pytest.raises(InputError, match="line 4, column 'valence': 'x'"):
        label_table(read_user_table(q), default_registry().get("valence"), str(q))


def test_column_that_does_nothing_is_an_error(codec_dir, capsys):
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,9", "--column", "word"], capsys)
    assert rc == 2 and "--column names a column of class names" in err and "--columns valence=COLUMN" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,9", "--oov", "nan"], capsys)
    assert rc == 2 and "--oov, --on-bad-image and --scale are for content models" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,9", "--on-bad-image", "skip"], capsys)
    assert rc == 2 and "are for content models" in err


# ---------------------------------------------------------------------------------------------- user cards
MY_CARD = """name: my_norms
title: my own valence norms
modality: word
language: en
files:
  lexicon: {path: norms.csv}
reader: {type: delimited, file: lexicon, sep: ","}
item: {column: word, normalize: lower}
formats:
  valence:
    valence: {column: val, scale: [1, 7]}
splits: {type: random}
licence: mine
citation: none
obtain: my lab
"""


def _write_card(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    words = ["happy", "sad", "joy", "grief", "calm", "rage", "table", "chair", "love", "fear", "sunny", "gloom"]
    (folder / "norms.csv").write_text("word,val\n" + "\n".join(f"{w},{1 + (i % 7)}" for i, w in enumerate(words)) + "\n")
    card = folder / "my_norms.yaml"
    card.write_text(MY_CARD)
    return card


def test_a_card_file_path_is_accepted_where_a_card_name_is(tmp_path, capsys, monkeypatch):
    import emoembed.data.registry as reg_mod
    from emoembed.data.registry import DataRegistry

    card = _write_card(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)  # a relative path, resolved against the working directory; files next to the card
    reg = DataRegistry.load()
    ds = reg.dataset("mine/my_norms.yaml")
    assert len(ds) == 12 and reg.get("my_norms") is reg.get("mine/my_norms.yaml")
    assert ds.labels("valence")[0][0] == pytest.approx(-1.0)  # 1 on 1–7
    monkeypatch.setattr(reg_mod, "_DEFAULT", None)
    assert main(["data", "info", str(card)]) == 0
    assert "items: 12" in capsys.readouterr().out
    clash = tmp_path / "clash.yaml"
    clash.write_text(MY_CARD.replace("name: my_norms", "name: warriner"))
    with pytest.raises(EmoembedError, match="already used by"):
        reg.get(str(clash))


def test_a_card_search_path(tmp_path, monkeypatch):
    from emoembed.data.registry import DataRegistry

    _write_card(tmp_path / "cards")
    monkeypatch.setenv("EMOEMBED_CARDS", str(tmp_path / "cards"))
    reg = DataRegistry.load()
    assert "my_norms" in reg.names("dataset") and reg.is_present("my_norms") and len(reg.dataset("my_norms")) == 12
    monkeypatch.setenv("EMOEMBED_CARDS", str(tmp_path / "nope"))
    with pytest.raises(EmoembedError, match="EMOEMBED_CARDS"):
        DataRegistry.load()


def test_european_tables_spreadsheets_and_scales_for_classes(tmp_path, codec_dir, capsys):
    f = tmp_path / "eu.csv"
    f.write_text("Wort;Valence;Arousal;Dominance\nurlaub;8,5;5,7;7,2\nbeerdigung;1,6;6,1;3\n")
    values, used = label_table(read_user_table(f), default_registry().get("vad"), str(f))
    assert values.loc[2].tolist() == [8.5, 5.7, 7.2] and used == ["Valence", "Arousal", "Dominance"]
    x = tmp_path / "ratings.xlsx"
    x.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match="save the sheet as CSV"):
        read_user_table(x)
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,9"], capsys)
    assert rc == 2 and "--input-scale is for rating formats; nrc10 is multilabel" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "nrc10", "--input",
                            CASES / "vad4.csv", "--input-scale", "1,9", "--output-scale", "1,5"], capsys)
    assert rc == 2 and "--output-scale is for rating formats" in err


def test_class_names_match_through_aliases():
    from emoembed.codec import class_indicators

    fer7 = default_registry().get("fer7")
    x = class_indicators(["happiness", "Angry", "sadness"], fer7)
    assert [fer7.variables[j] for j in x.argmax(1)] == ["happy", "angry", "sad"]
    with pytest.raises(EmoembedError, match=r"row index 1 \(0-based\): unknown class 'glee'"):
        class_indicators(["happy", "glee"], fer7)
    with pytest.raises(EmoembedError, match="give exactly one class name"):
        class_indicators(["happy,sad"], fer7)


def test_a_pandas_index_column_does_not_break_the_header(tmp_path):
    f = tmp_path / "saved_by_pandas.csv"
    f.write_text(",word,valence\n0,happy,0.8\n1,sad,-0.7\n")
    frame = read_user_table(f)
    assert list(frame.columns) == ["unnamed_1", "word", "valence"]
    assert content_items(frame, None, "f") == ["happy", "sad"]


@pytest.mark.parametrize("cell", ['"joy,love"', "joy;love", "joy|love", "\"['joy', 'love']\"", '" joy , love "'])
def test_multilabel_name_cells_in_the_usual_spellings(goemo_codec_dir, capsys, tmp_path, cell):
    from emoembed.codec import split_class_names

    f = tmp_path / "names.csv"
    f.write_text(f"id,labels\nt1,{cell}\nt2,grief\n")
    rc, out, err = predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input",
                            f], capsys)
    assert rc == 0, err
    ref = tmp_path / "ref.csv"
    ref.write_text('id,labels\nt1,"joy,love"\nt2,grief\n')
    assert predict(["--model", goemo_codec_dir, "--source-format", "goemotions28", "--format", "vad", "--input", ref],
                   capsys)[1] == out
    assert split_class_names("[3, 17]") == ["3", "17"] and split_class_names("[]") == [] and split_class_names(None) == []


# ---------------------------------------------------------------------------------------------- 1b. typos vs scales
def _vad_table(path, rows):
    path.write_text("word,valence,arousal,dominance\n" + "".join(f"w{i},{v},{a},{d}\n" for i, (v, a, d) in enumerate(rows)),
                    encoding="utf-8")
    return path


def test_one_cell_off_in_an_otherwise_fitting_table_is_called_a_typo_not_a_scale(codec_dir, capsys, tmp_path):
    """One 55 in a VAD table on [-1, 1] used to suggest `--input-scale -100,100`, one 0 or 10 in a 1–9 table
    `0,10` / `1,10`: scales inferred from the outlier, which would misread every other value."""
    f = _vad_table(tmp_path / "vad55.csv", [(0.8, 0.3, 0.4), (-0.6, -0.2, -0.3), (-0.8, 0.1, 55), (0.1, 0.1, 0.1)])
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and out == ""
    assert (f"error: {f}, line 4, column 'dominance': 55 is outside vad's normalised range [-1, 1], which is what "
            "values are read on when no --input-scale is given; 1 of 12 values lies outside it while the others fit "
            "it, so it looks like a typo or an out-of-range entry: line 4, column 'dominance' = 55. Correct or remove "
            "it (if the whole table was rated on another scale, pass it as --input-scale LOW,HIGH)") in err
    assert "-100" not in err
    for bad, wrong in ((0, "0,10"), (10, "1,10"), (9.5, "1,10")):
        g = _vad_table(tmp_path / f"r{bad}.csv", [(7.8, 3.3, 4.4), (2.6, 4.2, 3.3), (1.8, 5.1, bad), (5.1, 5.1, 5.1)])
        rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", g,
                                "--input-scale", "1,9"], capsys)
        assert rc == 2 and f"{g}, line 4, column 'dominance': {bad:g} is outside the input scale [1, 9]" in err
        assert f"looks like a typo or an out-of-range entry: line 4, column 'dominance' = {bad:g}" in err, err
        assert f"--input-scale {wrong}" not in err and "if the table was rated on a wider scale" in err


def test_several_typos_are_listed_up_to_five(codec_dir, capsys, tmp_path):
    rows = [(round(0.01 * i - 0.3, 2), 0.2, -0.1) for i in range(60)]
    for i, j, v in ((7, 0, 4.0), (20, 1, -3.0), (41, 2, 12.0)):
        rows[i] = tuple(v if k == j else x for k, x in enumerate(rows[i]))
    f = _vad_table(tmp_path / "three.csv", rows)
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and "3 of 180 values lie outside it while the others fit it, so they look like typos" in err
    assert ("line 9, column 'valence' = 4; line 22, column 'arousal' = -3; line 43, column 'dominance' = 12. "
            "Correct or remove them") in err
    rows = [(0.1, 0.2, 0.3)] * 100 + [(7.0, 0.0, 0.0)] * 8
    g = _vad_table(tmp_path / "eight.csv", rows)
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", g], capsys)
    assert rc == 2 and "8 of 324 values lie outside it" in err and "line 106, column 'valence' = 7; and 3 more" in err


def test_a_table_on_another_scale_still_gets_that_scale(codec_dir, capsys, tmp_path):
    """Whole columns in another common scale keep their --input-scale hint; a cell outside even that scale is
    named as a likely typo."""
    for rows, scale in (([(3.2, 4.1, 2.2), (1.5, 2.0, 4.8), (4.4, 3.3, 3.0)], "1,5"),
                        ([(6.2, 4.1, 2.2), (1.5, 2.0, 6.8), (4.4, 3.3, 3.0)], "1,7"),
                        ([(8.2, 4.1, 2.2), (1.5, 2.0, 6.8), (4.4, 3.3, 3.0)], "1,9"),
                        ([(82, 41, 22), (15, 20, 68), (44, 33, 30)], "0,100")):
        f = _vad_table(tmp_path / f"s{scale}.csv", rows)
        rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
        assert rc == 2 and f"rating scale: if that is the scale, pass --input-scale {scale} " in err, err
        assert "typo" not in err
    f = _vad_table(tmp_path / "one0.csv", [(7.8, 3.3, 4.4), (2.6, 4.2, 3.3), (1.8, 5.1, 0), (5.1, 5.1, 5.1)])
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and ("the values (1.8 to 7.8) fit a 1–9 rating scale: if that is the scale, pass --input-scale 1,9 "
                        "(input_scale=(1, 9)); and one value lies outside even 1–9 and looks like a typo: line 4, column "
                        "'dominance' = 0") in err
    be5 = tmp_path / "be5_0to100.csv"  # intensities on 0–100 read on [0, 1]
    be5.write_text("word,joy,anger,sadness,fear,disgust\na,80,10,5,0,1\nb,3,60,70,20,15\n", encoding="utf-8")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "be5", "--format", "vad", "--input", be5], capsys)
    assert rc == 2 and "pass --input-scale 0,100" in err


def test_few_outside_decides_by_the_share_of_values():
    from emoembed.scales import few_outside

    grid = np.zeros((10, 3), dtype=bool)
    assert not few_outside(grid)
    grid[0, 0] = True
    assert few_outside(grid)  # 1 of 30
    grid[1:3, 1] = True
    assert few_outside(grid)  # 3 of 30: a tenth
    grid[3, 2] = True
    assert not few_outside(grid)  # 4 of 30
    one = np.array([[True, False, False]])
    assert few_outside(one)  # one value off in one row: at least one cell may be a typo
    assert not few_outside(np.array([[True, True, False]])) and not few_outside(np.array([[True]]))


def test_columns_on_different_scales_are_said_to_be(codec_dir, capsys, tmp_path):
    """Dominance on 1–9 beside valence and arousal on [-1, 1]: one --input-scale cannot read both, and the
    valence/arousal cells are not typos of a 1–9 table."""
    f = _vad_table(tmp_path / "mixed.csv", [(0.8, 0.3, 7.4), (-0.6, -0.2, 2.3), (0.1, 0.5, 5.5)])
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and (f"{f}, line 2, column 'dominance': 7.4 is outside vad's normalised range [-1, 1], which is "
                        "what values are read on when no --input-scale is given; column(s) 'dominance' hold values on "
                        "another scale (2.3 to 7.4, a 1–9 rating scale?) while 'valence', 'arousal' fit [-1, 1]: "
                        "--input-scale applies to every column, so put the columns on one scale first") in err
    assert "typo" not in err


def test_scales_starting_at_zero_are_proposed_when_the_table_has_zeros(codec_dir, capsys, tmp_path):
    """VAD on 0–10 or 0–4 and BE5 on 0–4 or 0–10 were read as 1–10 / 1–5 tables whose zeros were typos (or a
    table mixing scales): the zeros are ratings, and the 0-based scale that holds every value is proposed. A 0 in
    a 1–9 table stays a likely typo, with 0–10 named as the other reading."""
    for name, rows, scale in (("vad_0to10", [(0, 10, 3), (9, 2, 7), (5, 5, 5)], "0,10"),
                              ("vad_0to4", [(0, 4, 1), (3, 1, 2), (2, 2, 2), (4, 0, 3)], "0,4")):
        f = _vad_table(tmp_path / f"{name}.csv", rows)
        rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
        assert rc == 2 and f"rating scale: if that is the scale, pass --input-scale {scale} " in err, err
        assert "typo" not in err and "mix scales" not in err
    for name, body, scale in (("be5_0to4", "a,4,0,0,1,0\nb,0,3,4,2,1\nc,2,2,2,2,2\n", "0,4"),
                              ("be5_0to10", "a,8,0,0,1,0\nb,0,6,9,2,1\nc,3,2,2,10,2\n", "0,10")):
        f = tmp_path / f"{name}.csv"
        f.write_text("word,joy,anger,sadness,fear,disgust\n" + body, encoding="utf-8")
        rc, out, err = predict(["--model", codec_dir, "--source-format", "be5", "--format", "vad", "--input", f], capsys)
        assert rc == 2 and f"pass --input-scale {scale} " in err, err
        assert "typo" not in err and "mix scales" not in err
    f = _vad_table(tmp_path / "one0.csv", [(7.8, 3.3, 4.4), (2.6, 4.2, 3.3), (1.8, 5.1, 0), (5.1, 5.1, 5.1)])
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and ("looks like a typo: line 4, column 'dominance' = 0 — or, if the table was rated on a 0–10 "
                        "scale, pass --input-scale 0,10") in err, err
