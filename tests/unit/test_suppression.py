"""projections.queries.suppressed: small groups and their complement over a tree of groups (no
small group can be found by subtracting what is shown from a total, nor a hidden total by adding
up what is shown below it)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.queries import Cell, Family, _Ancestors, _families, course_suppression, suppressed

# a region of trusts of units: per trust its units' sizes, plus people under the region in no trust
trees = st.tuples(st.lists(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=5), max_size=5),
                  st.integers(min_value=0, max_value=8))


def _table(trusts: list[list[int]], rest: int) -> tuple[dict[Cell, int], list[Family]]:
    sizes: dict[Cell, int] = {("rest",): rest}
    families: list[Family] = []
    for t, units in enumerate(trusts):
        for u, n in enumerate(units):
            sizes[("unit", t, u)] = n
        sizes[("trust", t)] = sum(units)
        families.append((("trust", t), [("unit", t, u) for u in range(len(units))]))
    sizes[("region",)] = sum(sizes[("trust", t)] for t in range(len(trusts))) + rest
    families.append((("region",), [*(("trust", t) for t in range(len(trusts))), ("rest",)]))
    return sizes, families


@settings(deadline=None)  # a shared CI machine can stall one example past 200 ms
@given(trees, st.integers(min_value=1, max_value=10))
def test_no_family_reveals_a_small_sum(tree: tuple[list[list[int]], int], threshold: int) -> None:
    sizes, families = _table(*tree)
    hide = suppressed(sizes, families, threshold)
    assert {c for c, n in sizes.items() if n < threshold} <= hide
    for parent, children in families:
        shown = sum(sizes[c] for c in children if c not in hide)
        if all(c in hide for c in children):
            continue
        if parent in hide:
            # a hidden total cannot be had within the threshold by adding up the groups shown
            assert sizes[parent] - shown >= threshold
        else:
            revealed = sizes[parent] - shown
            assert revealed == 0 or revealed >= threshold


def test_a_small_group_hides_its_smallest_sibling_and_a_hidden_total_one_of_its_parts() -> None:
    sizes, families = _table([[1, 9, 6, 7], [8]], 0)
    hide = suppressed(sizes, families, 5)
    assert {("unit", 0, 0), ("unit", 0, 2)} <= hide and ("unit", 0, 1) not in hide
    # people under the region in no trust (2) are what the region minus its trusts reveals:
    # the smaller trust is hidden, and with it its one unit, which would add up to it
    sizes, families = _table([[7, 7], [8]], 2)
    hide = suppressed(sizes, families, 5)
    assert ("trust", 1) in hide and ("unit", 1, 0) in hide and ("trust", 0) not in hide
    assert hide == {("rest",), ("trust", 1), ("unit", 1, 0)}


def test_nothing_is_hidden_when_every_group_is_large_and_sums_are_exact() -> None:
    sizes, families = _table([[10, 20], [30]], 0)
    assert suppressed(sizes, families, 5) == {("rest",)}


# --- the compliance roll-up's families (projections.queries._families) against an attacker who
# solves every sum the three views show

def _rank(rows: list[list[Fraction]]) -> int:
    m = [r[:] for r in rows]
    rank, col, width = 0, 0, len(m[0]) if m else 0
    while rank < len(m) and col < width:
        pivot = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if pivot is None:
            col += 1
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                f = m[i][col] / m[rank][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank, col = rank + 1, col + 1
    return rank


def _determined(equations: list[tuple[dict[Cell, int], int]], unknowns: list[Cell], cell: Cell) -> bool:
    """Whether the sums pin ``cell`` down exactly: its unit vector lies in the equations' span."""
    a = [[Fraction(coef.get(u, 0)) for u in unknowns] for coef, _ in equations if any(u in coef for u in unknowns)]
    e = [Fraction(int(u == cell)) for u in unknowns]
    return bool(a) and _rank([*a, e]) == _rank(a)


regions = st.lists(st.tuples(
    st.lists(st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=3), max_size=3),  # trusts' units
    st.integers(min_value=0, max_value=9),    # staff at the region unit (no trust)
    st.integers(min_value=0, max_value=9)),   # a department right under the region (no trust)
    min_size=1, max_size=2)


@settings(deadline=None)  # a shared CI machine can stall one example past 200 ms
@given(regions, st.integers(min_value=2, max_value=6))
def test_no_small_group_is_pinned_down_by_the_three_roll_up_views(tree: list, threshold: int) -> None:
    units: list[dict] = []
    counts: dict[str, dict[str | None, int]] = {"unit": {}, "trust": {}, "region": {}, "rest": {}}
    versions = []
    for r, (trusts, staff, dept) in enumerate(tree):
        versions.append({"unit_id": f"R{r}", "parent_id": None, "level": "region"})
        places = [(f"R{r}", None, staff), (f"R{r}-d", None, dept)]
        versions.append({"unit_id": f"R{r}-d", "parent_id": f"R{r}", "level": "department"})
        for t, sizes in enumerate(trusts):
            versions.append({"unit_id": f"T{r}{t}", "parent_id": f"R{r}", "level": "trust"})
            for u, n in enumerate(sizes):
                versions.append({"unit_id": f"U{r}{t}{u}", "parent_id": f"T{r}{t}", "level": "department"})
                places.append((f"U{r}{t}{u}", f"T{r}{t}", n))
        for unit, trust, n in places:
            if n:
                units.append({"unit": unit, "trust": trust, "region": f"R{r}", "n": n})
                for level, group in (("unit", unit), ("trust", trust), ("region", f"R{r}")):
                    counts[level][group] = counts[level].get(group, 0) + n
                if trust is None:
                    counts["rest"][f"R{r}"] = counts["rest"].get(f"R{r}", 0) + n
    rows = [{"level": lvl, "group_id": g, "requirement_id": "q", "total": n}
            for lvl, c in counts.items() for g, n in c.items()]
    sizes, families = _families(rows, _Ancestors(versions))
    hide = suppressed(sizes, families, threshold)
    # the trust and region views read no units: they decide the same for every other cell
    above = _families([r for r in rows if r["level"] != "unit"], _Ancestors(versions))
    assert suppressed(*above, threshold) == {c for c in hide if c[0] != "unit"}
    assert {c for c, n in sizes.items() if n < threshold} <= hide
    # the attacker knows every shown row, and that each total is the sum of its parts; the
    # people of a region in no trust are never shown as such
    published = {c: n for c, n in sizes.items() if c[0] != "rest" and c not in hide}
    unknowns = [c for c in sizes if c not in published]
    equations = [({parent: 1, **{c: -1 for c in children}}, 0) for parent, children in families if parent in sizes]
    equations = [({c: k for c, k in coef.items() if c not in published}, 0) for coef, _ in equations]
    for cell in unknowns:
        if 0 < sizes[cell] < threshold:
            assert not _determined(equations, unknowns, cell), (cell, sizes[cell], published)


# --- course status (projections.queries.course_suppression): learners per course, trust and
# unit, and where those who have not finished stop, one count per activity

courses = st.lists(st.lists(st.lists(st.sampled_from(["done", "x", "y"]), min_size=1, max_size=12),
                            min_size=1, max_size=3), max_size=3)  # trusts of units of learners' outcomes


def _level(cell: tuple) -> str:
    """A drop-off cell's level (a group's unfinished total names the group's cell)."""
    return cell[1][0] if cell[0] == "unfinished" else cell[0]


@settings(deadline=None)  # a shared CI machine can stall one example past 200 ms
@given(courses, st.lists(st.sampled_from(["done", "x", "y"]), max_size=4), st.integers(min_value=2, max_value=6))
def test_no_small_course_figure_is_pinned_down_by_the_three_views(trusts: list, nowhere: list,
                                                                  threshold: int) -> None:
    """Each learner is in one unit (or none); the views are per course, per trust and per unit."""
    groups: dict[tuple[str, str | None, str | None], list[str]] = {}  # (level, group, parent): outcomes
    for t, units in enumerate(trusts):
        for u, outcomes in enumerate(units):
            groups[("unit", f"U{t}{u}", f"T{t}")] = outcomes
            groups.setdefault(("trust", f"T{t}", None), []).extend(outcomes)
    if nowhere:
        groups[("unit", None, None)] = nowhere
        groups[("trust", None, None)] = nowhere
    groups[("course", None, None)] = [o for (lvl, _, _), os in groups.items() if lvl == "trust" for o in os]
    if not groups[("course", None, None)]:
        return
    # the learners who finished have a score and a time: each average is over that many
    found = [{"level": lvl, "store_id": 1, "course_id": "c", "group_id": g, "parent_id": p, "learners": len(os),
              "stopped_at": {a: os.count(a) for a in ("x", "y") if a in os},
              "scored": os.count("done"), "timed": os.count("done")}
             for (lvl, g, p), os in groups.items()]
    hidden, hidden_stops, hidden_averages = course_suppression(found, threshold)
    # the per-trust view reads no units: it decides the same for the course and its trusts
    above = course_suppression([r for r in found if r["level"] != "unit"], threshold)
    assert above[0] == {c for c in hidden if c[0] != "unit"}
    assert above[1] == {c for c in hidden_stops if _level(c) != "unit"}
    cells = {(lvl, 1, "c", g): (p, len(os), os) for (lvl, g, p), os in groups.items()}
    # the per-course view reads the course alone: it decides the same for it
    alone = course_suppression([r for r in found if r["level"] == "course"], threshold)
    assert alone[0] == {c for c in hidden if c[0] == "course"}
    assert alone[1] == {c for c in hidden_stops if _level(c) == "course"}
    assert above[2] == {c for c in hidden_averages if c[1][0] != "unit"}
    for activity in (None, "x", "y", "done"):
        size = {c: (n if activity is None else os.count(activity)) for c, (_, n, os) in cells.items()}
        if activity == "done":  # how many an average is over: shown with it (a sum gives the mean)
            shown = {c for c in cells if c not in hidden and ("score", c) not in hidden_averages}
        else:
            shown = {c for c in cells if c not in hidden and (activity is None or (
                (*c, activity) not in hidden_stops and size[c] > 0))}
        equations = [{("course", 1, "c", None): 1, **{c: -1 for c in cells if c[0] == "trust"}}]
        for t in {c[3] for c in cells if c[0] == "trust"}:
            equations.append({("trust", 1, "c", t): 1, **{c: -1 for c, (p, _, _) in cells.items()
                                                          if c[0] == "unit" and p == t}})
        unknowns = [c for c in cells if c not in shown]
        reduced = [({c: k for c, k in eq.items() if c not in shown}, 0) for eq in equations]
        for c in unknowns:
            if 0 < size[c] < threshold:
                assert not _determined(reduced, unknowns, c), (activity, c, size[c], shown)
    # a shown group's drop-off counts add up to its learners who have not finished (its other
    # counts can give that): with them known, no small count of one activity is pinned down
    # (unless all of them are that few: a group shown is shown with its counts)
    for c, (_, _, os) in cells.items():
        unfinished = {a: os.count(a) for a in ("x", "y") if a in os}
        if c in hidden or sum(unfinished.values()) < threshold:
            continue
        unknown = [a for a in unfinished if (*c, a) in hidden_stops]
        if len(unknown) == 1:
            assert unfinished[unknown[0]] == 0 or unfinished[unknown[0]] >= threshold, (c, unfinished)


def test_a_person_in_two_units_does_not_let_a_small_unit_through_the_row_of_no_trust() -> None:
    """Found by a review: 6 people at the region unit only, 6 there and in a trust's unit, 1 in a
    department in no trust, 6 in the trust's unit only. The region minus its trusts (7) is less
    than its people in no trust (13), so that family showed nothing to find; but the no-trust
    row (13) minus the region unit's row (12) gives the department's 1."""
    versions = [{"unit_id": "R0", "parent_id": None, "level": "region"},
                {"unit_id": "R0d", "parent_id": "R0", "level": "department"},
                {"unit_id": "T00", "parent_id": "R0", "level": "trust"},
                {"unit_id": "U000", "parent_id": "T00", "level": "department"}]
    rows = [{"level": lvl, "group_id": g, "requirement_id": "q", "total": n} for lvl, g, n in (
        ("region", "R0", 19), ("trust", "T00", 12), ("trust", None, 13), ("rest", "R0", 13),
        ("unit", "R0", 12), ("unit", "R0d", 1), ("unit", "U000", 12))]
    hide = suppressed(*_families(rows, _Ancestors(versions)), 5)
    assert ("unit", "R0d", "q") in hide and ("unit", "R0", "q") in hide


_REGION_T_D1 = [{"unit_id": "R", "parent_id": None, "level": "region"},
                {"unit_id": "T", "parent_id": "R", "level": "trust"},
                {"unit_id": "D1", "parent_id": "T", "level": "department"}]


def _rows_of(people: dict[frozenset[str], int]) -> list[dict]:
    """The roll-up's rows (with the counted people in no trust) of people employed in one unit
    or two, in the tree R > T > D1 (people at R itself are in no trust)."""
    trust = {"R": None, "D1": "T"}
    cells: dict[tuple[str, str | None], int] = {}
    for units, n in people.items():
        groups = {("unit", u) for u in units} | {("trust", trust[u]) for u in units} | {("region", "R")}
        if any(trust[u] is None for u in units):
            groups.add(("rest", "R"))
        for g in groups:
            cells[g] = cells.get(g, 0) + n
    return [{"level": lvl, "group_id": g, "requirement_id": "q", "total": n} for (lvl, g), n in cells.items()]


def test_the_people_in_no_trust_are_counted_so_an_overlap_as_large_as_the_threshold_hides_nothing() -> None:
    """5 in D1 only, 5 in D1 and at the region unit, 4 at the region unit only. The region
    minus its trust (4) is not its people in no trust (9): taken as 4, that cell was hidden and
    the region's only trust and unit with it, for nothing (the 5 counted twice are a group as
    large as the threshold)."""
    rows = _rows_of({frozenset({"D1"}): 5, frozenset({"D1", "R"}): 5, frozenset({"R"}): 4})
    sizes, families = _families(rows, _Ancestors(_REGION_T_D1))
    assert sizes[("rest", "R", "q")] == 9
    assert suppressed(sizes, families, 5) == set()


def test_people_employed_both_in_a_trust_and_in_no_trust_are_not_given_by_adding_up() -> None:
    """Found by a review: 5 in D1, 4 at the region unit, 1 in both. Were the trust (6), the row
    of no trust (5) and the region (10) all shown, 6 + 5 - 10 would give the 1 employed in both
    (and, column by column, that person's status). No history of people in D1, at R or in both
    that shows the same rows tells how many are in both."""
    truth = {frozenset({"D1"}): 5, frozenset({"R"}): 4, frozenset({"D1", "R"}): 1}

    def published(people: dict[frozenset[str], int]) -> dict[tuple[str, str | None], int | None]:
        rows = _rows_of(people)
        hide = suppressed(*_families(rows, _Ancestors(_REGION_T_D1)), 5)
        return {(r["level"], r["group_id"]): None if (r["level"], r["group_id"], "q") in hide else r["total"]
                for r in rows if r["level"] != "rest"}

    seen = published(truth)
    both = {n for d1 in range(12) for r in range(12) for n in range(12)
            if published({frozenset({"D1"}): d1, frozenset({"R"}): r, frozenset({"D1", "R"}): n}) == seen}
    assert len(both) > 1 and 1 in both


# people employed in one unit or two, anywhere: the attacker knows every shown row of the three
# views and which units and pairs of units people hold, but not how many hold each
_TREE = {"R": (None, "R"), "Rd": (None, "R"), "U00": ("T0", "R"), "U01": ("T0", "R"), "U10": ("T1", "R"),
         "Q": (None, "Q"), "U20": ("T2", "Q")}  # unit: (trust, region)
_VERSIONS = [{"unit_id": "R", "parent_id": None, "level": "region"},
             {"unit_id": "Q", "parent_id": None, "level": "region"},
             {"unit_id": "Rd", "parent_id": "R", "level": "department"},
             *({"unit_id": t, "parent_id": r, "level": "trust"} for t, r in (("T0", "R"), ("T1", "R"), ("T2", "Q"))),
             *({"unit_id": u, "parent_id": t, "level": "department"}
               for u, (t, _) in _TREE.items() if t is not None)]
employments = st.lists(st.lists(st.sampled_from(sorted(_TREE)), min_size=1, max_size=2, unique=True).map(frozenset),
                       min_size=1, max_size=16)


def _groups() -> dict[tuple[str, str | None], set[str]]:
    g: dict[tuple[str, str | None], set[str]] = {}
    for u, (t, r) in _TREE.items():
        for key in (("unit", u), ("trust", t), ("region", r), *((("rest", r),) if t is None else ())):
            g.setdefault(key, set()).add(u)
    return g


@settings(deadline=None)  # a shared CI machine can stall one example past 200 ms
@given(employments, st.integers(min_value=2, max_value=5))
def test_no_small_group_nor_the_people_in_two_units_are_pinned_down_by_the_roll_up_views(
        people: list[frozenset[str]], threshold: int) -> None:
    groups = _groups()
    sizes = {k: sum(1 for p in people if p & units) for k, units in groups.items()}
    sizes = {k: n for k, n in sizes.items() if n}
    rows = [{"level": lvl, "group_id": g, "requirement_id": "q", "total": n} for (lvl, g), n in sizes.items()]
    hide = {c[:2] for c in suppressed(*_families(rows, _Ancestors(_VERSIONS)), threshold)}
    above = _families([r for r in rows if r["level"] != "unit"], _Ancestors(_VERSIONS))
    assert {c[:2] for c in suppressed(*above, threshold)} == {c for c in hide if c[0] != "unit"}
    shown = [k for k in sizes if k[0] != "rest" and k not in hide]
    # the unknowns: how many people hold each unit alone and each pair that occurs
    held = sorted({frozenset({u}) for p in people for u in p} | {p for p in people if len(p) == 2}, key=sorted)
    equations = [[Fraction(int(bool(h & groups[k]))) for h in held] for k in shown]
    targets = [(k, [Fraction(int(bool(h & groups[k]))) for h in held]) for k, n in sizes.items()
               if k[0] != "rest" and k in hide and n < threshold]
    targets += [(pair, [Fraction(int(h == pair)) for h in held]) for pair in {p for p in people if len(p) == 2}
                if people.count(pair) < threshold]
    if not equations:
        return
    r0 = _rank(equations)
    for what, vector in targets:
        assert _rank([*equations, vector]) > r0, (what, sorted(map(sorted, people)), threshold, hide)
