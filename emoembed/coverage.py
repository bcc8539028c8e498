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
  vector, and reported), ``nan`` (their outputs are left empty) or ``error`` (refuse: an
  :class:`UnknownContentError` naming where the first unknown item is — the ``--input`` file and its line, header =
  line 1, or the command-line item — the item, and how many are unknown in total, each listed with its row).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from emoembed.errors import DataError, EmoembedWarning, row_ref
from emoembed.lexical import emoji_description, is_multiword

OOV_MODES = ("vector", "nan", "error")
SHIPPED_TEXT_MODEL = "emoembed/text-minilm"  # the packaged text model the multi-word warning points to
# warnings point at the user's call: check_content ← EmotionModel._predict ← predict ← torch.no_grad's wrapper ← caller
_CALLER = 5


class UnknownContentWarning(EmoembedWarning):
    """Some input items are unknown to the encoder, or are the wrong kind for it (phrases for a word model)."""


class UnknownContentError(DataError):
    """``oov="error"`` (``--oov error``) and some items are unknown to the encoder. The message names the first
    unknown item's row (``words.csv, line 3``: the file's line, header = line 1; ``command-line item 2``; ``input,
    row index 1 (0-based)`` for a Python list), the item, and how many of how many items are unknown in total, with
    up to :data:`LISTED` of them and their rows.

    Attributes: ``unknown`` — ``[(item, row), …]`` of every unknown item found, in input order; ``total`` — the
    items checked; ``modality``, ``why`` (what makes the first one unknown), ``remedy`` (the other ``--oov``
    choices). :meth:`with_more` adds the unknown items of later chunks (streaming: the count covers the whole file)."""

    LISTED = 10

    def __init__(self, modality: str, unknown: Sequence[tuple[str, str]], total: int, why: str, remedy: str):
        self.modality, self.unknown, self.total = modality, list(unknown), int(total)
        self.why, self.remedy = why, remedy
        super().__init__(self._message())

    def _message(self) -> str:
        noun = {"word": "word", "text": "text"}.get(self.modality, "item")
        first, where = self.unknown[0]
        n = len(self.unknown)
        shown = self.unknown[:self.LISTED]
        head = _common_head([w for _, w in shown])
        listed = ", ".join(f"{str(item)[:60]!r} ({w[len(head):] if head else w})" for item, w in shown)
        more = f" and {n - len(shown)} more" if n > len(shown) else ""
        return (f"{where}: {noun} {str(first)[:60]!r} is unknown to the {self.modality} "
                f"{'model' if self.modality == 'text' else 'encoder'} ({self.why}); {_of(n, self.total, noun)} unknown "
                f"in total{f': {listed}{more}' if n > 1 else ''}; {self.remedy}")

    def with_more(self, unknown: Sequence[tuple[str, str]], total: int) -> UnknownContentError:
        """The same error with ``unknown`` (later items) added and ``total`` items checked in all."""
        return UnknownContentError(self.modality, [*self.unknown, *unknown], total, self.why, self.remedy)


def _common_head(wheres: Sequence[str]) -> str:
    """``"words.csv, "`` when every row reference starts with the same file (said once, by the error's head)."""
    heads = {w.rsplit(", ", 1)[0] for w in wheres if ", " in w}
    if len(heads) == 1 and all(", " in w for w in wheres):
        return next(iter(heads)) + ", "
    return ""


def unknown_rows(items: Sequence[str], mask: np.ndarray, rows: Sequence[str] | None, where: str = "input"
                 ) -> list[tuple[str, str]]:
    """``[(item, row), …]`` of the items marked in ``mask``, each row as :func:`emoembed.errors.row_ref` names it."""
    return [(str(items[i]), row_ref(int(i), where, rows)) for i in np.flatnonzero(mask)]


def _examples(items: Sequence[str], mask: np.ndarray, n: int = 5) -> str:
    shown = [repr(str(w)) for w, m in zip(items, mask) if m][:n]
    more = int(mask.sum()) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def item_coverage(encoder, items: Sequence[str]) -> np.ndarray | None:
    """Per item the share the encoder knows (1 = all, 0 = nothing), or None for encoders without the notion."""
    fn = getattr(encoder, "coverage", None)
    return None if fn is None else np.asarray(fn(items), dtype=np.float64)


def check_content(encoder, items: Sequence[str], oov: str = "vector", rows: Sequence[str] | None = None
                  ) -> np.ndarray | None:
    """Warn about unknown and multi-word items and apply ``oov`` (see the module docstring); returns the
    coverage per item (None when the encoder has none). ``rows`` name the items in errors (``words.csv, line 3``,
    ``command-line item 2``); without them an item is named by its 0-based position. Raises
    :class:`UnknownContentError` (a :class:`DataError`) under ``oov="error"`` when some item is unknown, and
    DataError for an unknown ``oov``."""
    if oov not in OOV_MODES:
        raise DataError(f"oov must be one of {list(OOV_MODES)}, got {oov!r}")
    modality = getattr(encoder, "modality", "")
    if modality == "word":
        multi = np.array([is_multiword(w) for w in items], dtype=bool)
        if multi.any():
            how = ("reads a phrase as if it were one word, which it was never trained or tested on"
                   if getattr(encoder, "reads_phrases", False) else "averages their words' vectors")
            warnings.warn(f"{_of(int(multi.sum()), len(items), 'item')} several words ({_examples(items, multi)}): a word "
                          f"model is trained on single words and {how}, so negation ('not happy') and context are not "
                          "read reliably; for phrases and sentences use a text model: the packaged one (predict --model "
                          f"{SHIPPED_TEXT_MODEL}), or your own (emoembed fit-encoder --modality text, see docs/text.md)", UnknownContentWarning, stacklevel=_CALLER)
    cov = item_coverage(encoder, items)
    if cov is None:
        return None
    if modality == "text":
        return _check_text(encoder, items, cov, oov, rows)
    unknown = cov <= 0.0
    partial = (cov > 0.0) & (cov < 1.0)
    noun = "word" if modality == "word" else "item"
    pieces = modality == "word" and getattr(encoder, "reads_phrases", False)  # word-piece vectors: a lexicon decides
    if unknown.any():
        own = getattr(encoder, "oov", "learned")  # the word encoder's own unknown-word handling (recipe encoder.oov)
        scored = ("scores them from their word pieces" if pieces else
                  "scores them with a zero vector (this model's oov: zero)" if own == "zero" else
                  "leaves their outputs empty too (this model was trained with oov: skip)" if own == "skip" else
                  "scores them with the learned unknown-word vector")
        if oov == "error":
            why = ("none of its forms is in the known-word lexicon, GloVe 6B's 400k words" if pieces
                   else "none of its forms has a vector")
            raise UnknownContentError(modality, unknown_rows(items, unknown, rows), len(items), why,
                                      f"--oov vector {scored}, --oov nan leaves their outputs empty")
        fate = ("their outputs are left empty (--oov nan)" if oov == "nan" else
                ("they are still scored from their word pieces, which say little about a word no lexicon knows" if pieces
                 else "they are scored with a zero vector (this model's oov: zero), which says nothing about them"
                 if own == "zero" else "their outputs are empty: this model was trained with oov: skip" if own == "skip"
                 else "they are scored with the learned unknown-word vector, which says nothing about them")
                + " (--oov nan leaves them empty, --oov error refuses them)")
        warnings.warn(f"{_of(int(unknown.sum()), len(items), noun)} unknown to the {modality} encoder "
                      f"({_examples(items, unknown)}); {fate}", UnknownContentWarning, stacklevel=_CALLER)
    if partial.any():
        how = ("each is still read whole, as one string of word pieces, the unknown words' pieces included" if pieces
               else "only their known words are read, their vectors averaged")
        warnings.warn(f"{_of(int(partial.sum()), len(items), 'item')} partly unknown to the {modality} encoder: "
                      f"{_unknown_words_examples(encoder, items, partial)}; {how} (the coverage column gives the share "
                      "of each item's words that are known)", UnknownContentWarning, stacklevel=_CALLER)
    return cov


def _of(n: int, total: int, noun: str, verb: tuple[str, str] = ("is", "are")) -> str:
    """``1 of 5 words is`` / ``2 of 5 words are``: a count of items and its verb (singular, plural)."""
    return f"{n} of {total} {noun}{'' if total == 1 else 's'} {verb[0] if n == 1 else verb[1]}"


def _unknown_words_examples(encoder, items: Sequence[str], mask: np.ndarray, n: int = 5) -> str:
    """``'xqzzv' in 'xqzzv happy'; …``: the unknown words of the (multi-word) items marked in ``mask``."""
    known = getattr(encoder, "known_word", None)
    shown = []
    for i in np.flatnonzero(mask)[:n]:
        words = [w for w in str(items[i]).split() if known is not None and not known(w)]
        shown.append(f"{', '.join(repr(w) for w in dict.fromkeys(words))} in {str(items[i])[:60]!r}" if words
                     else repr(str(items[i])[:60]))
    more = int(mask.sum()) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _pieces_examples(items: Sequence[str], pieces: Sequence[Sequence[str]], mask: np.ndarray, n: int = 5) -> str:
    shown = [f"{', '.join(repr(p) for p in dict.fromkeys(pieces[i]))} in {str(items[i])[:60]!r}"
             for i in np.flatnonzero(mask)[:n]]
    more = int(mask.sum()) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _check_text(encoder, items: Sequence[str], cov: np.ndarray, oov: str, rows: Sequence[str] | None = None
                ) -> np.ndarray:
    """Text models: report the texts (and the pieces of them) the tokenizer reads as its unknown token."""
    legacy = getattr(encoder, "emoji", None) == "keep"
    has_emoji = np.array([legacy and emoji_description(str(t)) is not None for t in items], dtype=bool)
    if has_emoji.any():
        warnings.warn(f"{_of(int(has_emoji.sum()), len(items), 'text', ('holds', 'hold'))} emoji ({_examples(items, has_emoji)}), and this "
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
        if oov == "error":
            raise UnknownContentError("text", unknown_rows(items, unknown, rows), len(items),
                                      f"its tokenizer reads every piece of it as the unknown token {unk}",
                                      "--oov vector scores them from the unknown token alone, --oov nan leaves their "
                                      "outputs empty")
        head = (f"{_of(int(unknown.sum()), len(items), 'text')} unknown to the text model: its tokenizer reads every "
                f"piece of them as the unknown token {unk} ({_examples(items, unknown)})")
        fate = ("their outputs are left empty (--oov nan)" if oov == "nan" else
                "they are scored from the unknown token alone, which says nothing about them (--oov nan leaves them "
                "empty, --oov error refuses them)")
        warnings.warn(f"{head}; {fate}", UnknownContentWarning, stacklevel=_CALLER + 1)
    if partial.any():
        warnings.warn(f"{_of(int(partial.sum()), len(items), 'text', ('holds', 'hold'))} pieces the text model's tokenizer does not know, "
                      f"read as its unknown token {unk}: {_pieces_examples(items, pieces, partial)}; only the known "
                      "pieces carry meaning (see the coverage column)", UnknownContentWarning, stacklevel=_CALLER + 1)
    return cov
