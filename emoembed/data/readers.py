"""Readers turn a card's files into one raw table. Each is registered under the name a card's
``reader.type`` uses; a new file layout is a new function here, not an if-chain elsewhere.

Every reader returns a DataFrame with the source columns plus ``_file`` (the file a row came from) and
``_row`` (its 1-based line in that file), so later errors can name both.
"""
from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoembed.errors import ConfigError, DataError

Reader = Callable[[Mapping[str, Path], Mapping[str, Any], str], pd.DataFrame]
READERS: dict[str, Reader] = {}


def register(name: str) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return deco


def read_table(reader_spec: Mapping[str, Any], paths: Mapping[str, Path], where: str) -> pd.DataFrame:
    kind = reader_spec.get("type")
    if kind not in READERS:
        raise ConfigError(f"{where}: unknown reader type {kind!r}; known: {', '.join(sorted(READERS))}")
    return READERS[kind](paths, reader_spec, where)


def _file_keys(opts: Mapping[str, Any], where: str) -> dict[str, str]:
    """``file: key`` or ``files: {tag: key, …}`` → {tag: key}; the tag goes into the ``source`` column."""
    if "files" in opts:
        files = opts["files"]
        if isinstance(files, list):
            return {str(k): str(k) for k in files}
        return {str(t): str(k) for t, k in files.items()}
    if "file" in opts:
        return {"": str(opts["file"])}
    raise ConfigError(f"{where}: reader needs 'file' or 'files'")


def _path(paths: Mapping[str, Path], key: str, where: str) -> Path:
    if key not in paths:
        raise ConfigError(f"{where}: reader names file key {key!r}, which the card's 'files' does not declare")
    return paths[key]


@register("delimited")
def read_delimited(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """csv/tsv/|-separated text. Options: sep, encoding, header (row index or null), names, comment,
    quoting ('minimal' | 'none'), drop_empty_columns (default true), lineterminator."""
    frames = []
    for tag, key in _file_keys(opts, where).items():
        path = _path(paths, key, where)
        header = opts.get("header", 0)
        quoting = csv.QUOTE_NONE if opts.get("quoting") == "none" else csv.QUOTE_MINIMAL
        try:
            df = pd.read_csv(
                path,
                sep=opts.get("sep", ","),
                encoding=opts.get("encoding", "utf-8"),
                header=header,
                names=opts.get("names"),
                comment=opts.get("comment"),
                quoting=quoting,
                dtype=str,
                keep_default_na=False,
                na_values=[""] + list(opts.get("na_values", [])),
                skip_blank_lines=True,
                engine="python" if opts.get("sep") in ("|",) or quoting == csv.QUOTE_NONE else "c",
                index_col=False,
            )
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: cannot decode as {opts.get('encoding', 'utf-8')} (byte {exc.start}): {exc.reason}") from None
        except (pd.errors.ParserError, csv.Error) as exc:
            raise DataError(f"{path}: cannot parse as delimited text: {exc}") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: file is empty") from None
        if opts.get("drop_empty_columns", True):
            empty = [c for c in df.columns if str(c).startswith("Unnamed") and df[c].isna().all()]
            df = df.drop(columns=empty)
        df.columns = [str(c).strip() if opts.get("strip_column_names", True) else str(c) for c in df.columns]
        df["_file"] = str(path)
        df["_row"] = np.arange(len(df)) + (2 if header is not None else 1)
        df["_index"] = np.arange(len(df)).astype(str)
        if tag:
            df["source"] = tag
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@register("norare")
def read_norare(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """A NoRaRe tsv with its ``-metadata.json``: the metadata's declared column ranges are kept in
    ``df.attrs['ranges']`` so the card's source scales can be checked against them."""
    df = read_delimited(paths, {**opts, "sep": "\t"}, where)
    meta_key = opts.get("metadata")
    ranges: dict[str, tuple[float, float]] = {}
    if meta_key:
        meta_path = _path(paths, meta_key, where)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta_path}: invalid metadata JSON: {exc}") from None
        tables = meta.get("tables") or [meta]
        for col in tables[0].get("tableSchema", {}).get("columns", []):
            dt = col.get("datatype")
            if isinstance(dt, dict) and "minimum" in dt and "maximum" in dt:
                ranges[col["name"]] = (float(dt["minimum"]), float(dt["maximum"]))
    df.attrs["ranges"] = ranges
    return df


@register("affectivetext")
def read_affectivetext(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """SemEval-2007 Affective Text: per part an ``.xml`` of headlines and the ``emotions.gold`` /
    ``valence.gold`` files (space-separated: id then scores)."""
    emotions = opts.get("emotions", ["anger", "disgust", "fear", "joy", "sadness", "surprise"])
    frames = []
    for part in opts.get("parts", []):
        xml_path = _path(paths, part["xml"], where)
        try:
            root = ET.fromstring(xml_path.read_bytes())
        except ET.ParseError as exc:
            raise DataError(f"{xml_path}: invalid XML: {exc}") from None
        texts = {int(inst.get("id")): (inst.text or "").strip() for inst in root.iter("instance")}
        emo = _read_gold(_path(paths, part["emotions"], where), ["id", *emotions])
        val = _read_gold(_path(paths, part["valence"], where), ["id", "valence"])
        df = emo.merge(val.drop(columns=["_row", "_file"]), on="id", how="outer", validate="one_to_one")
        missing_text = sorted(set(df["id"]) - set(texts))
        if missing_text:
            raise DataError(f"{xml_path}: no headline for gold id(s) {missing_text[:5]}")
        df["text"] = df["id"].map(texts)
        df["source"] = part.get("tag", xml_path.stem)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["id"] = out["id"].astype(str)
    return out


def _read_gold(path: Path, names: list[str]) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != len(names):
                raise DataError(f"{path}: line {lineno}: expected {len(names)} fields ({' '.join(names)}), found {len(parts)}")
            try:
                rows.append([int(parts[0]), *parts[1:], lineno])
            except ValueError:
                raise DataError(f"{path}: line {lineno}: id {parts[0]!r} is not an integer") from None
    df = pd.DataFrame(rows, columns=[*names, "_row"])
    df["_file"] = str(path)
    return df


@register("npz")
def read_npz(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """A NumPy ``.npz``: 1-d arrays become columns; a 2-d array ``a`` with ``columns: {a: [names…]}``
    becomes one column per name. Large arrays (e.g. images) stay in the file and are loaded lazily by the
    content encoder; the row index is the item id."""
    path = _path(paths, opts["file"], where)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None
    out: dict[str, Any] = {}
    with npz:
        for name in opts.get("arrays", []):
            if name not in npz.files:
                raise DataError(f"{path}: array {name!r} not found; the file has {npz.files}")
            try:
                arr = npz[name]
            except ValueError as exc:  # e.g. an object array: it would need unpickling, which is never done
                raise DataError(f"{path}: cannot read array {name!r}: {exc}") from None
            if arr.ndim == 1:
                out[name] = arr
            elif arr.ndim == 2 and name in opts.get("columns", {}):
                names = opts["columns"][name]
                if arr.shape[1] != len(names):
                    raise DataError(f"{path}: array {name!r} has {arr.shape[1]} columns, the card names {len(names)}")
                for i, col in enumerate(names):
                    out[col] = arr[:, i]
            else:
                raise ConfigError(f"{where}: array {name!r} is {arr.ndim}-d; give its column names under reader.columns")
    df = pd.DataFrame(out)
    df["row"] = np.arange(len(df)).astype(str)
    df["_file"] = str(path)
    df["_row"] = np.arange(len(df))
    return df


@register("json_lexicon")
def read_json_lexicon(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """A JSON object {word: [label, …]} (NRC EmoLex as shipped by ``nrclex``) → columns word, labels."""
    path = _path(paths, opts["file"], where)
    try:
        data = json.loads(path.read_text(encoding=opts.get("encoding", "utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping words to label lists")
    words, labels = [], []
    for word, labs in data.items():
        if not isinstance(labs, list):
            raise DataError(f"{path}: entry {word!r}: expected a list of labels, got {type(labs).__name__}")
        words.append(word)
        labels.append(",".join(str(label) for label in labs))
    df = pd.DataFrame({"word": words, "labels": labels})
    df["_file"] = str(path)
    df["_row"] = np.arange(len(df)) + 1
    return df


@register("delimited_free_text")
def read_delimited_free_text(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """Delimited text whose one free-text column (``free_column``) may itself contain the separator, as in
    ISEAR's ``|`` files: the surplus fields of a line are joined back into that column."""
    path = _path(paths, opts["file"], where)
    sep = opts.get("sep", "|")
    free = opts["free_column"]
    try:
        lines = path.read_text(encoding=opts.get("encoding", "utf-8")).splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: cannot decode as {opts.get('encoding', 'utf-8')} (byte {exc.start}): {exc.reason}") from None
    if not lines:
        raise DataError(f"{path}: file is empty")
    header = lines[0].split(sep)
    if free not in header:
        raise DataError(f"{path}: free-text column {free!r} not in the header")
    k = header.index(free)
    rows, linenos = [], []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split(sep)
        extra = len(parts) - len(header)
        if extra < 0:
            raise DataError(f"{path}: line {lineno}: expected {len(header)} fields, found {len(parts)} (truncated line?)")
        if extra:
            parts = parts[:k] + [sep.join(parts[k:k + extra + 1])] + parts[k + extra + 1:]
        rows.append(parts)
        linenos.append(lineno)
    df = pd.DataFrame(rows, columns=[h.strip() for h in header])
    df = df.loc[:, [c for c in df.columns if c]]  # a trailing separator makes an unnamed empty column
    df[free] = df[free].str.strip().str.strip('"')
    df["_file"] = str(path)
    df["_row"] = linenos
    df["_index"] = np.arange(len(df)).astype(str)
    return df


@register("image_folders")
def read_image_folders(paths: Mapping[str, Path], opts: Mapping[str, Any], where: str) -> pd.DataFrame:
    """Images sorted into class folders: ``ROOT/<class>/<image>`` or, with ``split_folders: [train, test]``,
    ``ROOT/<split>/<class>/<image>``. ``file`` names a declared file in ROOT that anchors the folder: a class
    list (one class folder name per line, e.g. ``classes.txt``), read unless ``classes`` lists them inline.
    ``folder`` (optional) is ROOT relative to that file's folder. Columns: ``path`` (absolute; use it as the
    content), ``relpath`` (the item id), ``class``, ``split_folder``, ``name``, ``prefix`` (file name up to its
    first ``_``, e.g. FER2013's ``Training``/``PublicTest``/``PrivateTest``)."""
    from emoembed.data.images import scan_class_folders

    if "file" not in opts:
        raise ConfigError(f"{where}: the image_folders reader needs 'file': a declared file in the image folder (e.g. classes.txt)")
    anchor = _path(paths, opts["file"], where)
    classes = opts.get("classes")
    if not classes:
        try:
            classes = [ln.strip() for ln in anchor.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
        except UnicodeDecodeError:
            raise DataError(f"{anchor}: the class list must be UTF-8 text, one class folder name per line") from None
        if not classes:
            raise DataError(f"{anchor}: empty class list; write one class folder name per line (or give reader.classes)")
    split_folders = opts.get("split_folders")
    root = (anchor.parent / str(opts.get("folder", "."))).resolve()
    df = scan_class_folders(root, [str(c) for c in classes], [str(s) for s in split_folders] if split_folders else None,
                            bool(opts.get("recursive", True)))
    df["_file"] = df["path"]
    df["_row"] = np.arange(len(df)) + 1
    return df
