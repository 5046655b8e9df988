"""Where a JSON value holds U+0000 (NUL), which PostgreSQL's text and jsonb cannot store (its json
type can: a statement's body is json)."""

from __future__ import annotations

from typing import Any


def nul_path(value: Any, path: str = "", *, extension_values: bool = True) -> str | None:
    """The JSON path (below ``path``) of the first string or property name holding U+0000;
    None if none does. ``extension_values=False``: the values of ``extensions`` maps are not
    looked at (their names are)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            shown = k.replace("\x00", "\\u0000")
            member = f"{path}.{shown}" if path else shown
            if "\x00" in k:
                return f"{member} (a property name)"
            if not extension_values and k == "extensions" and isinstance(v, dict):
                # the names are checked (IRIs, used as they are), the values are any JSON
                found = nul_path(dict.fromkeys(v), member)
            else:
                found = nul_path(v, member, extension_values=extension_values)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if (found := nul_path(v, f"{path}[{i}]", extension_values=extension_values)) is not None:
                return found
    return None


def without_nul(value: Any) -> Any:
    """``value`` with every U+0000 in its strings and property names replaced by U+FFFD, for a
    copy PostgreSQL must hold as jsonb (a canonical Activity definition whose extensions hold
    one)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value
