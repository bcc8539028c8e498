"""Issue 14, kind 2: unknown content is reported, never silently scored — word normalisation (punctuation, case,
emoticons, emoji), OOV counts and examples, the coverage column, --oov vector|nan|error, multi-word input to a word
model, and the MiniLM word vectors that leave (almost) no word unknown."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emoembed.cli import main
from emoembed.codec import codec_for
from emoembed.coverage import UnknownContentError, UnknownContentWarning
from emoembed.errors import DataError
from emoembed.formats import default_registry
from emoembed.inputs import content_items, read_user_table
from emoembed.lexical import emoji_description, is_multiword, lookup_candidates, strip_punctuation
from emoembed.model import EmotionModel
from emoembed.recipes import resolve_encoder_recipe
from emoembed.tasks import Task
from emoembed.training.encoder import fit

CASES = Path(__file__).parent / "cases"
WORDS = {  # valence, arousal, dominance in [-1, 1]
    "happy": (0.9, 0.5, 0.6), "joy": (0.95, 0.6, 0.5), "smile": (0.8, 0.3, 0.5), "laugh": (0.85, 0.6, 0.5),
    "tears": (-0.6, 0.1, -0.5), "crying": (-0.7, 0.3, -0.6), "sad": (-0.8, -0.4, -0.5), "grief": (-0.9, -0.2, -0.6),
    "angry": (-0.7, 0.8, 0.3), "calm": (0.5, -0.8, 0.3), "table": (0.0, -0.5, 0.0), "smiling": (0.8, 0.3, 0.5),
    "loudly": (-0.1, 0.6, 0.1), "not": (-0.2, 0.0, 0.0), "at": (0.0, 0.0, 0.0), "all": (0.0, 0.0, 0.0),
}


def test_lookup_candidates_normalise_the_obvious():
    assert lookup_candidates("happy!")[-1] == "happy" and lookup_candidates('"Sad"')[-1] == "sad"
    assert lookup_candidates("«joy»")[-1] == "joy" and strip_punctuation("...") == ""
    assert lookup_candidates(":)")[0] == "smile" and lookup_candidates(":(")[0] == "sad"
    assert lookup_candidates(":'(")[0] == "crying" and lookup_candidates("<3")[0] == "love"
    assert emoji_description("😂") == "face with tears of joy"
    assert lookup_candidates("😂")[-1] == "tears joy" and lookup_candidates("😂", phrases=True)[-1] == "face with tears of joy"
    assert lookup_candidates("😭")[-1] != lookup_candidates("🙂")[-1]
    assert is_multiword("not happy") and not is_multiword("well-known") and not is_multiword(" happy ")


@pytest.fixture(scope="module")
def word_model(tmp_path_factory, one_torch_thread):
    d = tmp_path_factory.mktemp("vec")
    rng = np.random.default_rng(1)
    proj = rng.normal(size=(3, 12))
    lines = [w + " " + " ".join(f"{x:.5f}" for x in np.asarray(v) @ proj + 0.03 * rng.normal(size=12)) for w, v in WORDS.items()]
    (d / "tiny.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import os

    os.environ["EMOEMBED_CACHE"] = str(d / "cache")
    torch.manual_seed(0)
    codec = codec_for(["vad", "be5"], default_registry(), dim=8, hidden=[16], dropout=0.0)
    words = list(WORDS)
    y = np.asarray([WORDS[w] for w in words], dtype=np.float32)
    task = Task("toy", default_registry().get("vad"), {"train": words, "dev": words[:4], "test": words[:4]},
                {"train": y, "dev": y[:4], "test": y[:4]}, {"valence": [1, 9], "arousal": [1, 9], "dominance": [1, 9]}, "word")
    r = resolve_encoder_recipe({"name": "t", "modality": "word", "seed": 5,
                                "encoder": {"vectors": str(d / "tiny.txt"), "hidden": [16], "input_dropout": 0.0, "dropout": 0.0},
                                "training": {"epochs": 60, "batch_size": 4, "lr": 0.01, "patience": 100, "device": "cpu"}})
    res = fit(r, codec, [task], progress=False, log=lambda *_: None)
    model = EmotionModel.from_training(res, codec, [task], r)
    model.save_pretrained(d / "model")
    return model, d / "model"


def test_punctuation_and_case_variants_score_like_the_word(word_model):
    model, _ = word_model
    items = content_items(read_user_table(CASES / "oov_punct_words.csv"), None, "oov_punct_words.csv")
    assert items == ["happy", "happy!", "sad.", '"sad"', "asdfqwer"]
    with pytest.warns(UnknownContentWarning, match=r"1 of 5 words is unknown to the word encoder \('asdfqwer'\)"):
        out = model.predict(items, "vad", coverage_column=True)
    v = out["valence"].to_numpy()
    assert v[0] == pytest.approx(v[1]) and v[2] == pytest.approx(v[3]) and v[0] > 0.3 > -0.3 > v[2]
    assert out["coverage"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_oov_policies(word_model):
    model, _ = word_model
    with pytest.warns(UnknownContentWarning, match="left empty"):
        out = model.predict(["happy", "asdfqwer"], "vad", oov="nan")
    assert np.isfinite(out.iloc[0]).all() and out.iloc[1].isna().all()
    with pytest.raises(DataError) as err:
        model.predict(["happy", "asdfqwer"], "vad", oov="error")
    assert str(err.value) == ("input, row index 1 (0-based): word 'asdfqwer' is unknown to the word encoder (none of "
                              "its forms has a vector); 1 of 2 words is unknown in total; --oov vector scores them "
                              "with the learned unknown-word vector, --oov nan leaves their outputs empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(["happy", "Sad"], "vad")  # all known: silent


def test_emoji_and_emoticons_get_their_meaning(word_model):
    model, _ = word_model
    items = content_items(read_user_table(CASES / "emoji_words.csv"), None, "emoji_words.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every item of the case is known now
        out = model.predict(items, "vad", coverage_column=True)
    v = out["valence"]
    assert (out["coverage"] == 1.0).all()
    assert v.loc[":)"] > 0.3 > -0.3 > v.loc[":("]  # :( no longer above :)
    assert len({round(x, 4) for x in v.loc[["😂", "😭", "🙂"]]}) == 3  # not all one vector
    assert v.loc["🙂"] > v.loc["😭"]


def test_multiword_input_to_a_word_model_points_to_a_text_model(word_model):
    model, _ = word_model
    items = content_items(read_user_table(CASES / "negation_phrases.csv"), None, "negation_phrases.csv")
    with pytest.warns(UnknownContentWarning, match=r"3 of 5 items are several words \('not happy', 'I am not happy at all', 'not sad'\).*text model"):
        model.predict(items, "vad")


def test_cli_reports_unknown_words_and_writes_coverage(word_model, capsys, tmp_path):
    _, model_dir = word_model
    rc = main(["predict", "--model", str(model_dir), "--format", "vad", "--input", str(CASES / "oov_punct_words.csv")])
    out, err = capsys.readouterr()
    assert rc == 0 and "warning: 1 of 5 words is unknown to the word encoder ('asdfqwer')" in err
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == ["word", "valence", "arousal", "dominance", "coverage"]
    rc = main(["predict", "--model", str(model_dir), "--format", "vad", "--input", str(CASES / "oov_punct_words.csv"),
               "--oov", "error", "--output", str(tmp_path / "o.csv")])
    assert rc == 2 and (f"error: {CASES / 'oov_punct_words.csv'}, line 6: word 'asdfqwer' is unknown to the word "
                        "encoder") in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    rc = main(["predict", "--model", str(model_dir), "--format", "vad", "--input", str(CASES / "words_na_tokens.csv")])
    out, err = capsys.readouterr()
    assert rc == 0 and pd.read_csv(io.StringIO(out), keep_default_na=False)["word"].tolist() == ["happy", "NA", "None", "sad"]
    rc = main(["predict", "--model", str(model_dir), "--format", "be5", "happy"])
    assert rc == 0 and "be5 is zero-shot for this model" in capsys.readouterr().err


def test_oov_error_names_the_file_line_word_and_the_total(word_model, capsys, tmp_path):
    """--oov error: the first unknown word's file and line (header = line 1), the word, how many of how many words
    are unknown in total (each with its line); command-line words: which argument; exit 2; no --output, no
    .partial folder — in memory, and streamed in chunks, where the total still covers the whole file."""
    _, model_dir = word_model
    f = tmp_path / "my words.csv"
    f.write_text("id,word\n1,happy\n2,sad\n3,xqzzv\n4,calm\n5,blorfq\n6,Grief!\n7,qqqxj\n", encoding="utf-8")
    tail = "; --oov vector scores them with the learned unknown-word vector, --oov nan leaves their outputs empty\n"
    expected = (f"emoembed predict: error: {f}, line 4: word 'xqzzv' is unknown to the word encoder (none of its forms "
                "has a vector); 3 of 7 words are unknown in total: 'xqzzv' (line 4), 'blorfq' (line 6), 'qqqxj' "
                "(line 8)" + tail)
    base = ["predict", "--model", str(model_dir), "--format", "vad", "--input", str(f), "--oov", "error"]
    for extra in ([], ["--output", str(tmp_path / "o.csv")], ["--output", str(tmp_path / "o.csv"), "--chunk-size", "2"]):
        rc = main(base + extra)
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and err.endswith(expected), extra
        assert sorted(p.name for p in tmp_path.iterdir()) == ["my words.csv"]  # nothing half-written
    rc = main(["predict", "--model", str(model_dir), "--format", "vad", "--oov", "error", "happy", "xqzzv", "sad",
               "blorfq"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.endswith(
        "error: command-line item 2: word 'xqzzv' is unknown to the word encoder (none of its forms has a vector); 2 "
        "of 4 words are unknown in total: 'xqzzv' (command-line item 2), 'blorfq' (command-line item 4)" + tail)
    series = pd.Series(["happy", "qqqxj"], index=pd.Index(["a", "b"], name="id"))  # Python: a Series by its labels
    with pytest.raises(UnknownContentError, match=r"^index label 'b': word 'qqqxj' is unknown .* 1 of 2 words is "):
        word_model[0].predict(series, "vad", oov="error")


def test_a_partly_unknown_phrase_names_its_unknown_words(word_model):
    """Several words, some unknown: the warnings say they are several words (pointing to a text model), which of
    their words are unknown, and that only the known words are read (vector files average them)."""
    model, _ = word_model
    with pytest.warns(UnknownContentWarning) as record:
        out = model.predict(["not happy", "xqzzv happy", "sad"], "vad", coverage_column=True)
    messages = [str(w.message) for w in record]
    assert messages[0].startswith("2 of 3 items are several words ('not happy', 'xqzzv happy'): a word model is "
                                  "trained on single words and averages their words' vectors")
    assert "use a text model: the packaged one (predict --model emoembed/text-minilm)" in messages[0]
    assert messages[1] == ("1 of 3 items is partly unknown to the word encoder: 'xqzzv' in 'xqzzv happy'; only their "
                           "known words are read, their vectors averaged (the coverage column gives the share of each "
                           "item's words that are known)")
    assert out["coverage"].tolist() == [1.0, 0.5, 1.0]
    assert out.loc["xqzzv happy", "valence"] == pytest.approx(model.predict(["happy"], "vad")["valence"].iloc[0])
    with pytest.warns(UnknownContentWarning, match=r"^1 of 1 item is several words \('not happy'\)"):
        model.predict(["not happy"], "vad")


def test_minilm_word_vectors_leave_no_case_word_unknown(one_torch_thread):
    """The packaged MiniLM on the bare word: every word of the cases gets a vector (emoji via their names), and
    only the nonsense string is an unknown word (not in the known-word lexicon)."""
    from emoembed.encoders.word import WordEncoder

    enc = WordEncoder(8, vectors="packaged:all-MiniLM-L6-v2", hidden=[16])
    assert enc.vector_dim == 384 and enc.reads_phrases
    words = ["happy", "happy!", "sad.", '"sad"', "asdfqwer", "😂", "😭", "🙂", ":)", ":(", "NA", "None"]
    # every word gets a vector; coverage says which are known words (the GloVe 6B lexicon): not the nonsense string
    assert enc.coverage(words).tolist() == [1.0] * 4 + [0.0] + [1.0] * 7
    batch = enc.collate(words)
    v = batch["vectors"].numpy()
    assert v.shape == (12, 384) and batch["known"].all()
    np.testing.assert_allclose(v[0], v[1], atol=1e-5)  # happy! = happy
    assert not np.allclose(v[5], v[6]) and not np.allclose(v[8], v[9])
    assert enc.keyed_vectors.embed(["happy"])[0] == pytest.approx(v[0], abs=1e-5)  # batched = one by one
