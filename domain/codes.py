"""Item codes look like `2026-0037`; in chat people may type just `37` for the current year."""

from __future__ import annotations

import re

from domain.errors import ValidationError

_FULL = re.compile(r"^(\d{4})-(\d{1,6})$")
_SHORT = re.compile(r"^\d{1,6}$")


def format_code(year: int, seq: int) -> str:
    return f"{year}-{seq:04d}"


def parse_code(text: str, current_year: int) -> str:
    """Normalise what a person typed into a full code; `#37`, `37` and `2026-37` all work."""
    t = text.strip().lstrip("#＃").replace("－", "-")
    m = _FULL.match(t)
    if m:
        return format_code(int(m.group(1)), int(m.group(2)))
    if _SHORT.match(t):
        return format_code(current_year, int(t))
    raise ValidationError(f"“{text}”不是有效的督办编号，应形如 {current_year}-0037 或 37。")
