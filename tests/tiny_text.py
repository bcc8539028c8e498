"""Helpers of the text tests: an offline WordPiece tokenizer over a tiny vocabulary, a tiny random BERT, a toy
emotion corpus whose valence/arousal follow its words, and a small random codec."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

POSITIVE = ["happy", "love", "good", "great", "joy"]
NEGATIVE = ["sad", "hate", "bad", "awful", "angry"]
AROUSING = {"great", "angry", "love", "awful"}
FILLER = ["the", "a", "day", "dog", "cat", "is", "was", "very", "today", "it", "i", "am", "not", "so"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def tiny_tokenizer_dir(root: Path) -> Path:
    """A saved BertTokenizer (tokenizer.json + config) over a ~90-token vocabulary."""
    from transformers import BertTokenizer

    vocab = SPECIAL + POSITIVE + NEGATIVE + FILLER + LETTERS + list(".,!?") + ["##" + c for c in LETTERS]
    src = root / "vocab"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    out = root / "tokenizer"
    BertTokenizer.from_pretrained(str(src), model_max_length=512).save_pretrained(str(out))
    return out


def tiny_bert_config(vocab_size: int = 100, hidden: int = 32, layers: int = 2, max_positions: int = 64) -> dict:
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=max_positions).to_dict()


def tiny_bert_dir(root: Path) -> Path:
    """A tiny random BERT saved as a Hugging Face folder (weights + tokenizer) under ``root/bert``: stands in for the
    packaged MiniLM wherever a backbone *spec* (a folder) is needed, e.g. under a LoRA adapter."""
    from transformers import AutoModel, BertConfig, BertTokenizer

    tok = tiny_tokenizer_dir(root)
    torch.manual_seed(0)
    cfg = tiny_bert_config()
    cfg.pop("model_type", None)
    AutoModel.from_config(BertConfig(**cfg)).save_pretrained(str(root / "bert"))
    BertTokenizer.from_pretrained(str(tok)).save_pretrained(str(root / "bert"))
    return root / "bert"


def tiny_encoder_cfg(tokenizer_dir: Path, max_length: int = 24, pooling: str = "mean") -> dict:
    """The ``encoder:`` section of a recipe for a random-init tiny BERT."""
    return {"backbone": None, "hf_config": tiny_bert_config(), "tokenizer": str(tokenizer_dir),
            "pooling": pooling, "max_length": max_length, "dropout": 0.1}


def tiny_encoder(tokenizer_dir: Path, dim: int = 16, seed: int = 0, **kw):
    from emoembed.encoders.base import encoder_class

    torch.manual_seed(seed)
    return encoder_class("text").from_recipe(tiny_encoder_cfg(tokenizer_dir, **kw), dim)


def toy_corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Sentences with one or two emotion words among fillers; labels (n, 3) = valence, arousal, dominance."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        pos = rng.random() < 0.5
        words = list(rng.choice(POSITIVE if pos else NEGATIVE, size=rng.integers(1, 3)))
        filler = list(rng.choice(FILLER, size=rng.integers(2, 8)))
        sent = filler + words
        rng.shuffle(sent)
        v = (0.8 if pos else -0.8) + rng.normal(0, 0.05)
        a = (0.6 if AROUSING & set(words) else -0.4) + rng.normal(0, 0.05)
        texts.append(" ".join(sent))
        labels.append([v, a, 0.3 * v])
    return texts, np.clip(np.array(labels, dtype=np.float32), -1, 1)


def tiny_codec(format_registry, formats=("vad", "va", "be6"), dim: int = 16, seed: int = 0):
    from emoembed.codec import codec_for

    torch.manual_seed(seed)
    return codec_for(list(formats), format_registry, dim=dim, hidden=(16,), dropout=0.0)


def toy_task(format_registry, n_train: int = 96, n_eval: int = 32, seed: int = 0):
    from emoembed.tasks import Task

    texts, y = toy_corpus(n_train + 2 * n_eval, seed)
    cut = {"train": slice(0, n_train), "dev": slice(n_train, n_train + n_eval), "test": slice(n_train + n_eval, None)}
    return Task("toy", format_registry.get("vad"), {k: texts[s] for k, s in cut.items()},
                {k: y[s] for k, s in cut.items()}, {}, "text")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two OpenMP threads
    spin against other processes (a 32×64 matmul then takes milliseconds). Restored after the module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
