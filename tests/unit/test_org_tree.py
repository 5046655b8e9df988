"""The organisation tree an import leaves: parents that exist on the date, no unit its own ancestor."""

from projections.org_tree import Version, problems


def v(unit: str, parent: str | None, since: str = "2020-01-01", line: int | None = None) -> Version:
    return Version(unit, since, parent, line)


def test_a_tree_whose_parents_exist_on_each_date_is_fine() -> None:
    new = [v("1", None, line=2), v("10", "1", line=3), v("100", "10", "2021-01-01", line=4)]
    assert problems(new, []) == []
    # moving a unit under another trust later is a new version, still a tree
    assert problems([*new, v("11", "1", line=5), v("100", "11", "2024-01-01", line=6)], []) == []


def test_a_unit_may_not_be_its_own_parent() -> None:
    assert problems([v("1", "1", line=2)], None) == [(2, "a unit cannot be its own parent")]


def test_a_parent_that_is_no_unit_is_refused_when_the_store_is_known() -> None:
    new = [v("10", "1", line=2)]
    assert problems(new, None) == []  # the file alone cannot tell
    assert problems(new, []) == [(2, "unit 1 is neither in this file nor stored")]
    assert problems(new, [v("1", None)]) == []  # stored


def test_a_parent_without_a_version_on_the_date_is_refused() -> None:
    new = [v("1", None, "2024-01-01", line=2), v("10", "1", "2020-01-01", line=3)]
    assert problems(new, []) == [(3, "unit 1 has no version on or before 2020-01-01 (its first is from 2024-01-01)")]


def test_a_cycle_is_named_once_at_the_first_line_taking_part() -> None:
    new = [v("1", "3", line=2), v("2", "1", line=3), v("3", "2", line=4), v("9", "1", line=5)]
    assert problems(new, []) == [(2, "makes a cycle on 2020-01-01: 1 → 3 → 2 → 1")]


def test_cycles_are_judged_with_the_store_only() -> None:
    """The file alone can look cyclic where a stored version it does not repeat moves a unit
    away: D under V (2020), under T from 2022 (stored); the file repeats D@2020 and puts V
    under D from 2024."""
    stored = [v("T", None), v("V", None), v("D", "V"), v("D", "T", "2022-01-01")]
    new = [v("D", "V", line=2), v("V", "D", "2024-01-01", line=3)]
    assert problems(new, None) == []
    assert problems(new, stored) == []
    assert problems(new, [v("T", None), v("V", None), v("D", "V")]) == [
        (2, "makes a cycle on 2024-01-01: V → D → V")]


def test_a_cycle_that_only_exists_from_a_later_date_is_found_on_that_date() -> None:
    stored = [v("1", None), v("10", "1")]
    # the file puts the region under its own trust from 2025
    new = [v("1", "10", "2025-01-01", line=7)]
    assert problems(new, stored) == [(7, "makes a cycle on 2025-01-01: 1 → 10 → 1")]


def test_a_cycle_of_stored_versions_alone_is_not_this_files_doing_and_a_file_may_mend_it() -> None:
    stored = [v("1", "2"), v("2", "1"), v("3", None)]
    assert problems([v("4", "3", line=2)], stored) == []
    # the same key (unit and date) in the file replaces the stored version
    assert problems([v("2", "3", line=2)], stored) == []
