"""Address parsing to province / city / district (M-1), via ``jionlp.parse_location``.

jionlp takes about a second to import and prints a banner, so it is loaded on first use with its
output silenced. Callers that already have structured columns (imports) skip parsing.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class ParsedAddress:
    province: str
    city: str
    district: str
    detail: str


@lru_cache(maxsize=1)
def _parser() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import jionlp

    return jionlp.parse_location


@lru_cache(maxsize=4096)
def parse_address(text: str) -> ParsedAddress:
    text = (text or "").strip()
    if not text:
        return ParsedAddress("", "", "", "")
    result = _parser()(text)
    return ParsedAddress(
        province=result.get("province") or "",
        city=result.get("city") or "",
        district=result.get("county") or "",
        detail=result.get("detail") or "",
    )
