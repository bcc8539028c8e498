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


from cli_run import predict  # noqa: E402  (shared CLI helper)


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
    assert (f"warning: {f}: 1 of 3 rows have no nrc10 class name in column 'label' (an empty cell is no label): "
            "line 3; their outputs are left empty") in err and err.count("no nrc10 class name") == 1
    with pytest.warns(Warning, match=r"no nrc10 class name .*row index 1 \(0-based\)"):
        df = _codec(codec_dir).convert(["joy", "", "fear"], "nrc10", "nrc10")
    assert df.loc[1].drop("label").isna().all() and df.loc[1, "label"] == "" and df.loc[0, "label"] != ""
    assert not df.loc[[0, 2]].drop(columns="label").isna().any().any()


def _codec(d):
    from emoembed.codec import EmotionCodec

    return EmotionCodec.from_pretrained(d)


# ---------------------------------------------------------------------------------------------- c. headerless .csv
@pytest.fixture(scope="module")
def word_model_dir():
    """The packaged GloVe word model (small, offline)."""
    return "emoembed/words-glove50"


HEADER_QUESTION = ("{f}: is line 1 ('happy') a header or the first item? A one-column .csv file has a header line, but "
                   "'happy' is not a usual column name (word, text, content, label …) and reads like the lines below "
                   "it. Pass --no-header to read every line as an item (header=False), or --column happy to use it as "
                   "the header")


def test_a_headerless_one_column_csv_is_asked_about_not_cut(tmp_path, word_model_dir, capsys):
    from emoembed.inputs import InputError, looks_like_a_header, read_user_table

    f = tmp_path / "nohdr.csv"
    f.write_text("happy\nsad\nangry\n")
    with pytest.raises(InputError) as e:
        read_user_table(f)
    assert str(e.value) == HEADER_QUESTION.format(f=f)
    assert read_user_table(f, header=False)["content"].tolist() == ["happy", "sad", "angry"]
    assert list(read_user_table(f, header_names=["happy"]).columns) == ["happy"]  # --column happy: it is the header
    j = tmp_path / "w.jsonl"
    j.write_text('{"word": "happy"}\n')
    with pytest.raises(InputError, match=r"--no-header \(header=False\) is for delimited text tables"):
        read_user_table(j, header=False)
    for out in (None, tmp_path / "o.csv"):  # in memory and streamed
        rc, stdout, err = predict(["--model", word_model_dir, "--format", "vad", "--input", f,
                                   *(["--output", out] if out else [])], capsys)
        assert rc == 2 and HEADER_QUESTION.format(f=f) in err and stdout == ""
        rc, stdout, err = predict(["--model", word_model_dir, "--format", "vad", "--input", f, "--no-header",
                                   *(["--output", out] if out else [])], capsys)
        assert rc == 0, err
        table = pd.read_csv(out) if out else pd.read_csv(__import__("io").StringIO(stdout))
        assert table.iloc[:, 0].tolist() == ["happy", "sad", "angry"]
    # first lines that read as headers are still headers
    assert looks_like_a_header("Adjective", ["happy", "sad"]) and looks_like_a_header("words_en", ["happy", "sad"])
    assert looks_like_a_header("photo", ["a.png", "b/c.jpg"]) and looks_like_a_header("TERM", ["happy", "sad"])
    assert not looks_like_a_header("Happy", ["Sad", "Angry"]) and not looks_like_a_header("grief", ["sad", "angry"])
    for header in ("word", "Emotion", "Adjective"):
        g = tmp_path / f"{header}.csv"
        g.write_text(f"{header}\nhappy\nsad\n")
        assert read_user_table(g).iloc[:, 0].tolist() == ["happy", "sad"]


# ---------------------------------------------------------------------------------------------- d. sentences in .txt
def test_a_txt_of_sentences_with_commas_is_one_item_per_line(tmp_path):
    import shutil
    from pathlib import Path

    from emoembed.inputs import read_user_table

    f = tmp_path / "sent.txt"
    f.write_text("Well, I am happy\nNo, not sad\nOh, great\n")
    assert read_user_table(f)["content"].tolist() == ["Well, I am happy", "No, not sad", "Oh, great"]
    g = tmp_path / "semi.txt"
    g.write_text("Yes; I am happy\nNo; not sad\n")
    assert read_user_table(g)["content"].tolist() == ["Yes; I am happy", "No; not sad"]
    h = tmp_path / "hdr.txt"
    h.write_text("text\nWell, I am happy\nNo, not sad\n")
    assert read_user_table(h)["text"].tolist() == ["Well, I am happy", "No, not sad"]
    nrc = tmp_path / "nrc.txt"  # a tab-separated lexicon saved as .txt is a table
    shutil.copy(Path(__file__).parent / "cases" / "nrc_vad_style.tsv", nrc)
    assert list(read_user_table(nrc).columns) == ["Word", "Valence", "Arousal", "Dominance"]
    w = tmp_path / "warriner.txt"  # a ;-separated table with a header and a numeric column is a table
    w.write_text("Term;V.Mean.Sum;A.Mean.Sum\nvacation;8.53;5.67\nfuneral;1.60;6.10\n")
    assert list(read_user_table(w).columns) == ["Term", "V.Mean.Sum", "A.Mean.Sum"]
    n = tmp_path / "names.txt"  # usual column names as the header: a table
    n.write_text("word,label\nhappy,joy\nsad,sadness\n")
    assert list(read_user_table(n).columns) == ["word", "label"]
    c = tmp_path / "sent.csv"  # a .csv is CSV: its commas are delimiters
    c.write_text("a,b\nWell, I am happy\n")
    assert list(read_user_table(c).columns) == ["a", "b"]


# ---------------------------------------------------------------------------------------------- e. blank lines
@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_line_in_a_one_column_table_is_an_error_naming_it(tmp_path, word_model_dir, capsys, blank):
    from emoembed.inputs import InputError, read_user_table

    for suffix in (".csv", ".txt"):
        f = tmp_path / f"blank{suffix}"
        f.write_text(f"word\nhappy\n{blank}\nsad\n\n")
        msg = (f"{f}, line 3: empty line in a one-column table, where every line is an item (dropping it would shift "
               "the output rows after it); remove the line or fill it")
        with pytest.raises(InputError) as e:
            read_user_table(f)
        assert str(e.value) == msg
        for out in ([], ["--output", tmp_path / "o.csv"]):
            rc, stdout, err = predict(["--model", word_model_dir, "--format", "vad", "--input", f, *out], capsys)
            assert rc == 2 and msg in err
    g = tmp_path / "trailing.csv"  # blank lines after the last item are not rows
    g.write_text("word\nhappy\nsad\n\n  \n")
    assert read_user_table(g)["word"].tolist() == ["happy", "sad"]
    two = tmp_path / "two.csv"  # several columns: an empty cell is an error naming its line, as before
    two.write_text("id,word\n1,happy\n2,   \n")
    from emoembed.inputs import content_items

    with pytest.raises(InputError, match=r"line 3, column 'word': empty cell"):
        content_items(read_user_table(two), "word", str(two))


# ---------------------------------------------------------------------------------------------- f. options that do nothing
TINY_IMAGE = {"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32,
              "train_transform": [{"type": "Resize", "size": [32, 32]}],
              "eval_transform": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}]}


@pytest.fixture(scope="module", params=["exists", "decode"])
def image_model_dir(request, tmp_path_factory, format_registry):
    import torch

    from emoembed.codec import codec_for
    from emoembed.encoders.image import ImageEncoder
    from emoembed.model import EmotionModel

    torch.manual_seed(0)
    enc = ImageEncoder.from_config({**TINY_IMAGE, "dim": 8, "check": request.param})
    model = EmotionModel(enc, codec_for(["va", "vad"], format_registry, dim=8, hidden=(8,), dropout=0.0),
                         meta={"trained_formats": ["va"]}).eval()
    d = tmp_path_factory.mktemp(f"img-{request.param}")
    model.save_pretrained(d)
    return d


def _png(value: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((20, 20), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def bad_image_table(tmp_path):
    """meta.csv: line 2 fine, line 3 a truncated file, line 4 not an image, line 5 missing, line 6 fine."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "ok.png").write_bytes(_png(30))
    (tmp_path / "pics" / "broken.png").write_bytes(_png(90)[:40])
    (tmp_path / "pics" / "notes.png").write_text("not an image")
    (tmp_path / "meta.csv").write_text("image,note\npics/ok.png,a\npics/broken.png,b\npics/notes.png,c\n"
                                       "pics/missing.png,d\npics/ok.png,e\n")
    return tmp_path / "meta.csv"


def test_options_that_do_nothing_are_errors(codec_dir, image_model_dir, capsys, tmp_path):
    from emoembed.errors import ConfigError
    from emoembed.model import EmotionModel

    f = tmp_path / "i.csv"
    (tmp_path / "a.png").write_bytes(_png(10))
    f.write_text("image\na.png\n")
    rc, out, err = predict(["--model", image_model_dir, "--format", "va", "--input", f, "--oov", "nan"], capsys)
    assert rc == 2 and out == "" and ("error: --oov is for word and text models (unknown words, unknown word pieces); "
                                      "an image model has no unknown content: a bad image file is handled by "
                                      "--on-bad-image skip|error") in err
    rc, out, err = predict(["--model", "emoembed/words-glove50", "--format", "ekman7", "happy", "--scale", "1,9"], capsys)
    assert rc == 2 and ("error: --scale is for rating formats; ekman7 is multilabel (probabilities per class and a "
                        "label), so --scale 1,9 would do nothing: leave it out") in err
    rc, out, err = predict(["--model", "emoembed/words-glove50", "--format", "vad", "happy", "--scale", "1,9"], capsys)
    assert rc == 0 and float(out.splitlines()[1].split(",")[1]) > 5
    names = tmp_path / "n.csv"
    names.write_text("id,label\nt1,joy\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "vad", "--format", "nrc10", "--input",
                            tmp_path / "v.csv", "--output-scale", "1,9"], capsys)
    assert rc == 2 and "--output-scale is for rating formats; nrc10 is multilabel" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", names,
                            "--input-scale", "0,1"], capsys)
    assert rc == 2 and "--input-scale is for rating formats; nrc10 is multilabel" in err
    codec = _codec(codec_dir)
    with pytest.raises(ConfigError, match=r"^input_scale is for rating formats; the source format nrc10 is multilabel "
                                          r"\(0/1 indicators or probabilities per class, or class names\), so "
                                          r"input_scale=\(0, 1\) would do nothing: leave it out$"):
        codec.convert(["joy"], "nrc10", "vad", input_scale=(0, 1))
    with pytest.raises(ConfigError, match=r"^output_scale is for rating formats; the target format nrc10 is multilabel"):
        codec.convert([[0.1, 0.2, 0.3]], "vad", "nrc10", output_scale=(1, 9))
    with pytest.raises(ConfigError, match=r"^input_scale: low must be below high, got \(5, 1\)"):
        codec.convert([[3, 3, 3]], "vad", "be5", input_scale=(5, 1))
    with pytest.raises(ConfigError, match=r"^output_scale: low must be below high, got \(9, 1\)"):
        codec.convert([[0.1, 0.2, 0.3]], "vad", "vad", output_scale=(9, 1))
    image_model = EmotionModel.from_pretrained(image_model_dir)
    with pytest.raises(ConfigError, match=r"^oov='nan' is for word and text models"):
        image_model.predict([str(tmp_path / "a.png")], "va", oov="nan")
    words = EmotionModel.from_pretrained("emoembed/words-glove50")
    with pytest.raises(ConfigError, match=r"^scale is for rating formats; ekman7 is multilabel"):
        words.predict(["happy"], "ekman7", scale=(1, 9))


# ---------------------------------------------------------------------------------------------- g. first bad image
@pytest.mark.parametrize("output", [False, True])
def test_on_bad_image_error_stops_at_the_first_bad_row_in_file_order(image_model_dir, bad_image_table, capsys,
                                                                     tmp_path, output):
    args = ["--model", image_model_dir, "--format", "va", "--input", bad_image_table, "--on-bad-image", "error",
            *(["--output", tmp_path / "out.csv"] if output else [])]
    rc, out, err = predict(args, capsys)
    assert rc == 2 and f"error: {bad_image_table}, line 3: {bad_image_table.parent / 'pics' / 'broken.png'}: " in err
    assert "line 5" not in err and not (tmp_path / "out.csv").exists()
    bad_image_table.write_text("image\npics/ok.png\npics/missing.png\npics/broken.png\n")  # missing first: it is named
    if output:
        args[-1] = tmp_path / "out2.csv"
    rc, out, err = predict(args, capsys)
    assert rc == 2 and f"error: {bad_image_table}, line 3: {bad_image_table.parent / 'pics' / 'missing.png'}: " in err


# ---------------------------------------------------------------------------------------------- h. zero-shot notes
def test_zero_shot_notes_compare_variables_not_format_names(format_registry):
    from types import SimpleNamespace

    from emoembed.codec import codec_for
    from emoembed.conversion import model_zero_shot_note

    codec = codec_for(["vad", "be5", "valence", "va", "be6", "ekman7", "nrc10"], format_registry, dim=8, hidden=(8,))
    model = SimpleNamespace(trained_formats=["be5", "vad"], meta={"augmented_formats": ["nrc10"]}, codec=codec,
                            format=codec.format)
    assert model_zero_shot_note(model, "valence") is None and model_zero_shot_note(model, "va") is None
    assert model_zero_shot_note(model, "vad") is None
    assert model_zero_shot_note(model, "be6") == (
        "be6 is partly zero-shot for this model: joy, anger, sadness, fear, disgust had training labels (as be5 joy, "
        "be5 anger, be5 sadness, be5 fear, be5 disgust), surprise had none and is predicted through the codec's shared "
        "space only")
    assert model_zero_shot_note(model, "ekman7") == (  # class outputs are not ratings: no ekman7 labels were seen
        "ekman7 is zero-shot for this model: it was trained on be5, vad data and predicts ekman7 through the codec's "
        "shared space, with no ekman7 training labels")
    assert model_zero_shot_note(model, "nrc10").startswith("nrc10 has no gold labels in this model's training data")
    image = SimpleNamespace(trained_formats=["vad"], meta={}, codec=codec, format=codec.format)
    assert model_zero_shot_note(image, "va") is None
    assert model_zero_shot_note(image, "be5").startswith("be5 is zero-shot for this model: it was trained on vad data")
    # be5 is a sub-format of be6 (emoembed.subformats): a model trained on be6 had gold labels of all of be5's
    # variables, and is not zero-shot (nor "codec-made only") in be5 though its recipe also augmented be5
    multitask = SimpleNamespace(trained_formats=["be6", "ekman7", "vad"], meta={"augmented_formats": ["be5"]},
                                codec=codec, format=codec.format)
    assert model_zero_shot_note(multitask, "be5") is None
    assert model_zero_shot_note(multitask, "va") is None and model_zero_shot_note(multitask, "valence") is None
    assert model_zero_shot_note(multitask, "nrc10").startswith("nrc10 is partly zero-shot for this model: anger, disgust")
    glove = SimpleNamespace(trained_formats=["vad"], meta={"augmented_formats": ["be5", "nrc10"]}, codec=codec,
                            format=codec.format)  # augmented with no gold labels of its variables: still said
    assert model_zero_shot_note(glove, "be5") == (
        "be5 has no gold labels in this model's training data: it was trained on vad data with be5 labels made from "
        "them by the codec (label augmentation), so its be5 outputs are as good as the codec's conversion")


def test_packaged_word_model_notes_and_unknown_words(capsys):
    """words-minilm (trained on be5 and vad): valence is not zero-shot; nonsense strings are unknown words (not in
    the GloVe 6B lexicon) for the coverage column, the report and --oov nan|error, yet --oov vector scores them."""
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "valence", "happy", "asdfqwer", "xyzzyq",
                            "Happy!", "😂", "not happy"], capsys)
    assert rc == 0 and "zero-shot" not in err
    table = pd.read_csv(__import__("io").StringIO(out))
    assert table["coverage"].tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert table["valence"].notna().all()  # --oov vector (default): still scored, from their word pieces
    assert ("warning: 2 of 6 words are unknown to the word encoder ('asdfqwer', 'xyzzyq'); they are still scored "
            "from their word pieces, which say little about a word no lexicon knows (--oov nan leaves them empty, "
            "--oov error refuses them)") in err
    assert ("for phrases and sentences use a text model: the packaged one (predict --model emoembed/text-minilm), or "
            "your own (emoembed fit-encoder --modality text, see docs/text.md)") in err
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "valence", "happy", "asdfqwer", "--oov",
                            "nan"], capsys)
    assert rc == 0 and out.splitlines()[2] == "asdfqwer,,0.0000"
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "valence", "happy", "xyzzyq", "--oov",
                            "error"], capsys)
    assert rc == 2 and out == "" and ("error: command-line item 2: word 'xyzzyq' is unknown to the word encoder (none "
                                      "of its forms is in the known-word lexicon, GloVe 6B's 400k words); 1 of 2 words "
                                      "is unknown in total; --oov vector scores them from their word pieces, --oov nan "
                                      "leaves their outputs empty") in err


def test_contractions_are_known_words_of_the_minilm_word_model(capsys):
    """GloVe 6B's vocabulary, the known-word lexicon of word-piece models, holds contractions as the two tokens its
    tokenizer made of them (`do` + `n't`): `don't` was reported unknown (coverage 0). A contraction is known when
    both tokens are; a made-up stem with a clitic is not."""
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "valence", "don't", "can't", "won't",
                            "she's", "I'm", "they\u2019re", "xqzzv's"], capsys)
    table = pd.read_csv(__import__("io").StringIO(out))
    assert rc == 0 and table["coverage"].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert "1 of 7 words is unknown to the word encoder (\"xqzzv's\")" in err


def test_packaged_minilm_word_model_on_phrases_of_known_and_unknown_words(capsys, tmp_path):
    """`not happy` and phrases mixing known and unknown words, given to the MiniLM word model: one warning that they
    are several words, read as one word, pointing to the packaged text model; one naming the unknown words of each
    phrase and saying the phrase is still read whole; --oov error refuses only wholly unknown items, naming the
    file line."""
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "be5", "not happy", "xqzzv happy",
                            "I am blorfq today", "happy"], capsys)
    assert rc == 0 and "zero-shot" not in err and "note" not in err  # be5 had gold labels (EmoMap)
    assert ("warning: 3 of 4 items are several words ('not happy', 'xqzzv happy', 'I am blorfq today'): a word model "
            "is trained on single words and reads a phrase as if it were one word, which it was never trained or "
            "tested on, so negation ('not happy') and context are not read reliably; for phrases and sentences use a "
            "text model: the packaged one (predict --model emoembed/text-minilm), or your own (emoembed fit-encoder "
            "--modality text, see docs/text.md)\n") in err
    assert ("warning: 2 of 4 items are partly unknown to the word encoder: 'xqzzv' in 'xqzzv happy'; 'blorfq' in 'I am "
            "blorfq today'; each is still read whole, as one string of word pieces, the unknown words' pieces included "
            "(the coverage column gives the share of each item's words that are known)\n") in err
    table = pd.read_csv(__import__("io").StringIO(out))
    assert table["coverage"].tolist() == [1.0, 0.5, 0.75, 1.0]
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "be5", "not happy"], capsys)
    assert rc == 0 and "warning: 1 of 1 item is several words ('not happy')" in err
    f = tmp_path / "w.csv"
    f.write_text("word\nnot happy\nxqzzv\nxqzzv happy\nblorfq\n")
    rc, out, err = predict(["--model", "emoembed/words-minilm", "--format", "be5", "--input", f, "--oov", "error"],
                           capsys)
    assert rc == 2 and out == "" and (f"error: {f}, line 3: word 'xqzzv' is unknown to the word encoder (none of its "
                                      "forms is in the known-word lexicon, GloVe 6B's 400k words); 2 of 4 words are "
                                      "unknown in total: 'xqzzv' (line 3), 'blorfq' (line 5);") in err


def test_the_multiword_warning_names_a_packaged_text_model():
    from emoembed.coverage import SHIPPED_TEXT_MODEL
    from emoembed.model_zoo import catalogue

    assert SHIPPED_TEXT_MODEL == "emoembed/text-minilm" and "text-minilm" in catalogue()
    assert catalogue()["text-minilm"].get("modality") == "text"


@pytest.mark.parametrize("suffix,body", [(".csv", 'id,label\nt1,joy\nt2,"[]"\nt3,sadness\n'),
                                         (".csv", "id,label\nt1,joy\nt2,  \nt3,sadness\n"),
                                         (".jsonl", '{"id": "t1", "label": "joy"}\n{"id": "t2", "label": null}\n'
                                                    '{"id": "t3", "label": "sadness"}\n')])
def test_every_spelling_of_an_empty_label_gives_empty_outputs(codec_dir, capsys, tmp_path, suffix, body):
    f = tmp_path / f"labels{suffix}"
    f.write_text(body)
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", f], capsys)
    assert rc == 0, err
    line = 2 if suffix == ".jsonl" else 3  # JSON Lines have no header line
    assert out.splitlines()[2] == "t2,,," and f"line {line}; their outputs are left empty" in err


def test_a_headerless_column_of_class_names_is_asked_about(codec_dir, capsys, tmp_path):
    f = tmp_path / "names.csv"
    f.write_text("joy\nsadness\nfear\n")
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", f], capsys)
    assert rc == 2 and f"{f}: is line 1 ('joy') a header or the first item?" in err
    rc, out, err = predict(["--model", codec_dir, "--source-format", "nrc10", "--format", "vad", "--input", f,
                            "--no-header"], capsys)
    assert rc == 0, err
    assert out.splitlines()[0] == "valence,arousal,dominance" and len(out.splitlines()) == 4
    v = tmp_path / "valence.csv"  # a rating format's variable atop its column is a header
    v.write_text("valence\n0.5\n-0.2\n")
    rc, out, err = predict(["--model", "emoembed/codec-full", "--source-format", "valence", "--format", "vad", "--input",
                            v], capsys)
    assert rc == 0 and len(out.splitlines()) == 3, err


def test_index_takes_no_header_too(tmp_path, capsys):
    f = tmp_path / "nohdr.csv"
    f.write_text("happy\nsad\nangry\n")
    rc = main(["index", "--model", "emoembed/words-glove50", "--input", str(f), "--out", str(tmp_path / "ix")])
    assert rc == 2 and f"{f}: is line 1 ('happy') a header or the first item?" in capsys.readouterr().err
    rc = main(["index", "--model", "emoembed/words-glove50", "--input", str(f), "--no-header", "--out", str(tmp_path / "ix")])
    assert rc == 0 and "indexed 3 word item(s)" in capsys.readouterr().out
