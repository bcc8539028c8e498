"""``emoembed list formats | recipes | datasets | encoders | pretrained``: what exists, one line each (like timm's
``list_models``)."""
from __future__ import annotations

import argparse
import json

from emoembed.cli.common import print_table, short, verb

WHAT = ("formats", "recipes", "datasets", "encoders", "pretrained")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=WHAT, help="formats: label formats; recipes: bundled codec and encoder recipes; "
                   "datasets: dataset and pair cards; encoders: content encoders, objectives and packaged weights; "
                   "pretrained: models shipped with the package (emoembed/NAME)")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a table")


def list_rows(what: str) -> tuple[list[dict], list[str]]:
    """The rows and columns of ``emoembed list WHAT``."""
    if what == "formats":
        from emoembed.formats import default_registry

        reg = default_registry()
        rows = [{"name": f.name, "kind": f.kind, "variables": f.size, "metric": f.metric,
                 "range": f"[{f.range[0]:g}, {f.range[1]:g}]" if f.kind == "regression" else "",
                 "detail": short(", ".join(f.variables), 70)} for f in (reg.get(n) for n in reg.names())]
        return rows, ["name", "kind", "variables", "metric", "range", "detail"]
    if what == "recipes":
        from emoembed.recipes import recipe_files

        return ([{"name": name, "kind": kind, "file": str(path)} for kind, name, path in recipe_files()],
                ["name", "kind", "file"])
    if what == "datasets":
        from emoembed.data.registry import default_data_registry

        reg = default_data_registry()
        rows = []
        for name, card in reg.cards.items():
            fmts = " × ".join(card.format_names) if card.type == "pair" else ",".join(card.format_names)
            rows.append({"name": name, "type": card.type, "formats": fmts or "-",
                         "present": "present" if reg.is_present(name) else "missing", "title": short(card.title or "", 60)})
        return rows, ["name", "type", "formats", "present", "title"]
    if what == "pretrained":
        from emoembed.model_zoo import list_rows as pretrained_rows

        return pretrained_rows(), ["name", "modality", "formats", "data", "licences", "size", "test"]
    from emoembed.encoders.base import known_encoders, known_objectives
    from emoembed.packaged import PACKAGED

    rows = [{"name": m, "kind": "encoder", "detail": f"fit-encoder --modality {m}"} for m in known_encoders()]
    rows += [{"name": o, "kind": "objective", "detail": "recipe key objective: {name: " + o + "}"} for o in known_objectives()]
    rows += [{"name": f"packaged:{n}", "kind": f"{w.modality} weights", "detail": f"pip package {w.package}: {w.description}"}
             for n, w in PACKAGED.items()]
    return rows, ["name", "kind", "detail"]


def _list_run(args: argparse.Namespace) -> int:
    rows, cols = list_rows(args.what)
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
    else:
        if args.what == "pretrained":  # whole lists in --json; one screen line per model here
            rows = [{k: short(str(v), 48) for k, v in r.items()} for r in rows]
        print_table(rows, cols)
    return 0


verb("list", "what exists, one line each: formats | recipes | datasets | encoders | pretrained")((_list_args, _list_run))
