"""The ``emoembed`` command. Each verb is a function registered in :data:`VERBS`; errors from bad input are
printed as one line (no traceback) and exit with status 2."""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable

from emoembed.errors import EmoembedError

VERBS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def verb(name: str, help: str):
    def deco(pair):
        add_args, run = pair
        VERBS[name] = (add_args, run, help)
        return pair

    return deco


# ---------------------------------------------------------------------------------------------- data
def _data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_cmd", required=True)
    ls = sub.add_parser("list", help="table of every dataset card: modality, language, formats, items, presence, licence")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--no-count", action="store_true", help="do not load datasets to count items")
    info = sub.add_parser("info", help="everything a card says, plus item and split counts if present")
    info.add_argument("name")
    chk = sub.add_parser("check", help="verify checksum and schema of every present dataset; exit 1 on a mismatch")
    chk.add_argument("names", nargs="*")


def _data_run(args: argparse.Namespace) -> int:
    from emoembed.data.registry import default_data_registry

    reg = default_data_registry()
    if args.data_cmd == "list":
        rows = []
        for name, card in reg.cards.items():
            present = reg.is_present(name)
            items = ""
            if present and not args.no_count and card.type != "resource":
                items = str(len(reg.pair(name)) if card.type == "pair" else len(reg.dataset(name)))
            fmts = " × ".join(card.format_names) if card.type == "pair" else ",".join(card.format_names)
            modality = reg.get(card.left["card"]).modality if card.type == "pair" else (card.modality or "-")
            language = reg.get(card.left["card"]).language if card.type == "pair" else card.language
            rows.append({"name": name, "type": card.type, "modality": modality or "-", "language": language or "-",
                         "formats": fmts or "-", "items": items, "present": "present" if present else "missing",
                         "licence": _short(card.licence or "", 34), "bundle": card.bundle if card.type != "pair" else ""})
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            _print_table(rows, ["name", "type", "modality", "language", "formats", "items", "present", "bundle", "licence"])
            print(f"\n{sum(r['present'] == 'present' for r in rows)} of {len(rows)} cards present; data roots: "
                  + ", ".join(str(r) for r in reg.roots))
        return 0
    if args.data_cmd == "info":
        card = reg.get(args.name)
        print(f"{card.name}  ({card.type})  {card.title}")
        print(f"card: {card.source}")
        for key in ("modality", "language", "dir", "licence", "citation", "obtain", "bundle", "notes"):
            if getattr(card, key, None):
                print(f"{key}: {getattr(card, key)}")
        if card.type == "pair":
            print(f"left: {card.left}\nright: {card.right}\nsplits: {card.splits}")
        else:
            for spec in card.files.values():
                loc = reg.locate(card, spec)
                print(f"file {spec.key}: {spec.path}  sha256={spec.sha256 or '-'}  -> {loc or 'MISSING'}")
            if card.type == "dataset":
                for f in card.formats:
                    fmt = reg.formats[f]
                    print(f"format {f}: {fmt.kind} {list(fmt.variables)}" + (f" range {list(fmt.range)}" if fmt.kind == "regression" else ""))
        if card.type != "resource" and reg.is_present(card.name):
            ds = reg.pair(card.name) if card.type == "pair" else reg.dataset(card.name)
            print(f"items: {len(ds)}  splits: {ds.split_sizes()}")
            if card.type == "dataset":
                print(f"report: {ds.report}")
        elif card.type != "resource":
            print("status: missing — " + reg._missing_message(card, next(iter(card.files.values()))) if card.type != "pair"
                  else "status: missing (a side is missing)")
        return 0
    # check
    names = args.names or list(reg.cards)
    bad = 0
    rows = []
    for name in names:
        res = reg.check(name)
        bad += res.status in ("mismatch", "error")
        rows.append({"name": name, "status": res.status, "detail": _short(res.detail, 110)})
    _print_table(rows, ["name", "status", "detail"])
    ok = sum(r["status"] == "ok" for r in rows)
    missing = sum(r["status"] == "missing" for r in rows)
    print(f"\n{ok} ok, {missing} missing, {bad} failed")
    return 1 if bad else 0


verb("data", "the dataset registry: list | info NAME | check")((_data_args, _data_run))


# ---------------------------------------------------------------------------------------------- helpers
def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _print_table(rows: list[dict], cols: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def build_parser() -> argparse.ArgumentParser:
    from emoembed import __version__

    parser = argparse.ArgumentParser(prog="emoembed", description="Emotion embeddings: one vector space for every emotion label format.")
    parser.add_argument("--version", action="version", version=f"emoembed {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (add_args, _run, help_text) in VERBS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


VERB_MODULES = ("emoembed.commands", "emoembed.plotting", "emoembed.retrieval")
NUMBER_LIST_OPTIONS = ("--values", "--input-scale", "--output-scale", "--scale")


def _attach_negative_lists(argv: list[str]) -> list[str]:
    """``--values -0.8,0.5`` → ``--values=-0.8,0.5``: argparse would read a value starting with '-' as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in NUMBER_LIST_OPTIONS and i + 1 < len(argv) and re.match(r"-\.?\d", argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    _register_model_verbs()
    args = build_parser().parse_args(_attach_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    try:
        return VERBS[args.verb][1](args)
    except EmoembedError as exc:
        print(f"emoembed {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _register_model_verbs() -> None:
    """Verbs whose modules import torch register themselves on import."""
    import importlib

    for module in VERB_MODULES:
        importlib.import_module(module)


if __name__ == "__main__":
    sys.exit(main())
