"""Issue 14, unknown content for text models: emoji are read as their names (not the tokenizer's [UNK]) in the one
path that training, evaluate and predict share, the choice is recorded in the model's config (older models keep
reading emoji as given, and predict says so), and unknown pieces of texts are reported like a word model's unknown
words (stderr count and examples, the coverage column, --oov)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_text import one_thread, tiny_codec, tiny_encoder, tiny_tokenizer_dir  # noqa: F401  (autouse fixture)

from emoembed.cli import main
from emoembed.coverage import UnknownContentWarning
from emoembed.encoders.text import TextEncoder
from emoembed.errors import CheckpointError, ConfigError, DataError
from emoembed.lexical import emoji_as_words
from emoembed.model import EmotionModel

CASES = Path(__file__).parent / "cases"


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok_dir, format_registry):
    return EmotionModel(tiny_encoder(tok_dir), tiny_codec(format_registry), meta={"trained_formats": ["vad"]}).eval()


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("textmodel")
    model.save_pretrained(d)
    return d


def _legacy(model: EmotionModel) -> EmotionModel:
    """The same weights as a model saved before encoder.emoji existed (its config has no such field)."""
    cfg = model.encoder.config()
    del cfg["emoji"]
    enc = TextEncoder.from_config(cfg)
    enc.load_state_dict(model.encoder.state_dict())
    return EmotionModel(enc, model.codec, meta=model.meta).eval()


def test_emoji_as_words():
    assert emoji_as_words("I love it 😂") == "I love it face with tears of joy"
    assert emoji_as_words("👍🏽 great") == "thumbs up great"  # skin tone dropped
    assert emoji_as_words("👨‍👩‍👧") == "family man woman girl"  # a ZWJ sequence is one emoji
    assert emoji_as_words("🇫🇷") == "France"
    assert emoji_as_words("so_happy😢!!") == "so_happy crying face !!"
    text = "no  emoji here"
    assert emoji_as_words(text) is text  # unchanged, whitespace and all


def test_every_emoji_gets_its_own_representation(model):
    enc = model.encoder
    assert enc.emoji == "names" and enc.config()["emoji"] == "names"
    unk = enc.tokenizer.unk_token_id
    emoji = ["😀", "😭", "😡", "❤️"]
    batch = enc.collate(emoji)
    assert unk not in batch["input_ids"].tolist()[0] and len({tuple(r) for r in batch["input_ids"].tolist()}) == 4
    # training batches, evaluation batches and predictions all read the emoji's name
    names = ["grinning face", "loudly crying face", "enraged face", "red heart"]
    for train in (False, True):
        assert torch.equal(enc.collate(emoji, train=train)["input_ids"], enc.collate(names, train=train)["input_ids"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unknown: no warning
        out = model.predict(emoji + names, "vad", coverage_column=True)
    np.testing.assert_array_equal(out.iloc[:4].to_numpy(), out.iloc[4:].to_numpy())
    assert out["coverage"].tolist() == [1.0] * 8
    assert len({round(v, 6) for v in out["valence"].iloc[:4]}) == 4  # four emoji, four different predictions
    assert enc.token_lengths(["😀"]).tolist() == enc.token_lengths(["grinning face"]).tolist()


def test_the_emoji_setting_is_saved_and_older_models_keep_theirs(model, model_dir, tmp_path):
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["encoder"]["emoji"] == "names"
    loaded = EmotionModel.from_pretrained(model_dir)
    assert loaded.encoder.emoji == "names"
    pd.testing.assert_frame_equal(loaded.predict(["😀", "sad 😭"], "vad"), model.predict(["😀", "sad 😭"], "vad"))
    old = _legacy(model)
    assert old.encoder.emoji == "keep"
    with pytest.warns(UnknownContentWarning, match=r"2 of 2 texts hold emoji \('😀', '😭'\), and this model reads emoji "
                      r"as given: it was saved before emoji were read as their names \(its config.json has no "
                      r"encoder.emoji\)"):
        out = old.predict(["😀", "😭"], "vad", coverage_column=True)
    assert out["coverage"].tolist() == [0.0, 0.0]  # [UNK] only, as that model was trained
    np.testing.assert_array_equal(out.iloc[0].to_numpy(), out.iloc[1].to_numpy())
    bad = {**cfg, "encoder": {**cfg["encoder"], "emoji": "drop"}}
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match=r"field 'encoder.emoji' must be one of \['names', 'keep'\]"):
        TextEncoder.validate_saved_config(bad["encoder"], tmp_path / "config.json")
    with pytest.raises(ConfigError, match="emoji must be one of"):
        TextEncoder.from_config({**cfg["encoder"], "emoji": "drop"})


def test_unknown_pieces_of_texts_are_reported(model):
    texts = ["i 𝄞 it", "𝄞", "happy day"]
    assert model.encoder.unknown_pieces(texts) == [["𝄞"], ["𝄞"], []]
    with pytest.warns(UnknownContentWarning) as record:
        out = model.predict(texts, "vad", coverage_column=True)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("1 of 3 texts is unknown to the text model: its tokenizer reads every piece of them as "
                            "the unknown token [UNK] ('𝄞'); they are scored from the unknown token alone") for m in messages)
    assert any(m.startswith("1 of 3 texts holds pieces the text model's tokenizer does not know, read as its unknown "
                            "token [UNK]: '𝄞' in 'i 𝄞 it'") for m in messages)
    assert out["coverage"].round(4).tolist() == [0.6667, 0.0, 1.0]  # i [UNK] it: 2 of 3 pieces known
    with pytest.warns(UnknownContentWarning):
        blank = model.predict(texts, "vad", oov="nan")
    assert blank["valence"].isna().tolist() == [False, True, False]
    with pytest.raises(DataError) as err:
        model.predict(texts, "vad", oov="error", rows=["in.csv, line 2", "in.csv, line 3", "in.csv, line 4"])
    assert str(err.value) == ("in.csv, line 3: text '𝄞' is unknown to the text model (its tokenizer reads every piece "
                              "of it as the unknown token [UNK]); 1 of 3 texts is unknown in total; --oov vector scores "
                              "them from the unknown token alone, --oov nan leaves their outputs empty")


def test_cli_on_the_emoji_case(model_dir, capsys):
    assert main(["predict", "--model", str(model_dir), "--format", "vad", "--input", str(CASES / "emoji_words.csv")]) == 0
    out = capsys.readouterr()
    table = pd.read_csv(pd.io.common.StringIO(out.out))
    assert table["text"].tolist() == ["happy", "😂", "😭", "🙂", ":)", ":("]
    assert table.loc[1:3, "coverage"].tolist() == [1.0, 1.0, 1.0]  # the emoji are read as their names
    assert table.loc[1:3, "valence"].nunique() == 3
    # the tiny vocabulary has no ':', '(' or ')': the emoticons are reported, never scored silently
    assert "2 of 6 texts are unknown to the text model" in out.err and "':)', ':('" in out.err
    assert table.loc[4:5, "coverage"].tolist() == [0.0, 0.0]


def test_cli_oov_error_on_a_text_model_names_the_file_line(model_dir, capsys, tmp_path):
    """--oov error with a text model: the first wholly unknown text's file line (header = line 1), the text, and how
    many texts are unknown in total; exit 2 and no --output."""
    out_file = tmp_path / "o.csv"
    rc = main(["predict", "--model", str(model_dir), "--format", "vad", "--input", str(CASES / "emoji_words.csv"),
               "--oov", "error", "--output", str(out_file)])
    err = capsys.readouterr().err
    assert rc == 2 and not out_file.exists() and not (tmp_path / "o.csv.partial").exists()
    assert (f"error: {CASES / 'emoji_words.csv'}, line 6: text ':)' is unknown to the text model (its tokenizer reads "
            "every piece of it as the unknown token [UNK]); 2 of 6 texts are unknown in total: ':)' (line 6), ':(' "
            "(line 7); --oov vector scores them from the unknown token alone") in err
