"""Load a benchmark script (benchmarks/NAME.py) as a module for tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def load_benchmark(name: str, module_name: str) -> ModuleType:
    """benchmarks/``name``.py imported under ``module_name`` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
