"""Unknown content is reported, never silently scored.

Before a content model predicts, :func:`check_content` measures per item the share of it the encoder knows
(``coverage``: word models — the item has a word vector after normalisation (see :mod:`emoembed.lexical`), or the
share of its words that do; word models on word-piece vectors (MiniLM), which give any string a vector — the item is
in the known-word lexicon, GloVe 6B's 400k words, after the same normalisation; text models — the share of word pieces that are not the unknown token; image models
have no notion of it) and

* warns (:class:`UnknownContentWarning`) with the count and examples of unknown and partly known items (text
  models: the pieces of the text their tokenizer maps to its unknown token, e.g. ``'𝄞' in 'I 𝄞 it'``);
* warns when a text model that reads emoji as given (one saved before emoji were read as their names, see
  :mod:`emoembed.encoders.text`) gets emoji: its tokenizer sees them as the unknown token;
* warns when a word model is given several words (``not happy``): it averages their vectors and cannot read
  negation or context, so a text model is the right tool;
* applies the policy ``oov``: ``vector`` (default: unknown items are scored with the encoder's unknown-word
  vector, and reported), ``nan`` (their outputs are left empty) or ``error`` (refuse, listing them).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from emoembed.errors import DataError, EmoembedWarning
from emoembed.lexical import emoji_description, is_multiword

OOV_MODES = ("vector", "nan", "error")
SHIPPED_TEXT_MODEL = "emoembed/text-minilm"  # the packaged text model the multi-word warning points to
# warnings point at the user's call: check_content ← EmotionModel._predict ← predict ← torch.no_grad's wrapper ← caller
_CALLER = 5


class UnknownContentWarning(EmoembedWarning):
    """Some input items are unknown to the encoder, or are the wrong kind for it (phrases for a word model)."""


def _examples(items: Sequence[str], mask: np.ndarray, n: int = 5) -> str:
    shown = [repr(str(w)) for w, m in zip(items, mask) if m][:n]
    more = int(mask.sum()) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def item_coverage(encoder, items: Sequence[str]) -> np.ndarray | None:
    """Per item the share the encoder knows (1 = all, 0 = nothing), or None for encoders without the notion."""
    fn = getattr(encoder, "coverage", None)
    return None if fn is None else np.asarray(fn(items), dtype=np.float64)


def check_content(encoder, items: Sequence[str], oov: str = "vector") -> np.ndarray | None:
    """Warn about unknown and multi-word items and apply ``oov`` (see the module docstring); returns the
    coverage per item (None when the encoder has none). Raises :class:`DataError` under ``oov="error"``."""
    if oov not in OOV_MODES:
        raise DataError(f"oov must be one of {list(OOV_MODES)}, got {oov!r}")
    modality = getattr(encoder, "modality", "")
    if modality == "word":
        multi = np.array([is_multiword(w) for w in items], dtype=bool)
        if multi.any():
            how = ("reads a phrase as if it were one word, which it was never trained or tested on"
                   if getattr(encoder, "reads_phrases", False) else "averages their words' vectors")
            warnings.warn(f"{int(multi.sum())} of {len(items)} items are several words ({_examples(items, multi)}): a word "
                          f"model is trained on single words and {how}, so negation ('not happy') and context are not "
                          "read reliably; for phrases and sentences use a text model: the packaged one (predict --model "
                          f"{SHIPPED_TEXT_MODEL}), or your own (emoembed fit-encoder --modality text, see docs/text.md)", UnknownContentWarning, stacklevel=_CALLER)
    cov = item_coverage(encoder, items)
    if cov is None:
        return None
    if modality == "text":
        return _check_text(encoder, items, cov, oov)
    unknown = cov <= 0.0
    partial = (cov > 0.0) & (cov < 1.0)
    what = "words" if modality == "word" else "items"
    pieces = modality == "word" and getattr(encoder, "reads_phrases", False)  # word-piece vectors: a lexicon decides
    if unknown.any():
        listed = _examples(items, unknown, 10 if oov == "error" else 5)
        why = ("none of their forms is in the known-word lexicon, GloVe 6B's 400k words" if pieces
               else "none of their forms has a vector")
        scored = ("scores them from their word pieces" if pieces else "scores them with the learned unknown-word vector")
        if oov == "error":
            raise DataError(f"{int(unknown.sum())} of {len(items)} {what} are unknown to the {modality} encoder "
                            f"({why}): {listed}; --oov vector {scored}, --oov nan leaves their outputs empty")
        fate = ("their outputs are left empty (--oov nan)" if oov == "nan" else
                ("they are still scored from their word pieces, which say little about a word no lexicon knows" if pieces
                 else "they are scored with the learned unknown-word vector, which says nothing about them")
                + " (--oov nan leaves them empty, --oov error refuses them)")
        warnings.warn(f"{int(unknown.sum())} of {len(items)} {what} are unknown to the {modality} encoder "
                      f"({listed}); {fate}", UnknownContentWarning, stacklevel=_CALLER)
    if partial.any():
        warnings.warn(f"{int(partial.sum())} of {len(items)} {what} are partly unknown ({_examples(items, partial)}): "
                      "only their known parts are read (see the coverage column)", UnknownContentWarning, stacklevel=_CALLER)
    return cov


def _pieces_examples(items: Sequence[str], pieces: Sequence[Sequence[str]], mask: np.ndarray, n: int = 5) -> str:
    shown = [f"{', '.join(repr(p) for p in dict.fromkeys(pieces[i]))} in {str(items[i])[:60]!r}"
             for i in np.flatnonzero(mask)[:n]]
    more = int(mask.sum()) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _check_text(encoder, items: Sequence[str], cov: np.ndarray, oov: str) -> np.ndarray:
    """Text models: report the texts (and the pieces of them) the tokenizer reads as its unknown token."""
    legacy = getattr(encoder, "emoji", None) == "keep"
    has_emoji = np.array([legacy and emoji_description(str(t)) is not None for t in items], dtype=bool)
    if has_emoji.any():
        warnings.warn(f"{int(has_emoji.sum())} of {len(items)} texts hold emoji ({_examples(items, has_emoji)}), and this "
                      "model reads emoji as given: it was saved before emoji were read as their names (its config.json "
                      "has no encoder.emoji), so its tokenizer maps most of them to the unknown token and they say "
                      "nothing to it; a model trained with this emoembed reads them as words ('😂' → 'face with tears "
                      "of joy'); to have this one do so, set \"emoji\": \"names\" in the encoder section of its "
                      "config.json", UnknownContentWarning, stacklevel=_CALLER + 1)
    unknown = cov <= 0.0
    partial = (cov > 0.0) & (cov < 1.0)
    if not (unknown.any() or partial.any()):
        return cov
    fn = getattr(encoder, "unknown_pieces", None)
    pieces = fn(items) if fn is not None else [[] for _ in items]
    unk = getattr(getattr(encoder, "tokenizer", None), "unk_token", None) or "[UNK]"
    if unknown.any():
        listed = _examples(items, unknown, 10 if oov == "error" else 5)
        head = (f"{int(unknown.sum())} of {len(items)} texts are unknown to the text model: its tokenizer reads every "
                f"piece of them as the unknown token {unk} ({listed})")
        if oov == "error":
            raise DataError(f"{head}; --oov vector scores them from the unknown token alone, --oov nan leaves their "
                            "outputs empty")
        fate = ("their outputs are left empty (--oov nan)" if oov == "nan" else
                "they are scored from the unknown token alone, which says nothing about them (--oov nan leaves them "
                "empty, --oov error refuses them)")
        warnings.warn(f"{head}; {fate}", UnknownContentWarning, stacklevel=_CALLER + 1)
    if partial.any():
        warnings.warn(f"{int(partial.sum())} of {len(items)} texts hold pieces the text model's tokenizer does not know, "
                      f"read as its unknown token {unk}: {_pieces_examples(items, pieces, partial)}; only the known "
                      "pieces carry meaning (see the coverage column)", UnknownContentWarning, stacklevel=_CALLER + 1)
    return cov
