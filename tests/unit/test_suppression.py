"""projections.queries.suppressed: small groups and their complement (no small group can be
found by subtracting what is shown from a family's total)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.queries import suppressed

groups = st.lists(st.tuples(st.sampled_from("abc"), st.integers(min_value=1, max_value=30)), max_size=12)


@given(groups, st.integers(min_value=1, max_value=10))
def test_each_family_hides_nothing_or_at_least_a_threshold_of_people(rows: list[tuple[str, int]],
                                                                      threshold: int) -> None:
    table = [{"family": f, "n": n} for f, n in rows]
    hide = suppressed(table, "n", lambda r: r["family"], threshold)
    assert {i for i, r in enumerate(table) if r["n"] < threshold} <= hide
    for family in {f for f, _ in rows}:
        members = [i for i, r in enumerate(table) if r["family"] == family]
        hidden = sum(table[i]["n"] for i in members if i in hide)
        # the family's total minus the shown groups is this sum: 0, at least the threshold, or
        # the whole family is hidden (then its total is small and hidden one level up too)
        assert hidden == 0 or hidden >= threshold or all(i in hide for i in members)


def test_the_smallest_sibling_is_the_one_hidden_with_a_small_group() -> None:
    table = [{"f": "t", "n": n} for n in (1, 9, 6, 7)]
    assert suppressed(table, "n", lambda r: r["f"], 5) == {0, 2}
    assert suppressed([{"f": "t", "n": 3}, {"f": "u", "n": 9}], "n", lambda r: r["f"], 5) == {0}
