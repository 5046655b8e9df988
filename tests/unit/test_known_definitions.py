"""KnownDefinitions: what a process merged, kept only while the store's version is the one it knew."""

from lrs.store.activities import KnownDefinitions


def test_an_append_at_the_known_version_adds_to_what_is_known() -> None:
    known = KnownDefinitions()
    known.learn(1, before=0, after=1, merged={10: 100})
    known.learn(1, before=1, after=2, merged={11: 110})
    assert known.version(1) == (2, {10: 100, 11: 110})
    assert known.version(2) == (None, {})


def test_an_append_after_another_writer_keeps_only_its_own() -> None:
    known = KnownDefinitions()
    known.learn(1, before=0, after=1, merged={10: 100})
    known.learn(1, before=5, after=6, merged={11: 110})  # versions 1..5 were someone else's
    assert known.version(1) == (6, {11: 110})


def test_a_fold_of_several_definitions_is_not_kept() -> None:
    known = KnownDefinitions()
    known.learn(1, before=0, after=1, merged={10: 100, 11: 110})
    known.learn(1, before=1, after=2, merged={10: None})
    assert known.version(1) == (2, {11: 110})


def test_over_the_limit_only_the_last_append_is_kept() -> None:
    known = KnownDefinitions(limit=2)
    known.learn(1, before=0, after=1, merged={10: 100, 11: 110})
    known.learn(1, before=1, after=2, merged={12: 120})
    assert known.version(1) == (2, {12: 120})


def test_forgetting_one_store_or_all() -> None:
    known = KnownDefinitions()
    known.learn(1, before=0, after=1, merged={10: 100})
    known.learn(2, before=0, after=1, merged={10: 100})
    known.forget(1)
    assert known.version(1) == (None, {}) and known.version(2) == (1, {10: 100})
    known.forget()
    assert known.version(2) == (None, {})
