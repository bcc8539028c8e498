"""``emoembed list formats | recipes | datasets | encoders | pretrained``: what exists, one line each (like timm's
``list_models``)."""
from __future__ import annotations

import argparse
import json

from emoembed.cli.common import print_records, print_table, short, verb

WHAT = ("formats", "recipes", "datasets", "encoders", "pretrained")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=WHAT, help="formats: label formats; recipes: bundled codec and encoder recipes; "
                   "datasets: dataset and pair cards; encoders: content encoders, objectives and packaged weights; "
                   "pretrained: models shipped with the package (emoembed/NAME)")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    p.add_argument("--wide", action="store_true", help="pretrained: one table row per model with every cell whole "
                   "(wider than a terminal; e.g. for `less -S`); the default is one block per model, wrapped to the "
                   "terminal's width (COLUMNS)")


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
        from emoembed.model_zoo import LIST_COLUMNS, list_rows as pretrained_rows

        return pretrained_rows(), list(LIST_COLUMNS)
    import sys

    from emoembed.encoders import names
    from emoembed.packaged import PACKAGED

    # the built-in names without importing the encoders (torch, transformers, timm: seconds); plug-ins registered
    # in this process (only possible once emoembed.encoders.base is loaded) are listed too
    base = sys.modules.get("emoembed.encoders.base")
    encoders = {m: d for m, (_, d) in names.ENCODERS.items()} | {m: "plug-in" for m in getattr(base, "ENCODERS", {})
                                                                 if m not in names.ENCODERS}
    objectives = {o: d for o, (_, d) in names.OBJECTIVES.items()} | {o: "plug-in" for o in getattr(base, "OBJECTIVES", {})
                                                                     if o not in names.OBJECTIVES}
    rows = [{"name": m, "kind": "encoder", "detail": f"--modality {m}: {d}"} for m, d in sorted(encoders.items())]
    rows += [{"name": o, "kind": "objective", "detail": f"objective: {{name: {o}}}: {d}"} for o, d in sorted(objectives.items())]
    rows += [{"name": f"packaged:{n}", "kind": f"{w.modality} weights", "detail": f"pip package {w.package}: {w.description}"}
             for n, w in PACKAGED.items()]
    return rows, ["name", "kind", "detail"]


def _list_run(args: argparse.Namespace) -> int:
    rows, cols = list_rows(args.what)
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
    elif args.what == "pretrained" and not args.wide:
        print_records(pretrained_records(rows))
    else:
        print_table(rows, cols)
    return 0


def pretrained_records(rows: list[dict]) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """``list pretrained``'s rows as blocks for :func:`print_records`: the name with modality and size, then the
    formats, training data, licences and each test score on a line of its own."""
    from emoembed.model_zoo import PREFIX, card, score_parts

    out = []
    for r in rows:
        name = r["name"][len(PREFIX):]
        title = f"{r['name']}  ({r['modality']}, {r['size']})"
        if r["size"] == "not built":
            out.append((title, [("build", [f"emoembed pretrained build {name}  (see its entry in pretrained/models.yaml)"])]))
            continue
        fields = [("formats", [r["formats"].replace(",", ", ")]), ("data", [r["data"].replace(",", ", ")])]
        if r["codec"]:  # a content model: its own data, its codec-made formats, and the codec it sits on
            fields += [("augment", [r["augment"].replace(",", ", ") or "none"]),
                       ("codec", [f"{r['codec']} (frozen; its own training data are listed under its name)"])]
        out.append((title, fields + [("licences", [r["licences"]]), ("test", score_parts(card(name).get("scores", {})))]))
    return out


verb("list", "what exists, one line each: formats | recipes | datasets | encoders | pretrained")((_list_args, _list_run))
