"""The rules an organisation import must keep for the tree it describes, at every date.

Each ``org.unit`` event is one version of a unit (``unit_id@valid_from``), in effect from its
date until the unit's next version. Compliance and course-status roll a unit's people up to its
trust and region through ``parent_id``, so a parent that does not exist yet, or never, leaves the
unit's people out of every roll-up above it, and a cycle makes a unit its own ancestor (the
read models stop at 32 levels rather than loop, but the roll-up is wrong). Both are refused when
the file is imported, naming the line, rather than found in a dashboard.

The tree is the file's versions over the store's (a version of the same key in the file
replaces the stored one), checked at each date any version starts: between two such dates
nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Version:
    """One version of a unit: in effect from ``valid_from``, under ``parent_id`` (None: a root).
    ``line`` is its line in the file being imported, None when it is stored."""

    unit_id: str
    valid_from: str
    parent_id: str | None
    line: int | None


def problems(new: Sequence[Version], stored: Sequence[Version] | None) -> list[tuple[int, str]]:
    """(line, what is wrong with its parent_id) once ``new`` (the file's versions) is over
    ``stored``: a unit its own parent; with ``stored`` known (not None), also a parent that is no
    unit or has no version yet on a version's date, and a unit its own ancestor on some date
    (the file alone cannot tell: a stored version it does not repeat may move a unit away)."""
    found = [(v.line or 0, "a unit cannot be its own parent") for v in new if v.parent_id == v.unit_id]
    if stored is None:
        return found
    by_key = {(v.unit_id, v.valid_from): v for v in stored}
    by_key.update({(v.unit_id, v.valid_from): v for v in new})
    history: dict[str, list[Version]] = {}
    for v in sorted(by_key.values(), key=lambda v: v.valid_from):
        history.setdefault(v.unit_id, []).append(v)
    first = {u: vs[0].valid_from for u, vs in history.items()}
    for v in new:
        if v.parent_id is None or v.parent_id == v.unit_id:
            continue
        if v.parent_id not in history:
            found.append((v.line or 0, f"unit {v.parent_id} is neither in this file nor stored"))
        elif first[v.parent_id] > v.valid_from:
            found.append((v.line or 0, f"unit {v.parent_id} has no version on or before {v.valid_from} "
                                       f"(its first is from {first[v.parent_id]})"))
    return found + _cycles(by_key.values(), min((v.valid_from for v in new), default=None))


def _cycles(versions: Iterable[Version], since: str | None) -> list[tuple[int, str]]:
    """A unit that is its own ancestor on some date from ``since`` on, once per cycle, at the
    first line of the file that takes part in it (a cycle only of stored versions is not this
    file's doing). The dates are taken in order with the tree in effect kept up to date; a cycle
    that appears on a date holds a unit whose version starts then, so only those are walked
    from: one pass over the versions, not the whole tree at every date."""
    starting: dict[str, list[Version]] = {}
    for v in versions:
        starting.setdefault(v.valid_from, []).append(v)
    parent: dict[str, Version] = {}
    seen: set[frozenset[str]] = set()
    found: list[tuple[int, str]] = []
    for day in sorted(starting):
        for v in starting[day]:
            parent[v.unit_id] = v
        if since is None or day < since:
            continue
        for start in sorted({v.unit_id for v in starting[day]}):
            path: list[str] = []
            unit: str | None = start
            while unit is not None and unit in parent:
                if unit in path:
                    cycle = path[path.index(unit):]
                    lines = [line for u in cycle if (line := parent[u].line) is not None]
                    # a unit its own parent is said as such (problems)
                    if lines and len(cycle) > 1 and frozenset(cycle) not in seen:
                        seen.add(frozenset(cycle))
                        found.append((min(lines), f"makes a cycle on {day}: {' → '.join([*cycle, unit])}"))
                    break
                path.append(unit)
                unit = parent[unit].parent_id
    return found
