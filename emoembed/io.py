"""Atomic writes: a file is written under a temporary name in its folder and renamed into place, so a crash
never leaves a half-written checkpoint, config or table behind.

What a write to ``path`` guarantees (the ``--output`` of ``predict``, every file of a run folder):

* the old content stays until the new content is complete (temporary file ``.NAME.PID-RANDOM.tmp`` in the same
  folder, then ``os.replace``);
* an existing file keeps its permission bits (a 0600 file stays 0600); a new file gets the mode a plain
  ``open()`` would (0666 minus the umask);
* a symlink is written *through*: the link stays and its target gets the new content (written atomically in
  the target's folder);
* a folder where a file is expected, a missing permission, a full disk … raise :class:`OutputError` naming
  ``path`` (never the temporary name), and the temporary file is removed;
* temporary files that a killed process left behind (their PID no longer runs) are removed on the next write
  to the same target and by :func:`remove_stale_temporaries` at the end of a run.
"""
from __future__ import annotations

import errno
import json
import math
import numbers
import os
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoembed.errors import CheckpointError, OutputError

if TYPE_CHECKING:  # torch and safetensors are imported where they are used: the CLI's run lock needs neither
    import torch

TMP_SUFFIX = ".tmp"
LEGACY_TMP_AGE_S = 3600.0  # temporaries of older versions carry no PID: removed once this old


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a PID of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _tmp_owner(name: str, target: str | None = None) -> int | None:
    """The PID in a temporary name ``.TARGET.PID-RANDOM.tmp``; -1 for an older name without one; None when
    ``name`` is no temporary (of ``target``, when given)."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return None
    core = name[1:-len(TMP_SUFFIX)]
    if target is not None:
        if not core.startswith(target + "."):
            return None
        tag = core[len(target) + 1:]
    else:
        tag = core.rsplit(".", 1)[-1] if "." in core else ""
        if not tag:
            return None
    pid, sep, rand = tag.partition("-")
    if sep and pid.isdigit() and rand:
        return int(pid)
    return -1 if "." not in tag else None


def _is_stale(path: Path, pid: int) -> bool:
    if pid > 0:
        return pid != os.getpid() and not pid_alive(pid)
    try:
        return time.time() - path.lstat().st_mtime > LEGACY_TMP_AGE_S
    except OSError:
        return False


def remove_stale_temporaries(folder: str | Path, target: str | None = None, recursive: bool = False) -> list[Path]:
    """Remove the temporary files in ``folder`` (of the file named ``target``, or of any file; with
    ``recursive`` also in its sub-folders) whose writer no longer runs; returns what was removed. Never raises."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).rglob(".*" + TMP_SUFFIX) if recursive else Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = _tmp_owner(entry.name, target)
        if pid is None or not _is_stale(entry, pid):
            continue
        try:
            if entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
        except OSError:
            pass
    return removed


def resolve_output_path(path: str | Path) -> Path:
    """Where a write to ``path`` lands: ``path`` itself, or, for a symlink, the file it points to (written
    through). Raises :class:`OutputError` for a folder."""
    path = Path(path)
    target = path
    if path.is_symlink():
        target = Path(os.path.realpath(path))
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name to write to")
    return target


def check_output_path(path: str | Path) -> Path:
    """Fail early (:class:`OutputError` naming ``path``) when ``path`` cannot be written: a folder, a file in a
    folder that does not exist and cannot be made, a folder without write permission, or an existing read-only
    file (which the atomic rename would otherwise replace). Returns the path."""
    given = Path(path)
    target = resolve_output_path(given)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {given}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {given}: permission denied ({folder} is not writable)")
    if target.exists() and (not os.access(target, os.W_OK) or not target.stat().st_mode & 0o222):
        # the atomic rename would replace a read-only file silently; refuse like the shell's `>` does (also for
        # root: a file without any write bit was made read-only on purpose)
        raise OutputError(f"cannot write {given}: permission denied (the file is read-only; make it writable with "
                          "`chmod u+w` or choose another path)")
    return given


def _os_error(path: Path, exc: OSError) -> OutputError:
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = path.parent if not path.exists() else path
        return OutputError(f"cannot write {path}: {why} ({where} is not writable)")
    if exc.errno == errno.ENOENT:
        return OutputError(f"cannot write {path}: its folder {path.parent} does not exist and cannot be made")
    if exc.errno == errno.ENOTDIR:
        return OutputError(f"cannot write {path}: a part of the folder path is a file, not a folder")
    return OutputError(f"cannot write {path}: {why}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` into a temporary file in ``path``'s folder, then rename it over ``path`` (see the module
    docstring for what that guarantees). Returns ``path``. Raises :class:`OutputError` when the file cannot be
    written; errors raised by ``write`` itself propagate (the temporary file is removed either way)."""
    given = Path(path)
    path = resolve_output_path(given)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(given, exc) from None
    remove_stale_temporaries(path.parent, path.name)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    except OSError as exc:
        raise _os_error(given, exc) from None
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except OSError as exc:
            raise _os_error(given, exc) from None
        write(tmp)
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            raise _os_error(given, exc) from None
    except OSError as exc:  # raised by ``write`` (e.g. the disk filled up)
        raise _os_error(given, exc) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return given


def atomic_write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    return atomic_write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n", path)


def json_ready(obj: Any) -> Any:
    """``obj`` with every value in a type JSON has: numbers stay numbers (numpy/torch scalars → int/float, a
    number never becomes a string), NaN/±inf/None/pandas' NA → ``null``, arrays/tuples → lists, paths → strings,
    mapping keys → strings. What every ``--json`` printout and ``.jsonl`` table of the CLI goes through."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (int, float)):  # numpy arrays and scalars, torch tensors
        return json_ready(obj.tolist())
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    try:
        import pandas as pd

        if obj is pd.NA or obj is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_ready` ``(obj)``; strict JSON (``allow_nan=False``: no ``NaN`` tokens)."""
    return json.dumps(json_ready(obj), allow_nan=False, **kwargs)


def _json_default(o: Any):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_safetensors_atomic(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    return atomic_write(path, lambda tmp: save_file(dict(tensors), str(tmp), metadata=dict(metadata) if metadata else None))


def read_json(path: str | Path, error: type[Exception] = CheckpointError, missing: str | None = None) -> Any:
    """The JSON document at ``path``; ``error`` (naming the file) when it is missing or invalid."""
    path = Path(path)
    if not path.exists():
        raise error(missing or f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON: {exc}") from None


def load_safetensors(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from None


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """For training state (optimizer moments, counters, RNG states): tensors and plain containers only, read
    back with ``torch.load(weights_only=True)``."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_training_state(path: str | Path) -> Any:
    """A training state written by :func:`atomic_torch_save`, read with ``weights_only=True`` (never code)."""
    from emoembed.integrity import safe_torch_load

    return safe_torch_load(path, "training state")
