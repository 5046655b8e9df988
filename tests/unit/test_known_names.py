"""KnownNames: the agent names a process has seen committed, bounded, least recently seen forgotten first."""

from lrs.store.activities import KnownNames


def test_remembered_pairs_are_known_per_store_and_others_are_not() -> None:
    known = KnownNames()
    known.remember(1, [("mbox:mailto:ola@example.org", "Ola")])
    pairs = [("mbox:mailto:ola@example.org", "Ola"), ("mbox:mailto:ola@example.org", "Ola N."),
             ("mbox:mailto:kari@example.org", "Kari")]
    assert known.unknown(1, pairs) == pairs[1:]
    assert known.unknown(2, pairs) == pairs


def test_the_least_recently_seen_pairs_are_forgotten_beyond_the_limit() -> None:
    known = KnownNames(limit=2)
    known.remember(1, [("a", "A"), ("b", "B")])
    known.remember(1, [("c", "C")])
    assert known.unknown(1, [("a", "A"), ("b", "B"), ("c", "C")]) == [("a", "A")]
    known.remember(1, [("b", "B")])  # seen again: now the most recent
    known.remember(1, [("d", "D")])
    assert known.unknown(1, [("b", "B"), ("c", "C"), ("d", "D")]) == [("c", "C")]
