"""KnownNames: the agent names a process has seen committed, bounded, the pairs not seen lately forgotten first."""

from lrs.store.activities import KnownNames


def test_remembered_pairs_are_known_per_store_and_others_are_not() -> None:
    known = KnownNames()
    known.remember(1, [("mbox:mailto:ola@example.org", "Ola")])
    pairs = [("mbox:mailto:ola@example.org", "Ola"), ("mbox:mailto:ola@example.org", "Ola N."),
             ("mbox:mailto:kari@example.org", "Kari")]
    assert known.unknown(1, pairs) == pairs[1:]
    assert known.unknown(2, pairs) == pairs


def test_beyond_the_limit_the_pairs_not_seen_lately_are_forgotten_and_the_size_stays_bounded() -> None:
    known = KnownNames(limit=4)  # two generations of two
    known.remember(1, [("a", "A"), ("b", "B")])
    known.remember(1, [("c", "C"), ("d", "D")])  # a, b now the older generation
    assert known.unknown(1, [("a", "A")]) == []  # found in the older: moves to the newer
    known.remember(1, [("e", "E")])
    # b went with its generation; a, found since, and e, the newest, stay
    assert known.unknown(1, [("b", "B")]) == [("b", "B")]
    assert known.unknown(1, [("a", "A"), ("e", "E")]) == []
    known.remember(1, [(str(i), "x") for i in range(100)])
    assert len(known) <= 4
