"""Which statements an erasure takes: the person's own (their actor), not others' that name them,
and which statements are voidings."""

from __future__ import annotations

from lrs.person_erasure import owned, voids
from tests.statements import agent, statement

OLA = {"account:https://id.example.org|emp-ola"}


def test_the_person_s_own_statements_are_those_they_are_the_actor_of() -> None:
    assert owned(statement("ola"), OLA)
    assert not owned(statement("kari"), OLA)
    # another's statement about them (an assessment) is the other's record
    assert not owned({**statement("kari"), "object": agent("ola")}, OLA)
    # others' records that name them elsewhere stay
    assert not owned(statement("kari", context={"instructor": agent("ola")}), OLA)
    assert not owned({**statement("kari"), "authority": agent("ola")}, OLA)
    team = {"objectType": "Group", "member": [agent("per"), agent("ola")]}
    assert not owned({**statement("per"), "actor": team}, OLA)
    assert not owned({**statement("per"), "object": team}, OLA)
    sub = {"objectType": "SubStatement", "actor": agent("ola"), "verb": {"id": "http://example.org/v"},
           "object": {"id": "http://example.org/a"}}
    assert not owned({**statement("kari"), "object": sub}, OLA)
    ref = {"actor": agent("per"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
           "object": {"objectType": "StatementRef", "id": "5d5f1c1e-0000-4000-8000-000000000001"}}
    assert not owned(ref, OLA)


def test_a_voiding_says_what_it_voids() -> None:
    target = "5D5F1C1E-0000-4000-8000-000000000001"
    voiding = {"actor": agent("ola"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
               "object": {"objectType": "StatementRef", "id": target}}
    assert voids(voiding) == target.lower()
    assert voids(statement("ola")) is None
