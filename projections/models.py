"""The read models Spor keeps, by name. Each keeps only the table families it needs, so each can
be rebuilt on its own (see docs/projections.md)."""

from __future__ import annotations

from projections.runner import Projection

TRANSCRIPT = Projection("transcript", ["voided", "completions", "links", "requirements"])
COURSE_STATUS = Projection("course_status", ["voided", "activity", "links", "employments", "org"])
COMPLIANCE = Projection("compliance",
                        ["voided", "completions", "links", "employments", "org", "requirements", "status"])

ALL: dict[str, Projection] = {p.name: p for p in (TRANSCRIPT, COURSE_STATUS, COMPLIANCE)}


def by_name(name: str) -> Projection:
    """The projection called ``name`` (KeyError lists the known ones)."""
    try:
        return ALL[name]
    except KeyError:
        raise KeyError(f"no projection {name!r}; known: {', '.join(sorted(ALL))}") from None
