"""The module structure (issue 12): inference, retrieval and plotting load no training or CLI module; library
modules import nothing from the CLI; there is no import cycle among emoembed's modules; every package is in the
wheel; ``from emoembed import EmotionModel, EmotionCodec, EmotionIndex`` works while ``import emoembed`` stays light."""
from __future__ import annotations

import ast
import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "emoembed"


def loaded_after(statement: str) -> set[str]:
    """The emoembed.* (and a few heavy third-party) modules in sys.modules after ``statement`` in a fresh process."""
    code = (f"import sys, json; {statement}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('emoembed', 'torch', 'pandas', 'transformers', 'timm')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


INFERENCE_SIDE = ["emoembed.model", "emoembed.codec", "emoembed.inference", "emoembed.retrieval", "emoembed.plotting",
                  "emoembed.format_kinds", "emoembed.tasks", "emoembed.formats", "emoembed.recipes", "emoembed.packaged"]


def test_inference_and_library_modules_load_no_training_or_cli():
    loaded = loaded_after("import " + ", ".join(INFERENCE_SIDE))
    assert set(INFERENCE_SIDE) <= loaded
    assert not {m for m in loaded if m.startswith(("emoembed.training", "emoembed.cli"))}, loaded


@pytest.mark.parametrize("module", INFERENCE_SIDE)
def test_what_a_library_module_can_ever_import_excludes_training_and_cli(module):
    """The transitive closure over every import statement (function bodies included), so lazy imports count too."""
    graph = import_graph()
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    assert not {m for m in seen if m.startswith(("emoembed.training", "emoembed.cli"))}, sorted(seen)


def test_import_emoembed_is_light_and_exports_the_three_classes():
    loaded = loaded_after("import emoembed")
    assert {m for m in loaded if m.startswith("emoembed")} == {"emoembed", "emoembed._torchvision_fix", "emoembed.errors"}
    assert not {m for m in loaded if m.startswith(("torch", "pandas", "transformers", "timm"))}, loaded
    loaded = loaded_after("from emoembed import EmotionModel, EmotionCodec, EmotionIndex; "
                          "assert EmotionModel.model_type == 'emotion-model' and EmotionCodec.model_type == 'emotion-codec'; "
                          "assert EmotionIndex.__module__ == 'emoembed.retrieval'")
    assert {"emoembed.model", "emoembed.codec", "emoembed.retrieval"} <= loaded
    assert not {m for m in loaded if m.startswith(("emoembed.training", "emoembed.cli"))}


def test_cli_package_imports_verb_modules_only_when_run():
    loaded = loaded_after("import emoembed.cli")
    assert {m for m in loaded if m.startswith("emoembed.cli")} == {"emoembed.cli", "emoembed.cli.common"}
    assert not {m for m in loaded if m.startswith(("pandas", "transformers", "timm"))}, loaded


def test_torchvision_gets_the_cpu_shim_whoever_imports_it_first():
    """``import emoembed`` no longer runs the shim (it imported torch, ~6 s); its import hook must still run it
    before torchvision is imported — directly, or through timm/transformers."""
    loaded = loaded_after("import emoembed, torchvision, emoembed._torchvision_fix as f; "
                          "assert f.state['patched'] or f.state['extension_loaded'], f.state")
    assert "torch" in loaded


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """emoembed modules imported anywhere in ``path`` (function bodies too), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("emoembed")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emoembed") and node.level == 0:
            for a in node.names:  # `from emoembed.cli import train` imports the submodule emoembed.cli.train
                sub = f"{node.module}.{a.name}"
                out.add(sub if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                        or (PACKAGE.parent / Path(*sub.split("."))).is_dir() else node.module)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the emoembed modules it imports. Package ``__init__`` facades (the lazy exports of ``emoembed``)
    are left out: importing any submodule runs them first anyway."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        if path.name == "__init__.py" and name != "emoembed.cli":
            continue
        graph[name] = {m for m in _imports(path) if m in modules and m != name and not
                       (modules[m].name == "__init__.py" and m != "emoembed.cli")}
    return graph


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_library_modules_import_nothing_from_the_cli():
    for module, deps in import_graph().items():
        if not module.startswith("emoembed.cli"):
            assert not {d for d in deps if d.startswith("emoembed.cli")}, (module, deps)


def test_every_package_is_listed_for_the_wheel():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
    on_disk = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed, f"packages missing from setup.cfg: {sorted(on_disk - listed)}"
    mapped = {line.split("=")[0].strip(): line.split("=")[1].strip()
              for line in cfg["options"]["package_dir"].strip().splitlines()}
    for package, folder in mapped.items():
        assert package in listed and (REPO / folder).is_dir(), (package, folder)
    assert "pydantic" in cfg["options"]["install_requires"]


def test_predict_verb_runs_without_training_modules(tmp_path):
    """`emoembed predict` on a saved model (the pre-change fixture) loads only the inference side."""
    fixture = REPO / "tests" / "fixtures" / "prechange"
    code = ("import sys, json; from emoembed.cli import main; "
            f"rc = main(['predict', '--model', {str(fixture / 'word-model')!r}, '--format', 'be5', 'happy', 'sad']); "
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.startswith('emoembed.training'))]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=fixture, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "EMOEMBED_CACHE": str(tmp_path / "cache"),
                              "OMP_NUM_THREADS": "1"})
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "word,joy,anger,sadness,fear,disgust,coverage" and len(lines) == 4, out.stdout
    assert json.loads(lines[-1]) == [0, []]


def test_list_encoders_imports_no_torch():
    """`emoembed list encoders` lists the encoders and objectives from emoembed.encoders.names (~1 s) instead of
    importing their classes (torch + transformers + timm: ~8 s)."""
    loaded = loaded_after("import json, io, contextlib; from emoembed.cli import main; buf = io.StringIO(); "
                          "ctx = contextlib.redirect_stdout(buf); ctx.__enter__(); rc = main(['list', 'encoders', '--json']); "
                          "ctx.__exit__(None, None, None); rows = json.loads(buf.getvalue()); assert rc == 0; "
                          "assert {r['name'] for r in rows} >= {'word', 'text', 'image', 'carl', 'packaged:all-MiniLM-L6-v2'}")
    assert "emoembed.encoders.names" in loaded and "emoembed.encoders.base" not in loaded
    assert not {m for m in loaded if m.startswith(("torch", "transformers", "timm"))}, loaded


def test_the_encoder_registry_takes_its_names_from_the_torch_free_table():
    from emoembed.encoders import base, names

    assert base._LAZY_ENCODERS == {n: m for n, (m, _) in names.ENCODERS.items()}
    assert base._LAZY_OBJECTIVES == {n: m for n, (m, _) in names.OBJECTIVES.items()}
    assert set(base.known_encoders()) >= set(names.ENCODERS) == {"word", "text", "image"}
    assert base.encoder_class("word").modality == "word"  # the table's module registers the name it is listed under
    import emoembed.encoders as pkg

    assert pkg.ContentEncoder is base.ContentEncoder  # the package's names still resolve (lazily)
