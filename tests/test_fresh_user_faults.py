"""Faults a new user met in a first session with the CLI (issue 14, second round): each kind has a test with the
exact behaviour — errors that name the file, empty label cells, headerless tables, sentences in .txt files, blank
lines, options that do nothing, bad images in file order, zero-shot notes, unknown words of sub-word models."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from emoembed.cli import main
from emoembed.errors import EmoembedError


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory, _small_codec_master):
    """vad, be5, nrc10 (the small codec trained once per session)."""
    d = tmp_path_factory.mktemp("codec")
    _small_codec_master.save_pretrained(d)
    return d


def predict(args, capsys):
    rc = main(["predict", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------------------------------------- a. file names
def test_scale_and_class_errors_name_file_line_and_the_files_column(codec_dir, capsys, tmp_path):
    f = tmp_path / "vad_0to10.csv"
    f.write_text("item,VALENCE,AROUSAL,DOMINANCE\na,9,6,8\nb,2,7,3\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f], capsys)
    assert rc == 2 and out == ""
    assert (f"error: {f}, line 2, column 'VALENCE': 9 is outside vad's normalised range [-1, 1], which is what values "
            "are read on when no --input-scale is given; the values (2 to 9) fit a 1–9 rating scale: if that is the "
            "scale, pass --input-scale 1,9 (input_scale=(1, 9))") in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "be5", "--input", f,
                            "--input-scale", "1,5"], capsys)
    assert rc == 2 and f"{f}, line 2, column 'VALENCE': 9 is outside the input scale [1, 5]" in err
    g = tmp_path / "names.csv"
    g.write_text("id,Emotion\nt1,joy\nt2,glee\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", g], capsys)
    assert rc == 2 and out == ""
    assert f"error: {g}, line 3, column 'Emotion': unknown class 'glee' for nrc10; classes: anger, " in err


# ---------------------------------------------------------------------------------------------- b. empty label cells
def test_an_empty_class_name_cell_gives_empty_outputs_not_a_label(codec_dir, capsys, tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("id,label\nt1,joy\nt2,\nt3,sadness\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", f], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "id,valence,arousal,dominance" and lines[2] == "t2,,," and lines[1].startswith("t1,0")
    assert "warning: 1 of 3 rows have no nrc10 class name (an empty cell is no label): line 3; their outputs are " \
           "left empty" in err
    with pytest.warns(Warning, match=r"no nrc10 class name .*row index 1 \(0-based\)"):
        df = _codec(codec_dir).convert(["joy", "", "fear"], "nrc10", "nrc10")
    assert df.loc[1].drop("label").isna().all() and df.loc[1, "label"] == "" and df.loc[0, "label"] != ""
    assert not df.loc[[0, 2]].drop(columns="label").isna().any().any()


def _codec(d):
    from emoembed.codec import EmotionCodec

    return EmotionCodec.from_pretrained(d)
