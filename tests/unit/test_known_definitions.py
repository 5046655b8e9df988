"""KnownDefinitions: what a process merged, kept only while the store's version is the one it knew."""

import orjson

from lrs.ops.principal import Principal
from lrs.ops.statements import Prepared, prepare
from lrs.store.activities import KnownDefinitions, definition_args
from tests.statements import statement

WHO = Principal(1, None, frozenset({"all"}), {"objectType": "Agent", "mbox": "mailto:lrs@example.org"}, "mbox:x")
COURSE = "https://courses.example.org/hand-hygiene"


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


def test_the_limit_counts_every_store() -> None:
    known = KnownDefinitions(limit=3)
    known.learn(1, before=0, after=1, merged={10: 100, 11: 110})
    known.learn(2, before=0, after=1, merged={10: 100})
    assert len(known) == 3
    known.learn(3, before=0, after=1, merged={12: 120})  # past the limit: the others go
    assert len(known) == 1 and known.version(1) == (None, {}) and known.version(3) == (1, {12: 120})


def _with_definition(title: str) -> Prepared:
    s = statement()
    s["object"]["definition"] = {"name": {"en-US": title}}
    return prepare(s, WHO, "1.0.3")


def test_an_activity_is_left_out_only_when_every_statement_gives_the_definition_known() -> None:
    """A group holding the known definition and another one for the same Activity sends both, in
    order (the later must win over the known one), and that fold is not kept as known."""
    known = KnownDefinitions()
    first = definition_args(1, [_with_definition("One")], None, known)
    known.learn(1, before=0, after=0, merged=first.merged)
    again = definition_args(1, [_with_definition("One"), _with_definition("One")], None, known)
    assert (again.defs, again.version) == (b"{}", 0)
    mixed = definition_args(1, [_with_definition("One"), _with_definition("Two")], None, known)
    assert mixed.version is None
    assert orjson.loads(mixed.defs)[COURSE]["name"] == {"en-US": "Two"}
    assert mixed.merged == {hash(COURSE): None}
    known.learn(1, before=0, after=0, merged=mixed.merged)
    assert definition_args(1, [_with_definition("One")], None, known).version is None
