"""Quality values of a comma-separated header list (RFC 9110 12.4.2): Accept-Language's ranges
for format=canonical (lrs/ops/languages.py) and Accept's media ranges for the analyst API's CSV
(projections/api.py) read them alike."""

from __future__ import annotations


def weighted(header: str) -> list[tuple[str, float]]:
    """(lower-case item, quality) in header order; the quality 1 when not given, 0 when it cannot
    be read, clamped to [0, 1]; empty items left out."""
    out: list[tuple[str, float]] = []
    for part in header.split(","):
        item, *params = (p.strip() for p in part.split(";"))
        if not item:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        out.append((item.lower(), q))
    return out
