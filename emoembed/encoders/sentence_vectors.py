"""Word vectors from a frozen sentence encoder: the packaged all-MiniLM-L6-v2 applied to the word itself (its
word-piece tokens), mean-pooled over the tokens (attention-masked, special tokens included, as the model was
trained). Every word that is not made only of unknown-token pieces gets a vector, so a word encoder on these
vectors has (almost) no out-of-vocabulary words: misspellings, rare inflections, names and emoji descriptions all
get a vector from their pieces.

Used by :class:`~emoembed.encoders.word.WordEncoder` with ``vectors: packaged:all-MiniLM-L6-v2`` (384-d); the
backbone stays frozen and runs without gradients, and vectors are computed in batches and cached per process.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

SENTENCE_VECTOR_SPECS = {"packaged:all-minilm-l6-v2": 384}


def is_sentence_vectors(spec: str) -> bool:
    return str(spec).lower() in SENTENCE_VECTOR_SPECS


class SentenceEncoderVectors:
    """``embed(words)`` → (N, 384) float32 mean-pooled token states of the frozen backbone; ``known(word)``."""

    def __init__(self, spec: str, max_length: int = 32, batch_size: int = 256):
        from emoembed.encoders.text import build_backbone, load_tokenizer

        self.spec = spec
        self.tokenizer = load_tokenizer(spec)
        self.model = build_backbone(pretrained=spec).eval().requires_grad_(False)
        self.vector_size = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.batch_size = batch_size

    def known(self, word: str) -> bool:
        """True when at least one word piece of ``word`` is not the unknown token."""
        ids = self.tokenizer(word, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
        return any(i != self.tokenizer.unk_token_id for i in ids)

    def known_share(self, word: str) -> float:
        ids = self.tokenizer(word, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
        return float(np.mean([i != self.tokenizer.unk_token_id for i in ids])) if ids else 0.0

    @torch.no_grad()
    def embed(self, words: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(words), self.vector_size), dtype=np.float32)
        order = np.argsort([len(w) for w in words], kind="stable")
        for i in range(0, len(words), self.batch_size):
            idx = order[i:i + self.batch_size]
            enc = self.tokenizer([words[j] for j in idx], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            states = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            out[idx] = ((states * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy()
        return out
