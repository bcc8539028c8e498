"""Extend a trained codec with new label formats without retraining anything else (``map --extend``).

The old formats' label encoders and heads are frozen (no gradients, eval mode); only the new formats' label
encoders and heads are trained, on paired datasets that join each new format to the known space. The usual
codec objective applies: mapping into and out of the frozen formats, embedding agreement with their frozen
label encoders, and the soft-sharing tie that pulls a new head row towards the frozen rows of its equivalent
variables. Because the old heads stay bit-identical, every content encoder trained on the old codec can
decode the new formats zero-shot (:meth:`emoembed.model.EmotionModel.with_codec`).
"""
from __future__ import annotations

from collections.abc import Sequence

from emoembed.codec import EmotionCodec
from emoembed.data.dataset import PairedDataset
from emoembed.errors import ConfigError
from emoembed.formats import EquivalenceClasses, FormatRegistry


def new_formats(base: EmotionCodec, pairs: Sequence[PairedDataset]) -> list[str]:
    """Formats of ``pairs`` the base codec lacks, in order of appearance; errors when there is nothing to learn
    or a pair cannot teach anything."""
    out: list[str] = []
    for p in pairs:
        names = (p.format_a.name, p.format_b.name)
        if all(n in base.formats for n in names):
            raise ConfigError(f"pair {p.name!r} joins {names[0]} and {names[1]}, which the base codec already knows; "
                              "--extend trains only new formats, so this pair would teach nothing")
        out += [n for n in names if n not in base.formats and n not in out]
    return out


def anchors(base: EmotionCodec, pairs: Sequence[PairedDataset], added: Sequence[str],
            equivalences: EquivalenceClasses) -> dict[str, str]:
    """How each new format is tied to the frozen space: ``"pair"`` (paired, directly or through other new formats,
    with a known format) or ``"tie"`` (only through equivalent head rows). Unanchored formats are an error: their
    embeddings would live in a space of their own."""
    how: dict[str, str] = {}
    links = [{p.format_a.name, p.format_b.name} for p in pairs]

    def spread(kind: str, seeds: list[str]) -> None:  # through pairs among the new formats
        for n in seeds:
            how.setdefault(n, kind)
        frontier = list(seeds)
        while frontier:
            cur = frontier.pop()
            for names in links:
                for other in names - {cur} if cur in names else ():
                    if other in added and other not in how:
                        how[other] = kind
                        frontier.append(other)

    spread("pair", [n for n in added if any(n in names and names - {n} <= set(base.formats) for names in links)])
    tied = []
    for (fa, _), (fb, _), _cls in equivalences.tied_pairs(list(base.formats) + list(added)):
        for new, old in ((fa, fb), (fb, fa)):
            if new in added and new not in how and new not in tied and old in base.formats:
                tied.append(new)
    spread("tie", tied)
    lost = [n for n in added if n not in how]
    if lost:
        raise ConfigError(f"new format(s) {', '.join(lost)} are joined to no format of the base codec (known: "
                          f"{', '.join(base.formats)}) by a pair or an equivalent variable; add a pair card that does")
    return how


def extended_codec(base: EmotionCodec, added: Sequence[str], registry: FormatRegistry) -> EmotionCodec:
    """A codec with the base's formats (their saved definitions, weights copied and frozen) plus ``added``
    (definitions from the registry, freshly initialised). Ties follow the registry's equivalence classes."""
    formats = dict(base.formats)
    for name in added:
        formats[name] = registry.get(name, "--extend")
    codec = EmotionCodec(formats, base.dim, base.hidden, base.dropout, registry.equivalences,
                         list(base.domains), base.domain_dim)
    own = codec.state_dict()
    own.update(base.state_dict())
    codec.load_state_dict(own, strict=True)
    codec.freeze_formats(base.formats)
    codec.freeze_domains(base.domains)
    return codec


def check_frozen(base_fingerprints: dict[str, str], codec: EmotionCodec, base_domains: dict[str, str] | None = None) -> None:
    """Raise if any old format's weights or old domain vector moved (they must not: content encoders and
    conversions depend on them)."""
    moved = codec.changed_formats(base_fingerprints)
    now = codec.domain_fingerprints()
    moved += [f"domain {d}" for d, fp in (base_domains or {}).items() if now.get(d) != fp]
    if moved:
        raise RuntimeError(f"frozen formats changed during --extend: {moved}")
