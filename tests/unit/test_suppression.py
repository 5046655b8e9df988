"""projections.queries.suppressed: small groups and their complement over a tree of groups (no
small group can be found by subtracting what is shown from a total, nor a hidden total by adding
up what is shown below it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.queries import Cell, Family, suppressed

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
