"""Batch inference on Dask: the same ``predict`` on every partition of a Dask DataFrame, on a local cluster or on
any Dask deployment (SLURM/PBS through dask-jobqueue, Kubernetes, a cloud cluster), with output partitions written
to Parquet in parallel.

    from dask.distributed import Client, LocalCluster
    from emoembed.distributed import read_table, predict_dask

    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    frame = read_table("big.csv", blocksize="64MB")                  # lazy, partitioned
    preds = predict_dask(frame, "runs/text-onnx-int8", "vad", column="text")
    preds.to_parquet("preds/")                                         # one file per partition, in parallel

Why Dask (and not Ray Data): it installs from pip as pure Python (dask + distributed, a few MB, no separate
object-store or raylet processes), its DataFrame reads csv/jsonl/parquet in partitions and hands each partition
to us as a pandas DataFrame — exactly what ``EmotionModel.predict`` returns — and the same code runs in-process, on
a local process cluster or on an HPC/cloud scheduler. Each worker process loads the model once (cached per process)
and keeps its own thread count (``threads``, default 1: one worker per core).

Rows keep their input order and each partition its index (Dask's csv/json readers restart the index at 0 in every
partition, so read results back with ``dd.read_parquet``, which keeps the partition order, rather than sorting by
index); ``predict_dask(...).compute()`` equals the single-process ``model.predict(texts).reset_index()`` row for row
(tested on 2 local worker processes), with the input's other columns (``keep_columns``: all by default, as
``emoembed predict`` keeps them) in front, so results join back by an id column rather than by a partition index.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from emoembed.errors import ConfigError

_MODELS: dict[tuple[str, str, int], Any] = {}


def _require_dask():
    try:
        import dask.dataframe as dd
    except ImportError:
        raise ConfigError("the Dask recipe needs dask[dataframe] and distributed "
                          "(pip install 'dask[dataframe]==2026.8.0' distributed==2026.8.0)") from None
    return dd


def worker_model(model_dir: str, backend: str = "auto", threads: int = 1):
    """The model in ``model_dir``, loaded once per process (each Dask worker keeps its own copy)."""
    key = (str(Path(model_dir).resolve()), backend, int(threads))
    if key not in _MODELS:
        import torch

        from emoembed.model import EmotionModel

        torch.set_num_threads(int(threads))
        _MODELS[key] = EmotionModel.from_pretrained(model_dir, backend=backend, threads=int(threads))
    return _MODELS[key]


def predict_partition(frame: pd.DataFrame, model_dir: str, fmt: str, column: str, scale: str | Sequence[float] = "normalized",
                      batch_size: int = 64, backend: str = "auto", threads: int = 1,
                      keep: Sequence[str] = ()) -> pd.DataFrame:
    """``predict`` of one partition: the ``keep`` columns of ``frame`` (in their order), the content column, then
    one column per variable (``label`` for class formats); the partition's index is kept so the partitions line up
    with the input."""
    keep = list(keep)
    if len(frame) == 0:
        return _empty_output(model_dir, fmt, backend, threads, frame[keep])
    from emoembed.tables import keep_input_columns

    model = worker_model(model_dir, backend, threads)
    out = model.predict(frame[column].tolist(), fmt, scale=scale, batch_size=batch_size).reset_index()
    out = keep_input_columns(out, frame[keep])
    out.index = frame.index
    return out


def _empty_output(model_dir: str, fmt: str, backend: str, threads: int, kept: pd.DataFrame) -> pd.DataFrame:
    model = worker_model(model_dir, backend, threads)
    f = model.format(fmt)
    index = kept.index[:0]
    cols: dict[str, pd.Series] = {c: kept[c].iloc[:0] for c in kept.columns}
    cols[model.modality] = pd.Series([], dtype="str", index=index)
    for v in f.variables:
        cols[v] = pd.Series([], dtype="float32", index=index)
    if f.kind != "regression":
        cols["label"] = pd.Series([], dtype="str", index=index)
    return pd.DataFrame(cols, index=index)


def read_table(path: str | Path, blocksize: str | int | None = "64MB"):
    """A lazy Dask DataFrame over a csv/tsv/jsonl/parquet file (or glob), split into partitions of ``blocksize``."""
    dd = _require_dask()
    p = str(path)
    suffix = Path(p).suffix.lower()
    if suffix == ".parquet" or Path(p).is_dir():
        return dd.read_parquet(p)
    if suffix in (".jsonl", ".json"):
        return dd.read_json(p, lines=True, blocksize=blocksize)
    if suffix in (".csv", ".tsv"):
        return dd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", blocksize=blocksize, dtype=str)
    raise ConfigError(f"{path}: read_table reads .csv, .tsv, .jsonl or .parquet")


def predict_dask(frame, model_dir: str | Path, fmt: str, column: str = "text", scale: str | Sequence[float] = "normalized",
                 batch_size: int = 64, backend: str = "auto", threads: int = 1,
                 keep_columns: str | Sequence[str] = "all"):
    """A lazy Dask DataFrame of predictions, one output partition per input partition (see the module doc).
    ``model_dir`` must be readable by every worker (a shared filesystem on a cluster). ``keep_columns``: the input's
    other columns carried in front, ``"all"`` (default), ``"none"`` or names
    (:func:`emoembed.tables.kept_columns`); one named like an output column is a DataError naming it."""
    from emoembed.tables import check_no_clash, kept_columns

    _require_dask()
    model_dir = str(Path(model_dir).resolve())
    if column not in frame.columns:
        raise ConfigError(f"no column {column!r}; columns: {list(frame.columns)}")
    keep = kept_columns([str(c) for c in frame.columns], column, keep_columns, "the Dask DataFrame")
    model = worker_model(model_dir, backend, threads)
    f = model.format(fmt)
    check_no_clash(keep, [model.modality, *f.variables, *(["label"] if f.kind != "regression" else [])],
                   "the Dask DataFrame")
    sample = frame[[*keep, column]].head(1, npartitions=-1)
    meta = predict_partition(sample, model_dir, fmt, column, scale, batch_size, backend, threads, keep).iloc[:0]
    return frame[[*keep, column]].map_partitions(predict_partition, model_dir, fmt, column, scale, batch_size, backend,
                                                 threads, keep, meta=meta)
