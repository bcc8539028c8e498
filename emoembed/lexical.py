"""Word-level normalisation for word encoders: what a word lookup tries, in order, before a word counts as unknown.

For an item ``w`` the candidates are (:func:`lookup_candidates`):

1. an emoticon's meaning from :data:`EMOTICONS` (``:)`` → ``smile``, ``:(`` → ``sad``; a small hand-made table of the
   common Western and Eastern emoticons), before the characters themselves;
2. ``w`` as given, then lower-cased;
3. ``w`` without surrounding punctuation and quotes (``happy!`` → ``happy``, ``"sad"`` → ``sad``), as given and
   lower-cased — only when something other than punctuation is left;
4. an emoji's CLDR short name from the ``emoji`` package (``😂`` → ``face with tears of joy``), as a phrase
   (:func:`emoji_description`) and as its content words without the generic ones (``tears joy``, see
   :data:`GENERIC_EMOJI_WORDS`), which a word-vector model averages.

Nothing here guesses beyond that: an item for which no candidate is found is reported as out of vocabulary.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Emoticon → the word that says what it shows. Keys are matched exactly, then case-insensitively.
EMOTICONS: dict[str, str] = {
    ":)": "smile", ":-)": "smile", "(:": "smile", ":]": "smile", "=)": "smile", ":o)": "smile", "^_^": "smile",
    "^^": "smile", ":3": "cute",
    ":D": "laugh", ":-D": "laugh", "xD": "laugh", "XD": "laugh", "=D": "laugh", ":'D": "laugh",
    ";)": "wink", ";-)": "wink", ";D": "wink",
    ":(": "sad", ":-(": "sad", "):": "sad", ":[": "sad", "=(": "sad", ":c": "sad", "T_T": "crying", ";_;": "crying",
    ":'(": "crying", ":'-(": "crying", "QQ": "crying",
    ">:(": "angry", ">:-(": "angry", ">_<": "frustrated", "-_-": "annoyed", "-.-": "annoyed",
    ":/": "skeptical", ":-/": "skeptical", ":\\": "skeptical", ":s": "confused", ":S": "confused", "o_O": "confused",
    "O_o": "confused", "o.O": "confused",
    ":o": "surprised", ":O": "surprised", ":-o": "surprised", ":-O": "surprised", "o_o": "surprised", "O_O": "shocked",
    "D:": "horrified", "D:<": "angry",
    ":p": "playful", ":P": "playful", ":-p": "playful", ":-P": "playful", ";p": "playful",
    ":|": "indifferent", ":-|": "indifferent",
    ":*": "kiss", ":-*": "kiss", "<3": "love", "</3": "heartbroken",
    ":$": "embarrassed", ":x": "speechless", ":X": "speechless",
}
_EMOTICONS_FOLDED = {k.casefold(): v for k, v in EMOTICONS.items()}
GENERIC_EMOJI_WORDS = frozenset({"face", "with", "of", "the", "a", "an", "and", "in", "on", "button", "sign", "symbol",
                                 "mark", "person", "man", "woman", "hand", "hands", "light", "medium", "dark",
                                 "skin", "tone", "medium-light", "medium-dark", "slightly", "open", "mouth", "eyes",
                                 "closed", "big", "small"})


def strip_punctuation(word: str) -> str:
    """``word`` without leading/trailing punctuation and quotes (Unicode categories P* and S* other than
    emoji); empty when nothing else is left."""
    chars = list(word.strip())
    is_edge = lambda ch: unicodedata.category(ch)[0] in "PS" and not _is_emoji(ch)  # noqa: E731
    while chars and is_edge(chars[0]):
        chars.pop(0)
    while chars and is_edge(chars[-1]):
        chars.pop()
    return "".join(chars).strip()


def _is_emoji(ch: str) -> bool:
    try:
        import emoji
    except ImportError:  # pragma: no cover - a declared dependency
        return False
    return bool(emoji.is_emoji(ch))


@lru_cache(maxsize=65536)
def emoji_description(text: str) -> str | None:
    """The CLDR names of the emoji in ``text`` (``😂`` → ``face with tears of joy``), other characters dropped;
    None when ``text`` holds no emoji."""
    try:
        import emoji
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    if not emoji.emoji_count(text):
        return None
    names = [e["emoji"] for e in emoji.emoji_list(text)]
    words = [emoji.demojize(e).strip(":").replace("_", " ") for e in names]
    return " ".join(w for w in words if w) or None


_SKIN_TONE = re.compile(r"_(?:medium-light|medium-dark|light|medium|dark)_skin_tone")


def _emoji_name(chars: str, data: dict) -> str:
    name = str(data.get("en", "")).strip(":")
    name = _SKIN_TONE.sub("", name).replace("_skin_tone", "").replace("_", " ").strip()
    return f" {name} " if name else " "


def emoji_as_words(text: str) -> str:
    """``text`` with every emoji replaced by its CLDR short name in words (``I love it 😂`` → ``I love it face
    with tears of joy``; ``👍🏽`` → ``thumbs up``, skin-tone modifiers dropped; ``👨‍👩‍👧`` → ``family man woman
    girl``; ``🇫🇷`` → ``France``), for text encoders whose tokenizer maps emoji to its unknown token. Text without
    emoji is returned unchanged (the very same string); with emoji, runs of whitespace become one space."""
    try:
        import emoji
    except ImportError:  # pragma: no cover - a declared dependency
        return text
    if not emoji.emoji_count(text):
        return text
    return " ".join(emoji.replace_emoji(text, replace=_emoji_name).split())


def emoji_content_words(description: str) -> str:
    """An emoji description without its generic words (``face with tears of joy`` → ``tears joy``)."""
    kept = [w for w in description.split() if w.casefold() not in GENERIC_EMOJI_WORDS]
    return " ".join(kept) or description


def emoticon_word(text: str) -> str | None:
    """The word an emoticon stands for (``:(`` → ``sad``), or None."""
    t = text.strip()
    return EMOTICONS.get(t) or _EMOTICONS_FOLDED.get(t.casefold())


def lookup_candidates(word: str, phrases: bool = False) -> list[str]:
    """The strings a word lookup tries, in order (see the module docstring); duplicates removed.

    ``phrases``: the encoder reads phrases itself (a sentence encoder, which knows nearly any string): the word
    without surrounding punctuation comes first, and emoji are given as their full names rather than their
    content words."""
    w = word.strip()
    emo = emoticon_word(w)
    out = [emo] if emo else []  # an emoticon's meaning beats whatever a vector file holds for its characters
    bare = strip_punctuation(w)
    if phrases:  # a sentence encoder knows nearly any string: give it the cleaned word first
        out += [bare, w] if bare else [w]
    else:
        out += [w, w.lower()]
        if bare and bare != w:
            out += [bare, bare.lower()]
    desc = emoji_description(w)
    if desc:
        out.append(desc if phrases else emoji_content_words(desc))
    seen: set[str] = set()
    return [c for c in out if c and not (c in seen or seen.add(c))]


def is_multiword(word: str) -> bool:
    """True for input of several whitespace-separated words (``not happy``), which a word model averages."""
    return len(str(word).split()) > 1
