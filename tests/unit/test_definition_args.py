"""What an append merges into the canonical definitions and agent names
(``lrs.store.activities.definition_args``): which agents' names, which Activities' definitions,
in which order."""

from __future__ import annotations

import orjson

from lrs.ops.principal import Principal
from lrs.ops.statements import prepare
from lrs.store.activities import definition_args

AUTHORITY = {"objectType": "Agent", "name": "The App",
             "account": {"homePage": "https://spor.example.org", "name": "app"}}
WHO = Principal(1, None, frozenset({"statements/write"}), AUTHORITY, "account:https://spor.example.org|app")


def _statement() -> dict:
    return {
        "actor": {"objectType": "Group", "name": "Anonymous group",
                  "member": [{"mbox": "mailto:kari@example.org", "name": "Kari"},
                             {"account": {"homePage": "https://id.example.org", "name": "emp-ola"}, "name": "Ola"}]},
        "verb": {"id": "http://example.org/verbs/planned"},
        "object": {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:siri@example.org", "name": "Siri"},
            "verb": {"id": "http://example.org/verbs/taught"},
            "object": {"objectType": "Agent", "mbox": "mailto:per@example.org", "name": "Per"},
            "context": {"instructor": {"mbox": "mailto:ida@example.org", "name": "Ida"},
                        "contextActivities": {"parent": [{"id": "https://courses.example.org/a",
                                                          "definition": {"name": {"en-US": "first"}}}]}},
        },
        "context": {
            "team": {"objectType": "Group", "name": "Ward 7", "mbox": "mailto:ward7@example.org",
                     "member": [{"mbox": "mailto:liv@example.org", "name": "Liv"}, {"mbox": "mailto:x@example.org"}]},
            "contextActivities": {"other": {"id": "https://courses.example.org/a",
                                            "definition": {"name": {"en-US": "second"}}},
                                  "grouping": [{"id": "https://courses.example.org/b", "definition": {}}]},
        },
    }


def test_names_of_every_identified_agent_named_but_not_the_authority() -> None:
    """The actor's members (an anonymous group has no key of its own), a SubStatement's actor,
    Agent object and instructor, the team and its members; not an agent without a name, not
    the authority (the LRS's own)."""
    args = definition_args(1, [prepare(_statement(), WHO, "1.0.3")])
    assert args.names == [
        ("mbox:mailto:kari@example.org", "Kari"), ("account:https://id.example.org|emp-ola", "Ola"),
        ("mbox:mailto:siri@example.org", "Siri"), ("mbox:mailto:per@example.org", "Per"),
        ("mbox:mailto:ida@example.org", "Ida"), ("mbox:mailto:ward7@example.org", "Ward 7"),
        ("mbox:mailto:liv@example.org", "Liv"),
    ]


def test_definitions_fold_in_order_and_empty_ones_are_left_out() -> None:
    """A SubStatement's context activities come before the statement's own: the later one of two
    definitions of an Activity wins a language the two give."""
    args = definition_args(1, [prepare(_statement(), WHO, "1.0.3")])
    assert orjson.loads(args.defs) == {"https://courses.example.org/a": {"name": {"en-US": "second"}}}
    assert len(args.merged) == 1
