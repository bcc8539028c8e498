"""Matching a table's columns to a label format's variables, one rule for every reader: user tables
(:mod:`emoembed.inputs`) and the DataFrames given to :meth:`emoembed.codec.EmotionCodec.convert`."""
from __future__ import annotations

import pandas as pd


def find_column(frame: pd.DataFrame, name: str) -> str | None:
    """The frame's column called ``name``, matched exactly, then case-insensitively (surrounding spaces ignored:
    ``Valence``, ``AROUSAL``, `` dominance``); None if there is none."""
    if name in frame.columns:
        return name
    folded = {str(c).strip().casefold(): c for c in frame.columns}
    return folded.get(name.strip().casefold())
