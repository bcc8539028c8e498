"""How many CPU threads torch uses. torch's default (one intra-op thread per core) oversubscribes a machine
that runs several processes at once, and small models gain nothing from a second thread: on a busy 2-core
machine ``map`` took 416 s with the default and 28 s with one thread, the word encoder 299 s and 30 s.

The count, first that applies:

1. ``--threads N`` (or :func:`configure_threads` ``(N)``);
2. ``EMOEMBED_THREADS``, then ``OMP_NUM_THREADS`` from the environment (torch already follows the latter);
3. one thread for *light* work (``map``, word encoders: MLPs of a few hundred units, where threading costs
   more than it saves);
4. otherwise the physical cores this process may use, divided by the processes per node under ``torchrun``
   (``LOCAL_WORLD_SIZE``), at least 1.
"""
from __future__ import annotations

import argparse
import os

THREADS_ENV = "EMOEMBED_THREADS"


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads not counted; CPU affinity respected)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = _physical_from_proc()
    total_logical = os.cpu_count() or logical
    if physical and total_logical:
        per_core = max(1, total_logical // physical)  # logical CPUs per physical core
        return max(1, logical // per_core)
    return max(1, logical)


def _physical_from_proc() -> int | None:
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return None
    cores, phys = set(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            cores.add((phys, value.strip()))
    return len(cores) or None


def _env_threads() -> int | None:
    """``EMOEMBED_THREADS`` (ConfigError naming it when it is not a positive integer), else a valid
    ``OMP_NUM_THREADS`` (torch and OpenMP judge that one themselves), else None."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            from emoembed.errors import ConfigError

            raise ConfigError(f"{THREADS_ENV}={value!r}: must be a positive integer (a thread count, e.g. "
                              f"{THREADS_ENV}=1), or unset it")
        return n
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def default_threads(light: bool = False) -> int:
    """The thread count rules 2–4 of the module docstring give."""
    env = _env_threads()
    if env is not None:
        return env
    if light:
        return 1
    procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, physical_cores() // procs)


def configure_threads(requested: int | None = None, light: bool = False) -> int:
    """Set torch's intra-op thread count (``requested``, else :func:`default_threads`); returns it."""
    import torch

    n = int(requested) if requested is not None else default_threads(light)
    if n < 1:
        from emoembed.errors import ConfigError

        raise ConfigError(f"--threads must be a positive integer, got {requested}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n > cpus:
        import warnings

        from emoembed.errors import EmoembedWarning

        where = "--threads" if requested is not None else f"{THREADS_ENV}/OMP_NUM_THREADS"
        warnings.warn(f"{where} {n} is more than the {cpus} CPUs this process may use; extra threads only "
                      "compete for them (slower, not faster)", EmoembedWarning, stacklevel=2)
    torch.set_num_threads(n)
    if n == 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # can only be set before the first parallel region; harmless to leave
            pass
    return n


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: 1 for map and word encoders; otherwise "
                             "$EMOEMBED_THREADS or $OMP_NUM_THREADS, else the physical cores / processes per node)")


def threads_for(args: argparse.Namespace) -> int | None:
    """Configure threads for a parsed command line that has ``--threads`` (None: the verb has no such option)."""
    if not hasattr(args, "threads"):
        return None
    light = args.verb == "map" or getattr(args, "modality", None) == "word"
    return configure_threads(args.threads, light=light)
