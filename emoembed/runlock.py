"""One run per run folder: ``map``, ``fit-encoder`` and ``evaluate --suite`` hold an exclusive lock on their
``--out`` folder while they write it, so two runs into the same folder cannot leave a mix of both (the recipe
of one, the weights of the other). The second run stops at once with :class:`~emoembed.errors.OutputError`
naming the folder and the process that holds it.

The lock is a file ``.emoembed.lock`` in the folder holding the holder's PID, host, verb and start time, locked
with ``fcntl.flock`` (POSIX). The operating system releases a ``flock`` when its process dies, so a lock left
by a killed run is *stale*: the next run takes it over (and says so). Where ``fcntl`` does not exist the file
is created exclusively and a file whose PID no longer runs on this host counts as stale. The file is removed
when the run ends.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from emoembed.errors import OutputError
from emoembed.io import pid_alive, remove_stale_temporaries

LOCK_NAME = ".emoembed.lock"


def _holder_text(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict):
        return "another process"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"`emoembed {info.get('verb', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, started {when})"


def _busy(folder: Path, lock: Path) -> OutputError:
    return OutputError(f"run folder {folder} is in use by {_holder_text(lock)}; wait for that run to finish or "
                       "choose another --out")


def _record(verb: str) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "verb": verb, "started": time.time()})


@contextlib.contextmanager
def run_folder_lock(folder: str | Path, verb: str = "run", log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the run folder ``folder`` (created if needed) for the duration of the ``with`` block.

    Raises :class:`OutputError` when another live run holds it or the folder cannot be created. Under
    ``torchrun`` only rank 0 locks (the other ranks write nothing). On exit the lock file is removed and the
    temporary files of killed writes in the folder are cleaned up; a folder this call created is removed again
    when the run fails and left it empty (no half-made run folders)."""
    folder = Path(folder)
    if int(os.environ.get("RANK", "0")) != 0:
        yield folder
        return
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder}: is a file, not a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create run folder {folder}: {exc.strerror or exc}") from None
    with _removed_if_failed_empty(folder, created):
        yield from _locked(folder, verb, log)


@contextlib.contextmanager
def _removed_if_failed_empty(folder: Path, created: bool) -> Iterator[None]:
    try:
        yield
    except BaseException:
        if created:
            try:
                folder.rmdir()  # only succeeds when the failed run left nothing in it
            except OSError:
                pass
        raise


def _locked(folder: Path, verb: str, log: Callable[[str], None] | None) -> Iterator[Path]:
    lock = folder / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None:  # pragma: no cover - Windows
        with _exclusive_file_lock(folder, lock, verb, log):
            yield folder
        remove_stale_temporaries(folder, recursive=True)
        return
    fh = None
    for _attempt in range(5):
        try:
            fh = open(lock, "a+", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot lock run folder {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise _busy(folder, lock) from None
        try:  # the holder before us may have removed the file between our open and our flock
            same = os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
        fh = None
    if fh is None:
        raise _busy(folder, lock)
    try:
        fh.seek(0)
        previous = fh.read().strip()
        if previous and log is not None:
            log(f"taking over a stale lock in {folder} (left by a run that was killed: {_holder_text(lock)})")
        fh.seek(0)
        fh.truncate()
        fh.write(_record(verb))
        fh.flush()
        remove_stale_temporaries(folder)
        yield folder
    finally:
        try:
            lock.unlink(missing_ok=True)
        except OSError:
            pass
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        remove_stale_temporaries(folder, recursive=True)


@contextlib.contextmanager
def _exclusive_file_lock(folder: Path, lock: Path, verb: str,
                         log: Callable[[str], None] | None) -> Iterator[None]:  # pragma: no cover - Windows
    for _attempt in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            try:
                info = json.loads(lock.read_text(encoding="utf-8"))
                stale = info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid", -1)))
            except (OSError, ValueError, TypeError):
                stale = False
            if not stale:
                raise _busy(folder, lock) from None
            if log is not None:
                log(f"taking over a stale lock in {folder} ({_holder_text(lock)} no longer runs)")
            lock.unlink(missing_ok=True)
    else:
        raise _busy(folder, lock)
    try:
        os.write(fd, _record(verb).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)
