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

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
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
    ``stored``: a unit its own parent or ancestor; with ``stored`` known (not None), also a parent
    that is no unit, or has no version yet on a version's date."""
    by_key = {(v.unit_id, v.valid_from): v for v in stored or ()}
    by_key.update({(v.unit_id, v.valid_from): v for v in new})
    history: dict[str, list[Version]] = {}
    for v in sorted(by_key.values(), key=lambda v: v.valid_from):
        history.setdefault(v.unit_id, []).append(v)
    starts = {u: [v.valid_from for v in vs] for u, vs in history.items()}

    def at(unit: str, day: str) -> Version | None:
        i = bisect_right(starts[unit], day)
        return history[unit][i - 1] if i else None

    found: list[tuple[int, str]] = []
    for v in new:
        line = v.line or 0
        if v.parent_id is None:
            continue
        if v.parent_id == v.unit_id:
            found.append((line, "a unit cannot be its own parent"))
        elif stored is None:
            continue
        elif v.parent_id not in history:
            found.append((line, f"unit {v.parent_id} is neither in this file nor stored"))
        elif at(v.parent_id, v.valid_from) is None:
            found.append((line, f"unit {v.parent_id} has no version on or before {v.valid_from} "
                                f"(its first is from {starts[v.parent_id][0]})"))
    return found + _cycles(history, at, sorted({v.valid_from for v in by_key.values()}))


def _cycles(history: Mapping[str, list[Version]], at: Callable[[str, str], Version | None],
            days: Sequence[str]) -> list[tuple[int, str]]:
    """A unit that is its own ancestor on some date, once per cycle, at the first line of the file
    that takes part in it (a cycle only of stored versions is not this file's doing)."""
    seen: set[frozenset[str]] = set()
    found: list[tuple[int, str]] = []
    for day in days:
        parent = {u: v for u in history if (v := at(u, day)) is not None}
        done: set[str] = set()
        for start in parent:
            path: list[str] = []
            unit: str | None = start
            while unit is not None and unit in parent and unit not in done:
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
            done.update(path)
    return found
