"""Accept/reject corpus for xAPI statement validation (1.0.3 and 2.0.0).

Each case starts from a base statement, applies a small mutation and says whether the LRS must
accept it (``path is None``) or reject it with an error at ``path``. Coverage follows the MUSTs
of the xAPI data model and the kinds of statements the ADL LRS conformance suite sends (its
templates/configs were read to learn which statements must be accepted and which rejected; no
data was copied). All people, e-mail addresses and accounts are invented.

Load with ``cases()``, which returns a fresh list of :class:`Case` (statements are deep copies).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Stmt = dict[str, Any]
BOTH = ("1.0.3", "2.0.0")
V1 = ("1.0.3",)
V2 = ("2.0.0",)

UUID_A = "6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f"
UUID_B = "0b9c2a8e-3f1d-4e6a-8b7c-5d4e3f2a1b0c"
SHA2 = "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a"

AGENT_MBOX = {"objectType": "Agent", "name": "Kari Testdatter", "mbox": "mailto:kari.testdatter@example.org"}
AGENT_SHA1 = {"name": "Per Prøvesen", "mbox_sha1sum": "cd9b00a5611f94eaa7b1661edab976068e364975"}
AGENT_OPENID = {"objectType": "Agent", "openid": "https://openid.example.org/ola.oppdiktet"}
AGENT_ACCOUNT = {
    "objectType": "Agent",
    "name": "Nora Fiktiv",
    "account": {"homePage": "https://idp.example.org", "name": "nora.fiktiv"},
}
GROUP_IDENTIFIED = {
    "objectType": "Group",
    "name": "Akuttmottak team 3",
    "mbox": "mailto:team3@example.org",
    "member": [AGENT_MBOX, AGENT_ACCOUNT],
}
GROUP_ANONYMOUS = {"objectType": "Group", "member": [AGENT_MBOX, AGENT_SHA1]}
OAUTH_AUTHORITY = {
    "objectType": "Group",
    "member": [
        {"account": {"homePage": "https://lrs.example.org/oauth/token", "name": "kursbyggeren-app"}},
        {"mbox": "mailto:kari.testdatter@example.org"},
    ],
}
VERB = {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed", "nb-NO": "fullførte"}}
ACTIVITY = {"objectType": "Activity", "id": "https://kurs.example.org/activities/hlr-grunnkurs/modul-3"}


def minimal() -> Stmt:
    """The smallest valid statement: actor, verb, object."""
    return {
        "actor": {"mbox": "mailto:kari.testdatter@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
        "object": {"id": "https://kurs.example.org/activities/hlr-grunnkurs"},
    }


def typical() -> Stmt:
    """A typical ~1.5 KB statement with result, context and extensions (also used by bench)."""
    return {
        "id": UUID_A,
        "actor": copy.deepcopy(AGENT_ACCOUNT),
        "verb": copy.deepcopy(VERB),
        "object": {
            "objectType": "Activity",
            "id": "https://kurs.example.org/activities/hlr-grunnkurs/modul-3",
            "definition": {
                "type": "http://adlnet.gov/expapi/activities/module",
                "name": {"en-US": "CPR basics, module 3", "nb-NO": "HLR grunnkurs, modul 3"},
                "description": {"en-US": "Chest compressions and rescue breaths"},
                "extensions": {"https://kurs.example.org/xapi/ext/estimated-minutes": 25},
            },
        },
        "result": {
            "score": {"scaled": 0.85, "raw": 85, "min": 0, "max": 100},
            "success": True,
            "completion": True,
            "duration": "PT24M13.5S",
            "extensions": {"https://kurs.example.org/xapi/ext/attempt": 2},
        },
        "context": {
            "registration": UUID_B,
            "instructor": {"objectType": "Agent", "name": "Ola Instruktørsen", "mbox": "mailto:ola.i@example.org"},
            "contextActivities": {
                "parent": [{"id": "https://kurs.example.org/activities/hlr-grunnkurs", "objectType": "Activity"}],
                "grouping": [{"id": "https://kurs.example.org/programs/akuttmedisin"}],
                "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/moveon"}],
            },
            "platform": "Kursbyggeren 4.2",
            "language": "nb-NO",
            "extensions": {
                "https://w3id.org/xapi/cmi5/context/extensions/sessionid": "c1a7e0b2-5d3f-4a8e-9b1c-2e3f4a5b6c7d",
                "https://kurs.example.org/xapi/ext/org-unit": "HSO/OUS/akutt",
            },
        },
        "timestamp": "2024-05-04T12:00:00.123+02:00",
    }


def substatement() -> Stmt:
    """A statement whose object is a SubStatement with its own result and context."""
    s = minimal()
    s["verb"] = {"id": "https://example.org/verbs/planned", "display": {"en": "planned"}}
    s["object"] = {
        "objectType": "SubStatement",
        "actor": copy.deepcopy(AGENT_SHA1),
        "verb": copy.deepcopy(VERB),
        "object": copy.deepcopy(ACTIVITY),
        "result": {"score": {"scaled": 0.5}, "duration": "PT1H"},
        "context": {"registration": UUID_B, "platform": "Kursbyggeren", "revision": "2"},
        "timestamp": "2031-01-01T09:00:00Z",
    }
    return s


def interaction(kind: Any, **extra: Any) -> Stmt:
    """A statement whose Activity is an interaction of the given type."""
    s = minimal()
    definition: dict[str, Any] = {
        "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
        "interactionType": kind,
        "correctResponsesPattern": ["a[,]b"],
    }
    definition.update(extra)
    s["object"]["definition"] = definition
    return s


def components(*ids: str) -> list[dict[str, Any]]:
    """An interaction component list with the given ids."""
    return [{"id": i, "description": {"en-US": f"Option {i}"}} for i in ids]


def attachment(**changes: Any) -> dict[str, Any]:
    """A valid attachment description, with changes (a value of ``...`` deletes the key)."""
    a: dict[str, Any] = {
        "usageType": "https://example.org/attachment-usage/certificate",
        "display": {"en-US": "Course certificate"},
        "description": {"en-US": "Certificate of completion"},
        "contentType": "application/pdf",
        "length": 27,
        "sha2": SHA2,
        "fileUrl": "https://files.example.org/cert.pdf",
    }
    for key, value in changes.items():
        if value is ...:
            a.pop(key, None)
        else:
            a[key] = value
    return a


@dataclass
class Case:
    """One corpus entry. ``path`` is None for statements that must be accepted."""

    name: str
    statement: Any
    versions: tuple[str, ...] = BOTH
    path: str | None = None
    #: Part of the schema verdict (False when only a Python semantic check rejects it).
    schema_level: bool = True
    tags: list[str] = field(default_factory=list)

    @property
    def accept(self) -> bool:
        return self.path is None


def _set(path: str, value: Any) -> Callable[[Stmt], None]:
    """Mutation that sets a dotted path (``a.b.0.c``); ``...`` deletes the key."""

    def apply(stmt: Stmt) -> None:
        parts = path.split(".")
        node: Any = stmt
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is ...:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)

    return apply


def _mk(base: Callable[[], Stmt], *mutations: Callable[[Stmt], None]) -> Stmt:
    s = base()
    for m in mutations:
        m(s)
    return s


def cases() -> list[Case]:
    """Every corpus case (fresh deep copies)."""
    out: list[Case] = []

    def ok(name: str, stmt: Any, versions: tuple[str, ...] = BOTH) -> None:
        out.append(Case(name, stmt, versions))

    def bad(name: str, stmt: Any, path: str, versions: tuple[str, ...] = BOTH, schema_level: bool = True) -> None:
        out.append(Case(name, stmt, versions, path, schema_level))

    # --- whole statements -------------------------------------------------------------------
    ok("minimal statement", minimal())
    ok("typical statement", typical())
    ok("substatement with result, context and future timestamp", substatement())
    ok(
        "all top-level properties",
        _mk(
            typical,
            _set("stored", "2024-05-04T10:00:01.000Z"),
            _set("authority", AGENT_MBOX),
            _set("version", "1.0.0"),
            _set("attachments", [attachment()]),
        ),
    )
    bad("not an object", ["actor"], "")
    bad("missing actor", _mk(minimal, _set("actor", ...)), "actor")
    bad("missing verb", _mk(minimal, _set("verb", ...)), "verb")
    bad("missing object", _mk(minimal, _set("object", ...)), "object")
    bad("unknown top-level property", _mk(minimal, _set("foo", 1)), "foo")
    bad("key case must match (Actor)", _mk(minimal, _set("Verb", VERB)), "Verb")
    bad("key in another case, the right one missing", _mk(minimal, _set("Verb", VERB), _set("verb", ...)), "Verb")
    bad("null value outside extensions", _mk(typical, _set("result.success", None)), "result.success")

    # --- id / uuids --------------------------------------------------------------------------
    ok("upper-case uuid", _mk(minimal, _set("id", UUID_A.upper())))
    ok("nil uuid (variant not enforced)", _mk(minimal, _set("id", "00000000-0000-0000-0000-000000000000")))
    bad("id too long", _mk(minimal, _set("id", UUID_A + "8")), "id")
    bad("id with non-hex digit", _mk(minimal, _set("id", "M" + UUID_A[1:])), "id")
    bad("id without dashes", _mk(minimal, _set("id", UUID_A.replace("-", ""))), "id")
    bad("id number", _mk(minimal, _set("id", 12345)), "id")
    bad("registration not uuid", _mk(typical, _set("context.registration", "reg-1")), "context.registration")

    # --- actor: agents -----------------------------------------------------------------------
    for label, agent in [
        ("mbox", AGENT_MBOX),
        ("mbox_sha1sum", AGENT_SHA1),
        ("openid", AGENT_OPENID),
        ("account", AGENT_ACCOUNT),
    ]:
        ok(f"actor agent identified by {label}", _mk(minimal, _set("actor", agent)))
    bad("agent without identifier", _mk(minimal, _set("actor", {"name": "Ingen Identitet"})), "actor")
    bad(
        "agent with two identifiers",
        _mk(minimal, _set("actor", {**AGENT_MBOX, "openid": "https://id.example.org/k"})),
        "actor",
    )
    bad("mbox without mailto", _mk(minimal, _set("actor.mbox", "kari@example.org")), "actor.mbox")
    bad("mbox http IRI", _mk(minimal, _set("actor.mbox", "http://should.fail.example.org")), "actor.mbox")
    bad("mbox without address", _mk(minimal, _set("actor.mbox", "mailto:should.fail.example.org")), "actor.mbox")
    bad("mbox_sha1sum 39 hex", _mk(minimal, _set("actor", {"mbox_sha1sum": "a" * 39})), "actor.mbox_sha1sum")
    bad("mbox_sha1sum non-hex", _mk(minimal, _set("actor", {"mbox_sha1sum": "g" * 40})), "actor.mbox_sha1sum")
    bad("mbox_sha1sum object", _mk(minimal, _set("actor", {"mbox_sha1sum": {"k": "v"}})), "actor.mbox_sha1sum")
    bad("openid without scheme", _mk(minimal, _set("actor", {"openid": "openid.example.org/kari"})), "actor.openid")
    bad(
        "account without homePage", _mk(minimal, _set("actor", {"account": {"name": "kari"}})), "actor.account.homePage"
    )
    bad(
        "account without name",
        _mk(minimal, _set("actor", {"account": {"homePage": "https://idp.example.org"}})),
        "actor.account.name",
    )
    bad(
        "account homePage without scheme",
        _mk(minimal, _set("actor", {"account": {"homePage": "idp.example.org/x", "name": "k"}})),
        "actor.account.homePage",
    )
    bad(
        "account unknown property",
        _mk(minimal, _set("actor", {"account": {"homePage": "https://idp.example.org", "name": "k", "id": 1}})),
        "actor.account.id",
    )
    bad("agent unknown property", _mk(minimal, _set("actor.age", 41)), "actor.age")
    bad("agent objectType wrong case", _mk(minimal, _set("actor.objectType", "agent")), "actor.objectType")
    bad("agent name not string", _mk(minimal, _set("actor.name", 7)), "actor.name")

    # --- actor: groups -----------------------------------------------------------------------
    ok("identified group actor", _mk(minimal, _set("actor", GROUP_IDENTIFIED)))
    ok(
        "identified group without members",
        _mk(
            minimal,
            _set("actor", {"objectType": "Group", "account": {"homePage": "https://hr.example.org", "name": "avd-42"}}),
        ),
    )
    ok("anonymous group actor", _mk(minimal, _set("actor", GROUP_ANONYMOUS)))
    ok("anonymous group with empty member list", _mk(minimal, _set("actor", {"objectType": "Group", "member": []})))
    bad("anonymous group without member", _mk(minimal, _set("actor", {"objectType": "Group", "name": "Tom"})), "actor")
    bad(
        "group with two identifiers",
        _mk(minimal, _set("actor", {**GROUP_IDENTIFIED, "openid": "https://g.example.org"})),
        "actor",
    )
    bad(
        "group member is a group",
        _mk(minimal, _set("actor", {"objectType": "Group", "member": [GROUP_IDENTIFIED]})),
        "actor.member[0].objectType",
    )
    bad(
        "group member invalid agent",
        _mk(minimal, _set("actor", {"objectType": "Group", "member": [AGENT_MBOX, {"mbox": "x"}]})),
        "actor.member[1].mbox",
    )
    bad("group mbox invalid", _mk(minimal, _set("actor", {**GROUP_IDENTIFIED, "mbox": "mailto:nope"})), "actor.mbox")
    bad(
        "group member not array",
        _mk(minimal, _set("actor", {"objectType": "Group", "member": AGENT_MBOX})),
        "actor.member",
    )

    # --- verb --------------------------------------------------------------------------------
    ok("verb without display", _mk(minimal, _set("verb", {"id": "http://adlnet.gov/expapi/verbs/attempted"})))
    ok("urn verb id", _mk(minimal, _set("verb.id", "urn:x-spor:verb:practised")))
    bad("verb without id", _mk(minimal, _set("verb", {"display": {"en": "did"}})), "verb.id")
    bad("verb id without scheme", _mk(minimal, _set("verb.id", "adlnet.gov/expapi/verbs/attempted")), "verb.id")
    bad("verb id with space", _mk(minimal, _set("verb.id", "http://example.org/verb s")), "verb.id")
    bad("verb display is a string", _mk(typical, _set("verb.display", "completed")), "verb.display")
    bad(
        "verb display invalid language tag",
        _mk(typical, _set("verb.display", {"a12345678": "x"})),
        "verb.display.a12345678",
    )
    bad("verb display underscore tag", _mk(typical, _set("verb.display", {"en_US": "x"})), "verb.display.en_US")
    bad("verb display value not string", _mk(typical, _set("verb.display", {"en-US": 5})), 'verb.display["en-US"]')
    bad("verb unknown property", _mk(typical, _set("verb.name", "completed")), "verb.name")

    # --- language tags -----------------------------------------------------------------------
    for tag in [
        "en",
        "nb-NO",
        "zh-Hant-TW",
        "es-419",
        "de-CH-1996",
        "sr-Latn-RS",
        "en-US-x-twain",
        "x-klingon",
        "i-klingon",
        "und",
        "sgn-BE-FR",
        "zh-yue-HK",
    ]:
        ok(f"language tag {tag}", _mk(typical, _set("verb.display", {tag: "completed"})))
    for tag in ["", "e", "engl1sh", "en-", "en--US", "123", "en-US-x", "x"]:
        bad(
            f"invalid language tag {tag!r}",
            _mk(typical, _set("object.definition.name", {tag: "n"})),
            f"object.definition.name.{tag}" if tag.isidentifier() else f'object.definition.name["{tag}"]',
        )
    bad("context.language invalid", _mk(typical, _set("context.language", "norsk bokmål")), "context.language")

    # --- object: activity --------------------------------------------------------------------
    ok("activity without objectType", _mk(minimal, _set("object", {"id": "https://example.org/a"})))
    ok("activity id with query and fragment", _mk(minimal, _set("object.id", "https://example.org/a?x=1#part-2")))
    ok("activity id with non-ASCII IRI characters", _mk(minimal, _set("object.id", "https://kurs.example.org/øvelse")))
    ok("activity id with a zero-width space (an IRI ucschar)", _mk(minimal, _set("object.id", "https://k.example.org/a\u200bb")))
    for name, char in (("C0 control", "\x01"), ("DEL", "\x7f"), ("C1 control", "\x85"), ("escape", "\x1b")):
        bad(f"activity id with a {name}", _mk(minimal, _set("object.id", f"https://k.example.org/{char}")), "object.id")
        bad(f"verb id with a {name}", _mk(minimal, _set("verb.id", f"http://example.org/verbs/x{char}")), "verb.id")
    bad("homePage with a control character", _mk(minimal, _set("actor", {"account": {
        "homePage": "https://id.example.org/\x02", "name": "emp-1"}})), "actor.account.homePage")
    bad("activity without id", _mk(typical, _set("object.id", ...)), "object.id")
    bad("activity id without scheme", _mk(minimal, _set("object.id", "www.example.org/a")), "object.id")
    bad("activity id relative", _mk(minimal, _set("object.id", "/activities/a")), "object.id")
    bad("activity objectType wrong case", _mk(minimal, _set("object.objectType", "activity")), "object.objectType")
    bad("unknown objectType", _mk(minimal, _set("object.objectType", "Course")), "object.objectType")
    bad("definition not object", _mk(minimal, _set("object.definition", "should error")), "object.definition")
    bad("definition type not IRI", _mk(typical, _set("object.definition.type", "module")), "object.definition.type")
    bad(
        "definition moreInfo not IRL",
        _mk(typical, _set("object.definition.moreInfo", "should error")),
        "object.definition.moreInfo",
    )
    bad("definition name numeric", _mk(typical, _set("object.definition.name", 1234)), "object.definition.name")
    bad(
        "definition description string",
        _mk(typical, _set("object.definition.description", "text")),
        "object.definition.description",
    )
    bad("definition unknown property", _mk(typical, _set("object.definition.level", 2)), "object.definition.level")
    bad("activity unknown property", _mk(typical, _set("object.name", "x")), "object.name")
    bad("agent as object needs objectType", _mk(minimal, _set("object", {"mbox": "mailto:a@example.org"})), "object.id")

    # --- object: agent / group / statementref ------------------------------------------------
    ok("agent as object", _mk(minimal, _set("object", AGENT_MBOX)))
    ok("group as object", _mk(minimal, _set("object", GROUP_ANONYMOUS)))
    ok("statementref as object", _mk(minimal, _set("object", {"objectType": "StatementRef", "id": UUID_B})))
    bad(
        "agent object invalid",
        _mk(minimal, _set("object", {"objectType": "Agent", "mbox": "x@example.org"})),
        "object.mbox",
    )
    bad(
        "statementref id not uuid", _mk(minimal, _set("object", {"objectType": "StatementRef", "id": "x"})), "object.id"
    )
    bad("statementref without id", _mk(minimal, _set("object", {"objectType": "StatementRef"})), "object.id")
    bad(
        "statementref unknown property",
        _mk(minimal, _set("object", {"objectType": "StatementRef", "id": UUID_B, "verb": VERB})),
        "object.verb",
    )

    # --- object: substatement ----------------------------------------------------------------
    ok(
        "substatement with agent object",
        _mk(substatement, _set("object.object", AGENT_ACCOUNT), _set("object.context", {"registration": UUID_A})),
    )
    ok("substatement with attachments", _mk(substatement, _set("object.attachments", [attachment()])))
    for key, value in [
        ("id", UUID_A),
        ("stored", "2024-05-04T12:00:00Z"),
        ("version", "1.0.0"),
        ("authority", AGENT_MBOX),
    ]:
        bad(f"substatement with {key}", _mk(substatement, _set(f"object.{key}", value)), f"object.{key}")
    bad(
        "nested substatement",
        _mk(substatement, _set("object.object", substatement()["object"])),
        "object.object.objectType",
    )
    bad("substatement without verb", _mk(substatement, _set("object.verb", ...)), "object.verb")
    bad("substatement actor invalid", _mk(substatement, _set("object.actor", {"mbox": "kari"})), "object.actor.mbox")
    bad(
        "substatement timestamp invalid", _mk(substatement, _set("object.timestamp", "01/011/2015")), "object.timestamp"
    )
    bad(
        "substatement duration invalid",
        _mk(substatement, _set("object.result.duration", "PA1H")),
        "object.result.duration",
    )
    bad(
        "substatement score above max",
        _mk(substatement, _set("object.result.score", {"raw": 11, "max": 10})),
        "object.result.score.raw",
        schema_level=False,
    )
    bad(
        "substatement revision with agent object",
        _mk(substatement, _set("object.object", AGENT_MBOX)),
        "object.context.platform",
    )

    # --- result ------------------------------------------------------------------------------
    ok("result with only extensions", _mk(minimal, _set("result", {"extensions": {"https://e.example.org/x": None}})))
    ok("score scaled -1", _mk(typical, _set("result.score", {"scaled": -1})))
    ok("score scaled 1.0", _mk(typical, _set("result.score", {"scaled": 1.0})))
    ok("score raw equals min", _mk(typical, _set("result.score", {"raw": 5, "min": 5, "max": 6})))
    ok("score raw equals max", _mk(typical, _set("result.score", {"raw": 6, "min": 5, "max": 6})))
    ok(
        "score decimals",
        _mk(typical, _set("result.score", {"scaled": 0.6767676, "raw": 0.6767676, "min": 0, "max": 100.6767676})),
    )
    ok("score raw without bounds", _mk(typical, _set("result.score", {"raw": -1e6})))
    bad("score not object", _mk(typical, _set("result.score", 12345)), "result.score")
    bad("scaled above 1", _mk(typical, _set("result.score.scaled", 1.01)), "result.score.scaled")
    bad("scaled below -1", _mk(typical, _set("result.score.scaled", -1.00001)), "result.score.scaled")
    bad("scaled string", _mk(typical, _set("result.score.scaled", "0.5")), "result.score.scaled")
    bad("raw above max", _mk(typical, _set("result.score.raw", 101)), "result.score.raw", schema_level=False)
    bad("raw below min", _mk(typical, _set("result.score.min", 90)), "result.score.raw", schema_level=False)
    bad(
        "min above max",
        _mk(typical, _set("result.score", {"min": 10, "max": 1})),
        "result.score.min",
        schema_level=False,
    )
    bad(  # Data 2.4.5.1 table: min is a "Decimal number less than max"
        "min equal to max",
        _mk(typical, _set("result.score", {"raw": 5, "min": 5, "max": 5})),
        "result.score.min",
        schema_level=False,
    )
    bad("score unknown property", _mk(typical, _set("result.score.percent", 85)), "result.score.percent")
    bad("success not boolean", _mk(typical, _set("result.success", "true")), "result.success")
    bad("completion not boolean", _mk(typical, _set("result.completion", 1)), "result.completion")
    bad("response not string", _mk(typical, _set("result.response", 42)), "result.response")
    bad("result unknown property", _mk(typical, _set("result.passed", True)), "result.passed")

    # --- durations (Data 4.6) ----------------------------------------------------------------
    for d in [
        "PT1H0M0.1S",
        "PT4H35M59.14S",
        "PT16559.14S",
        "P3Y1M29DT4H35M59.14S",
        "P3Y",
        "P4W",
        "PT0S",
        "P1DT12H36M0.12567S",
        "PT1.5H",
        "P1Y2M",
        "PT1M30S",
        "P0.5W",
    ]:
        ok(f"duration {d}", _mk(typical, _set("result.duration", d)))
    for d in [
        "should fail",
        "PA1H0M0S",
        "P4W1D",
        "P",
        "PT",
        "1H",
        "PT1.5H30M",
        "P1DT",
        "pt1h",
        "P-1D",
        "P0003-01-29T04:35:59",
    ]:
        bad(f"duration {d!r}", _mk(typical, _set("result.duration", d)), "result.duration")
    bad("duration numeric", _mk(typical, _set("result.duration", 12345)), "result.duration")

    # --- timestamps (Data 4.5) ---------------------------------------------------------------
    for ts in [
        "2024-05-04T12:00:00Z",
        "2024-05-04T12:00:00.123Z",
        "2008-09-15T15:53:00.601+00:00",
        "2024-05-04T12:00:00-05:00",
        "2024-05-04T12:00:00.123456789+14:00",
        "2024-02-29T23:59:59Z",
        "2031-11-26T05:36:23.777Z",
        "2024-05-04T12:00:00-00:30",
    ]:
        ok(f"timestamp {ts}", _mk(minimal, _set("timestamp", ts)))
    for ts in ["2024-05-04T12:00:00", "20240504T120000Z", "2024-05-04T12:00Z", "2024-05-04T12:00:00+0200"]:
        ok(f"ISO 8601 timestamp {ts} (1.0.3)", _mk(minimal, _set("timestamp", ts)), V1)
        bad(f"non-RFC 3339 timestamp {ts} (2.0.0)", _mk(minimal, _set("timestamp", ts)), "timestamp", V2)
    for ts in [
        "should fail",
        "01/011/2015",
        "2008-09-15T15:53:00.601-00",
        "2008-09-15T15:53:00.601-0000",
        "2008-09-15T15:53:00.601-00:00",
        "2024-13-01T00:00:00Z",
        "2024-05-04 12:00:00Z",
        "2024-05-04",
        "2024-05-04T25:00:00Z",
    ]:
        bad(f"timestamp {ts!r}", _mk(minimal, _set("timestamp", ts)), "timestamp")
    bad(
        "timestamp day not in month",
        _mk(minimal, _set("timestamp", "2023-02-29T10:00:00Z")),
        "timestamp",
        schema_level=False,
    )
    bad("timestamp numeric", _mk(minimal, _set("timestamp", 1714824000)), "timestamp")
    bad("stored invalid", _mk(minimal, _set("stored", "yesterday")), "stored")

    # --- context -----------------------------------------------------------------------------
    ok(
        "contextActivities single objects",
        _mk(
            typical,
            _set(
                "context.contextActivities",
                {
                    "parent": {"id": "https://example.org/p"},
                    "other": {"objectType": "Activity", "id": "https://example.org/o"},
                },
            ),
        ),
    )
    ok(
        "contextActivity with interaction definition",
        _mk(
            typical,
            _set(
                "context.contextActivities.other",
                [
                    {
                        "id": "https://example.org/q1",
                        "definition": {"interactionType": "choice", "choices": components("a", "b")},
                    }
                ],
            ),
        ),
    )
    ok(
        "context team and group instructor",
        _mk(typical, _set("context.team", GROUP_ANONYMOUS), _set("context.instructor", GROUP_IDENTIFIED)),
    )
    ok("context statement ref", _mk(typical, _set("context.statement", {"objectType": "StatementRef", "id": UUID_A})))
    ok(
        "revision with activity object (no objectType)",
        _mk(minimal, _set("context", {"revision": "3", "platform": "iPad"})),
    )
    bad(
        "revision with agent object",
        _mk(minimal, _set("object", AGENT_MBOX), _set("context", {"revision": "3"})),
        "context.revision",
    )
    bad(
        "platform with statementref object",
        _mk(typical, _set("object", {"objectType": "StatementRef", "id": UUID_B})),
        "context.platform",
    )
    bad(
        "contextActivities unknown key",
        _mk(typical, _set("context.contextActivities.sibling", [])),
        "context.contextActivities.sibling",
    )
    bad(
        "contextActivities value string",
        _mk(typical, _set("context.contextActivities.parent", "https://e.org/p")),
        "context.contextActivities.parent",
    )
    bad(
        "contextActivity id not IRI",
        _mk(typical, _set("context.contextActivities.parent.0.id", "p1")),
        "context.contextActivities.parent[0].id",
    )
    bad(
        "contextActivity duplicate component ids",
        _mk(
            typical,
            _set(
                "context.contextActivities.other",
                [
                    {
                        "id": "https://example.org/q1",
                        "definition": {"interactionType": "choice", "choices": components("a", "a")},
                    }
                ],
            ),
        ),
        "context.contextActivities.other[0].definition.choices[1].id",
        schema_level=False,
    )
    bad("team is an agent", _mk(typical, _set("context.team", AGENT_MBOX)), "context.team.objectType")
    bad(
        "instructor invalid",
        _mk(typical, _set("context.instructor.mbox", "ola@example.org")),
        "context.instructor.mbox",
    )
    bad(
        "context statement without objectType",
        _mk(typical, _set("context.statement", {"id": UUID_A})),
        "context.statement.objectType",
    )
    bad("context unknown property", _mk(typical, _set("context.location", "Oslo")), "context.location")
    bad("context revision not string", _mk(minimal, _set("context", {"revision": 3})), "context.revision")

    # --- extensions (Data 4.1) ---------------------------------------------------------------
    ok(
        "extension values may be anything",
        _mk(
            typical,
            _set(
                "context.extensions",
                {"https://e.example.org/a": None, "https://e.example.org/b": [1, {"x": None}], "urn:e:c": "X:\\dir"},
            ),
        ),
    )
    bad(
        "extension key not IRI",
        _mk(typical, _set("result.extensions", {"not an iri": 1})),
        'result.extensions["not an iri"]',
    )
    bad(
        "activity extension key without scheme",
        _mk(typical, _set("object.definition.extensions", {"id": "v"})),
        "object.definition.extensions.id",
    )
    bad("extensions not object", _mk(typical, _set("context.extensions", "should error")), "context.extensions")

    # --- interaction activities (Data 2.4.4.1) ------------------------------------------------
    ok("true-false interaction", interaction("true-false", correctResponsesPattern=["true"]))
    ok("choice interaction", interaction("choice", choices=components("golf", "tetris")))
    ok("sequencing interaction", interaction("sequencing", choices=components("a", "b", "c")))
    ok("likert interaction", interaction("likert", scale=components("likert_0", "likert_1")))
    ok("matching interaction", interaction("matching", source=components("s1"), target=components("t1")))
    ok("performance interaction", interaction("performance", steps=components("pong", "dg")))
    for kind in ["fill-in", "long-fill-in", "numeric", "other"]:
        ok(f"{kind} interaction", interaction(kind))
    ok(
        "interaction without correctResponsesPattern",
        _mk(lambda: interaction("other"), _set("object.definition.correctResponsesPattern", ...)),
    )
    bad("interactionType invalid", interaction("multiple-choice"), "object.definition.interactionType")
    bad("interactionType numeric", interaction(12345), "object.definition.interactionType")
    bad(
        "correctResponsesPattern without interactionType",
        _mk(lambda: interaction("other"), _set("object.definition.interactionType", ...)),
        "object.definition",
    )
    bad(
        "choices without interactionType",
        _mk(lambda: interaction("choice", choices=components("a")), _set("object.definition.interactionType", ...)),
        "object.definition",
    )
    bad("choices on true-false", interaction("true-false", choices=components("a")), "object.definition.choices")
    bad("scale on choice", interaction("choice", scale=components("a")), "object.definition.scale")
    bad("source on likert", interaction("likert", source=components("a")), "object.definition.source")
    bad("steps on matching", interaction("matching", steps=components("a")), "object.definition.steps")
    bad("target on performance", interaction("performance", target=components("a")), "object.definition.target")
    bad(
        "correctResponsesPattern not array",
        interaction("other", correctResponsesPattern="a"),
        "object.definition.correctResponsesPattern",
    )
    bad(
        "correctResponsesPattern item not string",
        interaction("numeric", correctResponsesPattern=[4]),
        "object.definition.correctResponsesPattern[0]",
    )
    bad(
        "duplicate component ids",
        interaction("choice", choices=components("a", "b", "a")),
        "object.definition.choices[2].id",
        schema_level=False,
    )
    bad(
        "component without id",
        interaction("likert", scale=[{"description": {"en": "x"}}]),
        "object.definition.scale[0].id",
    )
    bad(
        "component unknown property",
        interaction("likert", scale=[{"id": "a", "value": 1}]),
        "object.definition.scale[0].value",
    )

    # --- authority (Data 2.4.9) --------------------------------------------------------------
    ok("authority agent", _mk(minimal, _set("authority", AGENT_ACCOUNT)))
    ok("authority 3-legged OAuth group", _mk(minimal, _set("authority", OAUTH_AUTHORITY)))
    bad(
        "authority identified group",
        _mk(minimal, _set("authority", {**OAUTH_AUTHORITY, "mbox": "mailto:g@e.org"})),
        "authority.mbox",
    )
    bad(
        "authority group with one member",
        _mk(minimal, _set("authority", {"objectType": "Group", "member": [AGENT_MBOX]})),
        "authority.member",
    )
    bad(
        "authority group with three members",
        _mk(minimal, _set("authority", {"objectType": "Group", "member": [AGENT_MBOX, AGENT_SHA1, AGENT_OPENID]})),
        "authority.member",
    )
    bad(
        "authority group without member",
        _mk(minimal, _set("authority", {"objectType": "Group", "name": "Anon"})),
        "authority.member",
    )
    bad("authority agent invalid", _mk(minimal, _set("authority", {"mbox": "ola"})), "authority.mbox")

    # --- version (Data 2.4.10) ---------------------------------------------------------------
    for v in ["1.0", "1.0.0", "1.0.3", "1.0.9"]:
        ok(f"version {v}", _mk(minimal, _set("version", v)))
    for v in ["2.0", "2.0.0"]:
        ok(f"version {v} (2.0.0)", _mk(minimal, _set("version", v)), V2)
        bad(f"version {v} (1.0.3)", _mk(minimal, _set("version", v)), "version", V1)
    for v in ["0.9.9", "1.1.0", "should fail", "1.0.x", "3.0.0"]:
        bad(f"version {v!r}", _mk(minimal, _set("version", v)), "version")
    bad("version numeric", _mk(minimal, _set("version", 1.0)), "version")

    # --- attachments (Data 2.4.11) -----------------------------------------------------------
    ok(
        "attachment without fileUrl/description",
        _mk(minimal, _set("attachments", [attachment(fileUrl=..., description=...)])),
    )
    ok(
        "signature attachment",
        _mk(
            minimal,
            _set(
                "attachments",
                [
                    attachment(
                        usageType="http://adlnet.gov/expapi/attachments/signature",
                        contentType="application/octet-stream",
                    )
                ],
            ),
        ),
    )
    ok(
        "content type with parameters",
        _mk(minimal, _set("attachments", [attachment(contentType="text/plain; charset=ascii")])),
    )
    for digits in (56, 96, 128):  # SHA-224, SHA-384, SHA-512 (SHA-256 in every other case)
        ok(f"attachment sha2 of {digits} hex digits",
           _mk(minimal, _set("attachments", [attachment(sha2="C" * digits)])))
    bad("attachments not array", _mk(minimal, _set("attachments", attachment())), "attachments")
    bad("attachment not object", _mk(minimal, _set("attachments", ["should fail"])), "attachments[0]")
    for key in ["usageType", "display", "contentType", "length", "sha2"]:
        bad(
            f"attachment without {key}",
            _mk(minimal, _set("attachments", [attachment(**{key: ...})])),
            f"attachments[0].{key}",
        )
    bad_values: list[tuple[str, Any]] = [
        ("usageType", "should fail"),
        ("display", "A"),
        ("description", 5),
        ("contentType", 12345),
        ("contentType", "pdf"),
        ("length", "27"),
        ("length", 2.5),
        ("length", -1),
        ("sha2", 12345),
        ("sha2", "not-hex!"),
        ("sha2", "a"),
        ("sha2", "ab" * 31 + "a"),  # 63 hex digits: no SHA-2 digest has that length
        ("sha2", "ab" * 65),
        ("fileUrl", "should fail"),
    ]
    for key, value in bad_values:
        bad(
            f"attachment {key}={value!r}",
            _mk(minimal, _set("attachments", [attachment(**{key: value})])),
            f"attachments[0].{key}",
        )
    bad(
        "attachment unknown property",
        _mk(minimal, _set("attachments", [attachment(data="aGk=")])),
        "attachments[0].data",
    )

    # --- voiding (Data 2.3.2) ----------------------------------------------------------------
    voided = {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}}
    ok(
        "voiding statement",
        _mk(minimal, _set("verb", voided), _set("object", {"objectType": "StatementRef", "id": UUID_B})),
    )
    bad("voiding an activity", _mk(minimal, _set("verb", voided)), "object.objectType")
    bad("voiding an agent", _mk(minimal, _set("verb", voided), _set("object", AGENT_MBOX)), "object.objectType")

    # --- 2.0.0 contextAgents / contextGroups -------------------------------------------------
    context_agents = [
        {
            "objectType": "contextAgent",
            "agent": AGENT_MBOX,
            "relevantTypes": ["https://example.org/xapi/roles/observer"],
        },
        {"objectType": "contextAgent", "agent": AGENT_ACCOUNT},
    ]
    context_groups = [
        {
            "objectType": "contextGroup",
            "group": GROUP_IDENTIFIED,
            "relevantTypes": ["https://example.org/xapi/roles/team"],
        },
        {"objectType": "contextGroup", "group": GROUP_ANONYMOUS},
    ]
    ok("contextAgents", _mk(typical, _set("context.contextAgents", context_agents)), V2)
    ok("contextGroups", _mk(typical, _set("context.contextGroups", context_groups)), V2)
    ok("substatement contextAgents", _mk(substatement, _set("object.context.contextAgents", context_agents)), V2)
    bad(
        "contextAgents in 1.0.3",
        _mk(typical, _set("context.contextAgents", context_agents)),
        "context.contextAgents",
        V1,
    )
    bad(
        "contextGroups in 1.0.3",
        _mk(typical, _set("context.contextGroups", context_groups)),
        "context.contextGroups",
        V1,
    )
    bad(
        "contextAgent wrong objectType",
        _mk(typical, _set("context.contextAgents", [{"objectType": "Agent", "agent": AGENT_MBOX}])),
        "context.contextAgents[0].objectType",
        V2,
    )
    bad(
        "contextAgent without objectType",
        _mk(typical, _set("context.contextAgents", [{"agent": AGENT_MBOX}])),
        "context.contextAgents[0].objectType",
        V2,
    )
    bad(
        "contextAgent invalid agent",
        _mk(typical, _set("context.contextAgents", [{"objectType": "contextAgent", "agent": {"mbox": "x"}}])),
        "context.contextAgents[0].agent.mbox",
        V2,
    )
    bad(
        "contextAgent agent is a group",
        _mk(typical, _set("context.contextAgents", [{"objectType": "contextAgent", "agent": GROUP_IDENTIFIED}])),
        "context.contextAgents[0].agent.objectType",
        V2,
    )
    bad(
        "contextAgent empty relevantTypes",
        _mk(
            typical,
            _set("context.contextAgents", [{"objectType": "contextAgent", "agent": AGENT_MBOX, "relevantTypes": []}]),
        ),
        "context.contextAgents[0].relevantTypes",
        V2,
    )
    bad(
        "contextAgent relevantTypes not IRI",
        _mk(
            typical,
            _set(
                "context.contextAgents",
                [{"objectType": "contextAgent", "agent": AGENT_MBOX, "relevantTypes": ["observer"]}],
            ),
        ),
        "context.contextAgents[0].relevantTypes[0]",
        V2,
    )
    bad(
        "contextAgents not array",
        _mk(typical, _set("context.contextAgents", context_agents[0])),
        "context.contextAgents",
        V2,
    )
    bad(
        "contextGroup wrong objectType",
        _mk(typical, _set("context.contextGroups", [{"objectType": "contextAgent", "group": GROUP_IDENTIFIED}])),
        "context.contextGroups[0].objectType",
        V2,
    )
    bad(
        "contextGroup anonymous group without members",
        _mk(typical, _set("context.contextGroups", [{"objectType": "contextGroup", "group": {"objectType": "Group"}}])),
        "context.contextGroups[0].group",
        V2,
    )
    bad(
        "contextGroup without group",
        _mk(typical, _set("context.contextGroups", [{"objectType": "contextGroup"}])),
        "context.contextGroups[0].group",
        V2,
    )
    bad(
        "contextGroup empty relevantTypes",
        _mk(
            typical,
            _set(
                "context.contextGroups", [{"objectType": "contextGroup", "group": GROUP_ANONYMOUS, "relevantTypes": []}]
            ),
        ),
        "context.contextGroups[0].relevantTypes",
        V2,
    )
    return out


def agent_cases() -> list[Case]:
    """Cases for the ``agent`` parameter (validate_agent)."""
    out = [
        Case("agent parameter mbox", copy.deepcopy(AGENT_MBOX)),
        Case(
            "agent parameter account without objectType",
            {"account": {"homePage": "https://i.example.org", "name": "n"}},
        ),
        Case("identified group parameter (2.0.0)", copy.deepcopy(GROUP_IDENTIFIED), V2),
        Case("group parameter (1.0.3)", copy.deepcopy(GROUP_IDENTIFIED), V1, "objectType"),
        Case("anonymous group parameter", copy.deepcopy(GROUP_ANONYMOUS), V2, ""),
        Case("agent parameter without identifier", {"name": "Kari"}, BOTH, ""),
        Case("agent parameter two identifiers", {**AGENT_MBOX, "mbox_sha1sum": "a" * 40}, BOTH, ""),
        Case("agent parameter bad mbox", {"mbox": "kari@example.org"}, BOTH, "mbox"),
        Case("agent parameter not object", "mailto:kari@example.org", BOTH, ""),
        Case("agent parameter unknown property", {**AGENT_MBOX, "role": "nurse"}, BOTH, "role"),
    ]
    return out
