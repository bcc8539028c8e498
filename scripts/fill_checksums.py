"""Maintainer tool: write the sha256 of every located file into the dataset cards that lack one.

    EMOEMBED_DATA=../shared/data python scripts/fill_checksums.py [--force]

Edits the YAML text in place (only the `{path: …}` entries of `files:`), so comments and layout stay.
"""
from __future__ import annotations

import re
import sys
from emoembed.data.registry import DataRegistry, sha256_of


def main() -> int:
    force = "--force" in sys.argv
    reg = DataRegistry.load()
    changed = 0
    for card in reg.cards.values():
        text = card.source.read_text(encoding="utf-8")
        for key, spec in card.files.items():
            if spec.sha256 and not force:
                continue
            path = reg.locate(card, spec)
            if path is None:
                print(f"{card.name}: {spec.path} not found; left without checksum", file=sys.stderr)
                continue
            digest = sha256_of(path)
            pattern = re.compile(rf"^(\s+{re.escape(key)}:\s*\{{path:\s*{re.escape(spec.path)})(,\s*sha256:\s*[0-9a-f]*)?((?:,[^}}]*)?\}})", re.M)
            text, n = pattern.subn(lambda m, d=digest: f"{m.group(1)}, sha256: {d}{m.group(3)}", text)
            if n != 1:
                print(f"{card.source}: could not place the checksum of files.{key}", file=sys.stderr)
            changed += n
        card.source.write_text(text, encoding="utf-8")
    print(f"{changed} checksum(s) written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
