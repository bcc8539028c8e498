"""``emoembed data list | info NAME | check``: the dataset registry."""
from __future__ import annotations

import argparse
import json

from emoembed.cli.common import print_table, short, verb


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
                         "licence": short(card.licence or "", 34), "bundle": card.bundle if card.type != "pair" else ""})
        if args.json:  # counts as JSON numbers (null: not counted), never as the table's text
            print(json.dumps([{**r, "items": int(r["items"]) if str(r["items"]).isdigit() else None} for r in rows],
                             indent=1))
        else:
            print_table(rows, ["name", "type", "modality", "language", "formats", "items", "present", "bundle", "licence"])
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
        rows.append({"name": name, "status": res.status, "detail": short(res.detail, 110)})
    print_table(rows, ["name", "status", "detail"])
    ok = sum(r["status"] == "ok" for r in rows)
    missing = sum(r["status"] == "missing" for r in rows)
    print(f"\n{ok} ok, {missing} missing, {bad} failed")
    return 1 if bad else 0


verb("data", "the dataset registry: list | info NAME | check")((_data_args, _data_run))
