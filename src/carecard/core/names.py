"""Pinyin search keys for Chinese names (M-5).

Every reading of a polyphonic character is indexed (曾 → z and c), so a clerk typing either finds
the member. Per-character readings are cached: names draw from a few thousand characters, which
keeps key generation cheap enough for bulk imports.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

from pypinyin import Style, pinyin

MAX_KEYS = 16  # bound the cartesian product for names full of polyphonic characters


@lru_cache(maxsize=20000)
def _char_readings(ch: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(initial letters, full syllables) for one character, all readings."""
    if ch.isascii():
        low = ch.lower()
        return ((low,), (low,)) if low.isalnum() else ((), ())
    full = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")
    if not full or not full[0]:
        return ((), ())
    syllables = tuple(dict.fromkeys(s.lower() for s in full[0] if s))
    initials = tuple(dict.fromkeys(s[0] for s in syllables))
    return initials, syllables


def pinyin_keys(name: str) -> list[str]:
    """All initials strings (``zsf``) and full-pinyin strings (``zhangsanfeng``) for a name."""
    per_char = [_char_readings(ch) for ch in name.strip()]
    per_char = [r for r in per_char if r[0]]
    if not per_char:
        return []
    keys: list[str] = []
    for which in (0, 1):
        options = [r[which] for r in per_char]
        for combo in itertools.islice(itertools.product(*options), MAX_KEYS):
            keys.append("".join(combo))
    return list(dict.fromkeys(keys))


def is_pinyin_query(q: str) -> bool:
    return q.isascii() and q.isalpha()
