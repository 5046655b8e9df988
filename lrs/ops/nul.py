"""Where a JSON value holds U+0000 (NUL), which PostgreSQL's text and jsonb cannot store."""

from __future__ import annotations

from typing import Any


def nul_path(value: Any, path: str = "") -> str | None:
    """The JSON path (below ``path``) of the first string or property name holding U+0000;
    None if none does."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            shown = k.replace("\x00", "\\u0000")
            member = f"{path}.{shown}" if path else shown
            if "\x00" in k:
                return f"{member} (a property name)"
            if (found := nul_path(v, member)) is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if (found := nul_path(v, f"{path}[{i}]")) is not None:
                return found
    return None
