"""Retrieval in the emotion space: index words, texts and images with models trained on one codec, and search
them by content (a word, a text, an image) or by an emotion label (``joy=0.9``, VAD values…).

    index = EmotionIndex()
    index.add(word_model, ["happy", "grief", "calm"], source="runs/words")
    index.add(text_model, ["What a lovely day", "I hate Mondays"], source="runs/text")
    index.search(word_model.encode(["cheerful"]), k=3)              # list of one DataFrame
    index.search(emotion_query(codec, "joy=1")[0], k=3)               # one DataFrame
    index.save_pretrained("runs/index"); EmotionIndex.from_pretrained("runs/index")   # also: save / load

Embeddings of models trained on *different* codecs live in different spaces: every index records the codec's
fingerprint (:func:`emoembed.codec.head_fingerprint`) and refuses models and query codecs whose fingerprint
differs. Direct-head baselines (``--heads direct``) have no codec space and cannot be indexed.

On disk an index is a folder: ``embeddings.safetensors`` (L2-normalised float32, ``(N, d)``), ``items.jsonl``
(one ``{"item", "modality", "source"}`` per row) and ``index.json`` (dim, fingerprint, models, counts, version).
It is written into a temporary folder next to the target and renamed into place.

Search is exact cosine similarity (a batched matrix product); ties are broken by index order, so results are
deterministic. FAISS (``IndexFlatIP``, also exact) is used only when it is importable and asked for
(``backend="faiss"``) or, with ``backend="auto"``, for indexes of a million rows or more.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoembed.errors import CheckpointError, EmoembedError

if TYPE_CHECKING:
    import pandas as pd

    from emoembed.codec import EmotionCodec
    from emoembed.formats import LabelFormat
    from emoembed.model import EmotionModel

INDEX_TYPE = "emoembed-index"
INDEX_FORMAT_VERSION = 1
EMBEDDINGS_NAME = "embeddings.safetensors"
ITEMS_NAME = "items.jsonl"
META_NAME = "index.json"
MODALITIES = ("word", "text", "image")
FAISS_AUTO_ROWS = 1_000_000
_SCORE_BLOCK = 1 << 25  # query rows x index rows scored at once (128 MiB of float32)


class RetrievalError(EmoembedError):
    """An index folder, a query or a model does not fit the retrieval request."""


class IndexNotFoundError(RetrievalError):
    """No index at the given folder (or it is not an emoembed index)."""


class CodecMismatchError(RetrievalError):
    """A model or codec was trained on another codec than the index's embeddings."""


class ModalityError(RetrievalError):
    """A content query needs a model of its modality."""


# ---------------------------------------------------------------------------------------------- helpers
def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def codec_fingerprint(codec: EmotionCodec) -> str:
    from emoembed.codec import head_fingerprint

    return head_fingerprint(codec)


def model_reference(source: str | Path | None) -> str:
    """How an index records the model that embedded its items, so that ``search`` finds it again from any folder:
    a packaged model as ``emoembed/NAME`` — given as ``emoembed/NAME``, a bare catalogue name, or the path of its
    folder in the installed package — resolved through the model zoo at search time (:mod:`emoembed.model_zoo`),
    so the record survives a reinstall or another install location; any other existing folder as its absolute
    path; anything else as given (``<memory>`` for None)."""
    from emoembed.model_zoo import PREFIX, catalogue, is_pretrained_name, zoo_dir

    if source is None:
        return "<memory>"
    text = str(source)
    if is_pretrained_name(text):
        return text if text.startswith(PREFIX) else PREFIX + text
    path = Path(source)
    if not path.exists():
        return text
    resolved = path.resolve()
    try:
        zoo = zoo_dir().resolve()
        if resolved.parent == zoo and resolved.name in catalogue():
            return PREFIX + resolved.name
    except (OSError, EmoembedError):  # no model zoo in this install: a plain folder
        pass
    return str(resolved)


def resolve_model_reference(ref: str | Path) -> Path | None:
    """The folder of a model recorded by :func:`model_reference` (``emoembed/NAME`` through the model zoo, else the
    path), or None when it is no longer there (a deleted run folder, a packaged model absent from this install)."""
    from emoembed.model_zoo import is_pretrained_name, pretrained_dir

    if is_pretrained_name(ref):
        try:
            return pretrained_dir(ref)
        except EmoembedError:
            return None
    path = Path(ref)
    return path if path.is_dir() else None


def load_codec(directory: str | Path) -> EmotionCodec:
    """The codec of a codec directory (``emoembed map``) or of a model directory (``fit-encoder``); for a model
    only the codec's tensors are read from ``model.safetensors`` (the content encoder is not built)."""
    from safetensors import safe_open

    from emoembed.codec import EmotionCodec
    from emoembed.integrity import validate_model_config, verify_weights
    from emoembed.pretrained import (
        CONFIG_NAME,
        WEIGHTS_NAME,
        load_state_strict,
        read_config,
        saved_model_type,
    )

    from emoembed.model_zoo import resolve_model_dir

    directory = resolve_model_dir(directory)  # emoembed/NAME: the packaged model's folder
    path = directory / CONFIG_NAME
    if saved_model_type(directory) == EmotionCodec.model_type:
        return EmotionCodec.from_pretrained(directory)
    cfg = read_config(directory, "emotion-model")
    validate_model_config(cfg, path)
    try:
        codec = EmotionCodec.from_config(cfg["codec"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: missing or bad field {exc}") from None
    weights = directory / WEIGHTS_NAME
    if not weights.exists():
        raise CheckpointError(f"{weights}: weights file not found")
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as fh:
            names = [k for k in fh.keys() if k.startswith("codec.")]  # noqa: SIM118 — safe_open is not a dict
            state = {k[len("codec."):]: fh.get_tensor(k) for k in names}
    except Exception as exc:  # noqa: BLE001 — any unreadable file is reported the same way
        raise CheckpointError(f"{weights}: cannot read safetensors weights: {exc}") from None
    load_state_strict(codec, state, weights)
    verify_weights(cfg, state, directory, whole=False)
    codec.eval()
    return codec


def _check_model(model: EmotionModel, where: str) -> None:
    if getattr(model, "direct_heads", None) is not None:
        raise RetrievalError(f"{where}: a direct-head baseline (--heads direct) has no codec space; its embeddings "
                             f"cannot be indexed or searched")


# ---------------------------------------------------------------------------------------------- the index
class EmotionIndex:
    """L2-normalised emotion-space embeddings of items (words, texts, image paths) from models of one codec."""

    def __init__(self, dim: int | None = None, fingerprint: str | None = None):
        self.dim = dim
        self.fingerprint = fingerprint
        self.embeddings = np.zeros((0, dim or 0), dtype=np.float32)
        self.items: list[str] = []
        self.modalities: list[str] = []
        self.sources: list[str] = []
        self.models: list[dict[str, Any]] = []  # one entry per model: path, modality, count, skipped
        self._faiss: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"EmotionIndex({len(self)} items, dim={self.dim}, counts={self.counts()})"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.modalities:
            out[m] = out.get(m, 0) + 1
        return out

    def models_for(self, modality: str) -> list[str]:
        """The recorded models of ``modality`` (:func:`model_reference`: ``emoembed/NAME`` or a folder's path),
        most recently added first; :func:`resolve_model_reference` finds their folders."""
        return [m["path"] for m in reversed(self.models) if m["modality"] == modality]

    # ------------------------------------------------------------------ building
    def check_fingerprint(self, fingerprint: str, what: str) -> None:
        if self.fingerprint is not None and fingerprint != self.fingerprint:
            raise CodecMismatchError(
                f"{what}: its codec (fingerprint {fingerprint[:12]}…) is not the index's codec ({self.fingerprint[:12]}…); "
                f"embeddings of different codecs are not comparable — use a model trained on the index's codec, or "
                f"build a new index")

    def add(self, model: EmotionModel | str | Path, items: Sequence[Any], source: str | Path | None = None,
            batch_size: int = 64, chunk_size: int = 8192, skip_oov: bool = False,
            show_progress: bool = False) -> dict[str, Any]:
        """Encode ``items`` with ``model`` and append them. Items whose embedding is undefined (NaN, e.g. OOV
        words of an ``oov: skip`` model) are left out and counted; with ``skip_oov`` so are words the model's
        vectors do not know. Returns ``{"added", "skipped_nan", "skipped_oov", "modality", "source"}``."""
        from emoembed.model import EmotionModel

        if isinstance(model, (str, Path)):
            source = source if source is not None else model
            model = EmotionModel.from_pretrained(model)
        src = model_reference(source)  # emoembed/NAME for a packaged model, else an absolute path
        _check_model(model, src)
        self.check_fingerprint(codec_fingerprint(model.codec), f"model {src}")
        if model.codec.dim != (self.dim if self.dim is not None else model.codec.dim):
            raise CodecMismatchError(f"model {src}: embedding dimension {model.codec.dim}, index {self.dim}")
        items = list(items)
        if not items:
            raise RetrievalError(f"nothing to add from {src}: the list of items is empty")
        skipped_oov = 0
        known_mask = getattr(model.encoder, "known_mask", None)
        if skip_oov and known_mask is not None:
            clean = model.encoder.check_items(items, where="input")
            known = np.asarray(known_mask(clean), dtype=bool)
            skipped_oov = int((~known).sum())
            items = [x for x, k in zip(clean, known) if k]
            if not items:
                raise RetrievalError(f"nothing to add from {src}: all {skipped_oov} items are out of the model's vocabulary")
        parts, kept = [], []
        skipped_nan = 0
        for start in range(0, len(items), chunk_size):
            chunk = items[start:start + chunk_size]
            emb = model.encode(chunk, batch_size=batch_size, show_progress=show_progress)
            ok = np.isfinite(emb).all(axis=1)
            skipped_nan += int((~ok).sum())
            parts.append(emb[ok])
            kept.extend(str(x).strip() for x, k in zip(chunk, ok) if k)  # encode checked them (check_items strips)
        emb = _normalise_rows(np.concatenate(parts) if parts else np.zeros((0, model.codec.dim), np.float32))
        if self.fingerprint is None:
            self.fingerprint = codec_fingerprint(model.codec)
            self.dim = model.codec.dim
            self.embeddings = np.zeros((0, self.dim), dtype=np.float32)
        self.embeddings = np.concatenate([self.embeddings, emb]) if len(self) else emb
        self.items.extend(kept)
        self.modalities.extend([model.modality] * len(kept))
        self.sources.extend([src] * len(kept))
        self._faiss.clear()
        entry = next((m for m in self.models if m["path"] == src and m["modality"] == model.modality), None)
        if entry is None:
            entry = {"path": src, "modality": model.modality, "count": 0, "skipped": 0}
            self.models.append(entry)
        entry["count"] += len(kept)
        entry["skipped"] += skipped_nan + skipped_oov
        return {"added": len(kept), "skipped_nan": skipped_nan, "skipped_oov": skipped_oov,
                "modality": model.modality, "source": src}

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int = 10, modality: str | Sequence[str] | None = None,
               backend: str = "auto") -> pd.DataFrame | list[pd.DataFrame]:
        """The ``k`` items most cosine-similar to each query. ``queries``: one vector ``(d,)`` → one DataFrame,
        or ``(Q, d)`` → a list of Q DataFrames with columns rank, item, modality, source, cosine, row (the item's
        index row). ``modality`` keeps only items of that modality (or modalities). Ties: lower row first."""
        import pandas as pd

        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        if single:
            q = q[None, :]
        if q.ndim != 2 or (self.dim is not None and q.shape[1] != self.dim):
            raise RetrievalError(f"queries must have shape (Q, {self.dim}) or ({self.dim},), got {np.asarray(queries).shape}")
        if not np.isfinite(q).all():
            raise RetrievalError("a query embedding is undefined (NaN), e.g. an out-of-vocabulary word of an oov: skip model")
        if (np.linalg.norm(q, axis=1) == 0).any():
            raise RetrievalError("a query embedding is the zero vector; it has no direction to search")
        if int(k) < 1:
            raise RetrievalError(f"k must be at least 1, got {k}")
        if not len(self):
            raise RetrievalError("the index is empty")
        q = _normalise_rows(q)
        rows = self._rows(modality)
        top, scores = self._topk(q, rows, min(int(k), len(rows)), backend, modality)
        out = []
        for r_idx, r_sc in zip(top, scores):
            out.append(pd.DataFrame({
                "rank": np.arange(1, len(r_idx) + 1),
                "item": [self.items[i] for i in r_idx],
                "modality": [self.modalities[i] for i in r_idx],
                "source": [self.sources[i] for i in r_idx],
                "cosine": r_sc.astype(np.float64),
                "row": r_idx.astype(np.int64),
            }))
        return out[0] if single else out

    def _rows(self, modality: str | Sequence[str] | None) -> np.ndarray:
        if modality is None:
            return np.arange(len(self))
        wanted = {modality} if isinstance(modality, str) else set(modality)
        bad = wanted - set(MODALITIES)
        if bad:
            raise RetrievalError(f"unknown modality {sorted(bad)}; choose from {list(MODALITIES)}")
        rows = np.flatnonzero(np.isin(np.asarray(self.modalities, dtype=object), list(wanted)))
        if not len(rows):
            raise RetrievalError(f"the index holds no {'/'.join(sorted(wanted))} items (it has {self.counts()})")
        return rows

    def _topk(self, q: np.ndarray, rows: np.ndarray, k: int, backend: str, key: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if backend not in ("auto", "numpy", "faiss"):
            raise RetrievalError(f"backend must be auto, numpy or faiss, got {backend!r}")
        use_faiss = backend == "faiss" or (backend == "auto" and len(rows) >= FAISS_AUTO_ROWS)
        if use_faiss:
            try:
                import faiss  # noqa: F401
            except ImportError:
                if backend == "faiss":
                    raise RetrievalError("backend='faiss' needs the faiss package (pip install faiss-cpu)") from None
                use_faiss = False
        if use_faiss:
            return self._topk_faiss(q, rows, k, key)
        emb = self.embeddings if len(rows) == len(self) else self.embeddings[rows]
        tops, scores = [], []
        step = max(1, _SCORE_BLOCK // max(1, len(rows)))
        for s in range(0, len(q), step):
            sims = q[s:s + step] @ emb.T  # (block, n)
            for row in sims:
                idx = _topk_stable(row, k)
                tops.append(rows[idx])
                scores.append(row[idx])
        return tops, scores

    def _topk_faiss(self, q: np.ndarray, rows: np.ndarray, k: int, key: Any):
        import faiss

        cache_key = repr(key)
        if cache_key not in self._faiss:
            index = faiss.IndexFlatIP(self.dim)
            index.add(np.ascontiguousarray(self.embeddings[rows]))
            self._faiss[cache_key] = index
        sims, idx = self._faiss[cache_key].search(np.ascontiguousarray(q), k)
        tops, scores = [], []
        for s_row, i_row in zip(sims, idx):
            order = np.lexsort((i_row, -s_row))  # equal scores: lower row first
            tops.append(rows[i_row[order]])
            scores.append(s_row[order])
        return tops, scores

    def embedding_of(self, item: str, modality: str | None = None) -> np.ndarray | None:
        """The stored (normalised) embedding of the first row holding ``item`` (of ``modality``), or None."""
        for i, (it, m) in enumerate(zip(self.items, self.modalities)):
            if it == item and (modality is None or m == modality):
                return self.embeddings[i]
        return None

    # ------------------------------------------------------------------ persistence
    def meta(self) -> dict[str, Any]:
        from emoembed import __version__

        return {"index_type": INDEX_TYPE, "index_format": INDEX_FORMAT_VERSION, "emoembed_version": __version__,
                "dim": self.dim, "fingerprint": self.fingerprint, "count": len(self), "counts": self.counts(),
                "models": self.models}

    def save_pretrained(self, directory: str | Path, overwrite: bool = True) -> Path:
        """Write the index folder atomically: into a temporary folder beside it, then renamed into place (an
        existing index there is replaced; any other non-empty folder is refused)."""
        import torch

        from emoembed.io import (
            atomic_write_json,
            atomic_write_text,
            save_safetensors_atomic,
        )

        directory = Path(directory)
        if directory.exists():
            if not directory.is_dir():
                raise RetrievalError(f"{directory}: exists and is not a folder")
            if any(directory.iterdir()):
                if not (directory / META_NAME).exists():
                    raise RetrievalError(f"{directory}: exists and is not an emoembed index; choose another folder")
                if not overwrite:
                    raise RetrievalError(f"{directory}: an index exists there; pass --append to add to it or --overwrite")
        if self.dim is None or not len(self):
            raise RetrievalError(f"{directory}: refusing to save an empty index")
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the index folder gets the usual permissions
        try:
            save_safetensors_atomic({"embeddings": torch.from_numpy(np.ascontiguousarray(self.embeddings, dtype=np.float32))},
                                    tmp / EMBEDDINGS_NAME, metadata={"index_type": INDEX_TYPE, "fingerprint": self.fingerprint})
            lines = [json.dumps({"item": it, "modality": m, "source": s}, ensure_ascii=False)
                     for it, m, s in zip(self.items, self.modalities, self.sources)]
            atomic_write_text("\n".join(lines) + "\n", tmp / ITEMS_NAME)
            atomic_write_json(self.meta(), tmp / META_NAME)
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{uuid.uuid4().hex[:8]}")
                os.rename(directory, old)
                try:
                    os.rename(tmp, directory)
                except OSError:
                    os.rename(old, directory)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, directory)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return directory

    def save(self, directory: str | Path, overwrite: bool = True) -> Path:
        """Same as :meth:`save_pretrained`."""
        return self.save_pretrained(directory, overwrite)

    @classmethod
    def load(cls, directory: str | Path) -> EmotionIndex:
        """Same as :meth:`from_pretrained`."""
        return cls.from_pretrained(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EmotionIndex:
        """The index saved in ``directory``; IndexNotFoundError / RetrievalError naming the file for a missing
        folder, another kind of folder, another index format, or files that disagree."""
        from emoembed.io import load_safetensors, read_json

        directory = Path(directory)
        meta_path = directory / META_NAME
        if not directory.is_dir():
            raise IndexNotFoundError(f"{directory}: no index folder (build one with `emoembed index --model DIR --out {directory} …`)")
        if not meta_path.exists():
            raise IndexNotFoundError(f"{directory}: no {META_NAME}; is this a folder written by `emoembed index`?")
        meta = read_json(meta_path, RetrievalError)
        if not isinstance(meta, dict) or meta.get("index_type") != INDEX_TYPE:
            raise RetrievalError(f"{meta_path}: index_type is {meta.get('index_type') if isinstance(meta, dict) else None!r}, "
                                 f"expected {INDEX_TYPE!r}")
        if meta.get("index_format") != INDEX_FORMAT_VERSION:
            raise RetrievalError(f"{meta_path}: index format {meta.get('index_format')!r} (emoembed {meta.get('emoembed_version', '?')}); "
                                 f"this emoembed reads format {INDEX_FORMAT_VERSION}")
        for field in ("dim", "fingerprint", "count", "models"):
            if field not in meta:
                raise RetrievalError(f"{meta_path}: missing field {field!r}")
        emb = load_safetensors(directory / EMBEDDINGS_NAME).get("embeddings")
        if emb is None:
            raise RetrievalError(f"{directory / EMBEDDINGS_NAME}: no tensor 'embeddings'")
        emb = emb.numpy().astype(np.float32, copy=False)
        items_path = directory / ITEMS_NAME
        if not items_path.exists():
            raise RetrievalError(f"{items_path}: file not found")
        index = cls(int(meta["dim"]), str(meta["fingerprint"]))
        with open(items_path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    index.items.append(str(row["item"]))
                    index.modalities.append(str(row["modality"]))
                    index.sources.append(str(row.get("source", "")))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise RetrievalError(f"{items_path}, line {n}: bad row ({exc})") from None
        if emb.ndim != 2 or emb.shape != (len(index.items), index.dim) or len(index.items) != int(meta["count"]):
            raise RetrievalError(f"{directory}: embeddings {tuple(emb.shape)}, {len(index.items)} item rows and count "
                                 f"{meta['count']} (dim {meta['dim']}) do not agree")
        index.embeddings = emb
        index.models = [dict(m) for m in meta["models"]]
        return index


def _topk_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``scores``, descending; equal scores in index order (deterministic)."""
    n = len(scores)
    if k >= n:
        cand = np.arange(n)
    else:
        kth = np.partition(scores, n - k)[n - k]  # the k-th largest value
        cand = np.flatnonzero(scores >= kth)  # ascending index order; may hold more than k on ties
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:k]]


# ---------------------------------------------------------------------------------------------- label queries
def _neutral(fmt: LabelFormat) -> float:
    """The value of a variable the query does not name: the midpoint of a bipolar rating range (valence in
    [-1, 1] → 0), otherwise the bottom of the range (intensities, multi-label, classes → 0)."""
    lo, hi = fmt.range
    if fmt.kind == "regression" and lo < 0 < hi:
        return (lo + hi) / 2
    return lo


def _resolve_variable(codec: EmotionCodec, fmt: LabelFormat, name: str) -> str | None:
    """``name`` as a variable of ``fmt``: itself, or the member of its equivalence class (happy → joy)."""
    if name in fmt.variables:
        return name
    eq = codec.equivalences
    for cls in eq.classes.values():
        if name in cls.names or name == cls.name:
            for f, v in cls.members:
                if f == fmt.name:
                    return v
    return None


def parse_emotion_spec(spec: str | Mapping[str, float]) -> dict[str, float | None]:
    """``"joy=0.9,fear=0.1"`` → ``{"joy": 0.9, "fear": 0.1}``; a bare name (``"joy"``) → ``{"joy": None}``
    (the top of the format's range, or the one-hot class)."""
    if isinstance(spec, Mapping):
        return {str(k): (None if v is None else float(v)) for k, v in spec.items()}
    out: dict[str, float | None] = {}
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not name:
            raise RetrievalError(f"--emotion: empty variable name in {spec!r} (expected NAME=VALUE[,NAME=VALUE…])")
        if name in out:
            raise RetrievalError(f"--emotion: variable {name!r} given twice in {spec!r}")
        if sep:
            try:
                out[name] = float(value)
            except ValueError:
                raise RetrievalError(f"--emotion: {name}={value!r} is not a number") from None
        else:
            out[name] = None
    if not out:
        raise RetrievalError(f"--emotion: no variables in {spec!r} (expected e.g. 'joy=0.9,fear=0.1')")
    return out


def _label_vector(codec: EmotionCodec, fmt: LabelFormat, values: Sequence[float],
                  input_scale: Sequence[float] | None) -> np.ndarray:
    """One label row in ``fmt``, scaled like :meth:`EmotionCodec.convert` inputs (``input_scale`` for
    regression formats) and checked against the format's normalised range."""
    from emoembed.scales import InputScaleError

    lo, hi = fmt.range
    eps = 1e-6 * (hi - lo)
    raw = np.asarray(list(values), dtype=np.float64)
    try:
        x = codec._input_matrix(raw[None, :], fmt, input_scale)[0]
    except InputScaleError as exc:
        if input_scale is not None and fmt.kind == "regression":
            raise RetrievalError(str(exc).replace("row 0, column ", f"{fmt.name}: ")) from None
        x = raw  # outside the normalised range: reported below as before
    out_of = np.flatnonzero((x < lo - eps) | (x > hi + eps))
    if len(out_of):
        j = int(out_of[0])
        hint = " (pass --input-scale LOW,HIGH for ratings on another scale)" if fmt.kind == "regression" and input_scale is None else ""
        raise RetrievalError(f"{fmt.name}.{fmt.variables[j]} = {float(values[j]):g} is outside the format's range "
                             f"[{lo:g}, {hi:g}]{hint}")
    if fmt.kind != "regression" and not (x > 0).any():
        raise RetrievalError(f"a {fmt.kind} label of {fmt.name} needs at least one class above 0")
    return x


def _label_dict(fmt: LabelFormat, x: np.ndarray) -> dict[str, float]:
    return {v: round(float(val), 6) for v, val in zip(fmt.variables, x)}  # 0.9, not float32's 0.8999999761581421


def _encode_label(codec: EmotionCodec, fmt: LabelFormat, x: np.ndarray) -> np.ndarray:
    import torch

    was = codec.training
    codec.eval()
    try:
        with torch.no_grad():
            y = torch.as_tensor(x[None, :], dtype=torch.float32, device=next(codec.parameters()).device)
            return codec.encode_labels(fmt.name, y)[0].float().cpu().numpy()
    finally:
        codec.train(was)


def values_query(codec: EmotionCodec, format: str, values: Sequence[float] | str,
                 input_scale: Sequence[float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The emotion embedding of one label given as all of ``format``'s variables, in order
    (``"0.8,0.5,0.2"`` or a list). Returns (vector, description)."""
    fmt = codec.format(format)
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise RetrievalError(f"--values must be numbers separated by commas, got {values!r}") from None
    values = list(values)
    if len(values) != fmt.size:
        raise RetrievalError(f"--values: format {fmt.name!r} has {fmt.size} variables {list(fmt.variables)}, "
                             f"got {len(values)} value(s)")
    x = _label_vector(codec, fmt, values, input_scale)
    return _encode_label(codec, fmt, x), {"format": fmt.name, "label": _label_dict(fmt, x)}


def emotion_query(codec: EmotionCodec, spec: str | Mapping[str, float | None], format: str | None = None,
                  input_scale: Sequence[float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The emotion embedding of a label given by named variables (``"joy=0.9,fear=0.1"``). The format is
    ``format``, else the first format in codec order that has every named variable (an exact name first, an
    equivalent one — ``happy`` for ``joy`` — otherwise). Unnamed variables get the neutral value (0 for
    intensities, multi-label and classes; the midpoint of bipolar ranges such as valence); a bare name is the top
    of the range (one-hot for a class format). Returns (vector, description: format, label, alternatives)."""
    named = parse_emotion_spec(spec)
    alternatives: list[str] = []
    if format is not None:
        fmt = codec.format(format)
        mapping = {n: _resolve_variable(codec, fmt, n) for n in named}
        unknown = [n for n, v in mapping.items() if v is None]
        if unknown:
            raise RetrievalError(f"--emotion: format {fmt.name!r} has no variable {', '.join(map(repr, unknown))}; "
                                 f"its variables: {', '.join(fmt.variables)}")
    else:
        exact = [f for f in codec.formats.values() if all(n in f.variables for n in named)]
        loose = exact or [f for f in codec.formats.values() if all(_resolve_variable(codec, f, n) for n in named)]
        if not loose:
            listing = "; ".join(f"{f.name}: {', '.join(f.variables)}" for f in codec.formats.values())
            raise RetrievalError(f"--emotion: no format of this codec has all of {', '.join(map(repr, named))}; "
                                 f"formats and variables — {listing}")
        fmt, alternatives = loose[0], [f.name for f in loose[1:]]
        mapping = {n: _resolve_variable(codec, fmt, n) for n in named}
    used = {mapping[n]: v for n, v in named.items()}
    if len(used) != len(named):
        raise RetrievalError(f"--emotion: two names in {list(named)} mean the same variable of {fmt.name!r}")
    values = []
    for var in fmt.variables:
        if var in used:
            v = used[var]
            values.append(v if v is not None else (input_scale[1] if input_scale is not None and fmt.kind == "regression"
                                                    else fmt.range[1]))
        else:
            neutral = _neutral(fmt)
            if input_scale is not None and fmt.kind == "regression":  # back to the input scale; _input_matrix rescales
                lo, hi = (float(s) for s in input_scale)
                neutral = lo + (neutral - fmt.range[0]) * (hi - lo) / (fmt.range[1] - fmt.range[0])
            values.append(neutral)
    x = _label_vector(codec, fmt, values, input_scale)
    return _encode_label(codec, fmt, x), {"format": fmt.name, "label": _label_dict(fmt, x),
                                          "alternatives": alternatives}
