"""The statement facts extracted in SQL (projections.statement_facts, migration 0008) equal the
reference fold in Python (projections.facts.statement_facts), statement by statement, including
the odd shapes the property test's histories never produce."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.facts import Event, statement_facts

RECORDED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
ACCOUNT = {"objectType": "Agent", "account": {"homePage": "https://id.example.org", "name": "emp-1"}}


def _stmt(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": ACCOUNT,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"objectType": "Activity", "id": "https://courses.example.org/c1"},
        "timestamp": "2025-05-01T10:00:00.000Z",
    }
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


CORPUS: list[dict[str, Any]] = [
    _stmt(),
    _stmt(actor={"mbox": "mailto:Kari.Nordmann@Sykehus.EXAMPLE.org"}),
    # domains whose capitals are not ASCII (0033): SQL's lower() under "C" kept them
    _stmt(actor={"mbox": "mailto:Per@SYKEHUSØ.NO"}),
    _stmt(actor={"mbox": "mailto:ana@İSTANBUL.ÆØÅ.example"}),  # İ: a lower case of two characters
    _stmt(actor={"mbox": "mailto:eleni@ΟΔΟΣ.ΑΘΗΝΑΣ.example"}),  # a capital sigma ending a word
    _stmt(actor={"mbox": "mailto:k@\u212aelvin.ǅ.example"}),  # Kelvin sign (to ASCII k), a title case
    _stmt(actor={"objectType": "Group", "mbox_sha1sum": "ABCDEF0123456789ABCDEF0123456789ABCDEF01"}),
    _stmt(actor={"openid": "https://openid.example.org/kari"}),
    _stmt(actor={"objectType": "Group", "member": [ACCOUNT]}),  # anonymous: attributed to no one
    _stmt(verb={"id": "http://adlnet.gov/expapi/verbs/passed"}, result={"success": True, "score": {"scaled": 1}}),
    _stmt(result={"success": "yes", "score": {"scaled": 0.25}, "duration": "P1Y2M3W4DT5H6M7.5S"}),
    _stmt(result={"duration": "PT"}),
    _stmt(result={"duration": "P1.5D"}),
    _stmt(result={"duration": "PT12M"}),
    _stmt(result={"duration": "12 minutes"}),
    _stmt(result={"score": {"raw": 3}}),
    _stmt(timestamp=None),
    _stmt(timestamp="2025-05-01T10:00:00+02:00"),
    _stmt(timestamp="2025-05-01T10:00:00.123456789Z"),
    _stmt(timestamp="2025-05-01T10:00:00.5-0130"),
    _stmt(timestamp="2025-05-01T10:00:00"),
    _stmt(timestamp="2025-05-01T10:00:00.9999999"),
    _stmt(timestamp="2025-05-01 10:00Z"),
    _stmt(timestamp="yesterday"),
    _stmt(object={"objectType": "Agent", "mbox": "mailto:ola@example.org"},
          context={"contextActivities": {"parent": [{"id": "https://courses.example.org/c2"}]}}),
    _stmt(object={"id": "https://courses.example.org/c1/m1"},
          context={"contextActivities": {"parent": {"id": "https://courses.example.org/c1"},
                                         "grouping": [{"id": "https://courses.example.org/c1"},
                                                      {"id": "https://courses.example.org/prog"},
                                                      {"definition": {}}],
                                         "category": [{"id": "https://courses.example.org/cat"}]}}),
    _stmt(object={"objectType": "SubStatement", "actor": ACCOUNT, "verb": {"id": "x:v"},
                  "object": {"id": "https://courses.example.org/c1"}}),
    _stmt(object={"objectType": "StatementRef", "id": str(uuid.uuid4())}),
    _stmt(verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": str(uuid.uuid4())}),
    _stmt(verb={"id": VOIDED}, actor={"objectType": "Group", "member": [ACCOUNT]},
          object={"objectType": "StatementRef", "id": str(uuid.uuid4())}),
    _stmt(verb=None),
    # values the LRS accepts that a cast in the SQL refused, failing the read model (0020)
    _stmt(timestamp="2025-05-01T10:00:00+23:59"),
    _stmt(timestamp="2025-05-01T10:00:00-2359"),
    _stmt(timestamp="2025-05-01T10:00:00+16"),
    _stmt(timestamp="2025-05-01T10:00:00.5+16:30"),
    _stmt(timestamp="0001-01-01T00:00:00+01:00"),
    _stmt(timestamp="9999-12-31T23:59:59-01:00"),
    _stmt(timestamp="9999-12-31T23:59:59Z"),
    _stmt(timestamp="9899-12-31T23:59:59.5Z"),
    _stmt(timestamp="2016-12-31T23:59:60Z"),
    # after the stored time (RECORDED), which the read models take instead (0035)
    _stmt(timestamp="2025-06-01T12:00:00.001Z"),
    _stmt(timestamp="2025-06-01T13:30:00+01:00"),
    _stmt(verb={"id": "https://w3id.org/xapi/adl/verbs/satisfied"}, timestamp="2030-01-01T00:00:00Z"),
    _stmt(result={"score": {"scaled": "__1E-400__"}}),
    _stmt(result={"score": {"scaled": "__-1E-400__"}}),
    _stmt(result={"duration": "PT" + "9" * 400 + "S"}),
    _stmt(result={"duration": "PT0." + "0" * 400 + "1S"}),
    _stmt(result={"duration": "P" + "9" * 320 + "Y1M"}),
    # an extension value holding U+0000, which jsonb refuses (0026): beside it the text \u0000
    # (a backslash, then letters) and an escaped backslash right before the character
    _stmt(result={"success": True, "duration": "PT1M",
                  "extensions": {"https://ext.example.org/nul": "a\x00b",
                                 "https://ext.example.org/text": ["\\u0000", "\\\x00", "\x00\x00"]}},
          context={"extensions": {"https://ext.example.org/nul": {"k": "\x00"}}}),
]
# A statement's JSON text as stored: "__<number>__" strings stand for number literals that no
# Python float can write (1E-400).
_RAW_NUMBER = re.compile(r'"__(-?[0-9.]+E[+-]?[0-9]+)__"')


def _payload(s: dict[str, Any]) -> str:
    return _RAW_NUMBER.sub(r"\1", orjson.dumps(s).decode())


async def _facts_both_ways(conn: asyncpg.Connection, statements: list[dict[str, Any]]) -> tuple[set, set]:
    store = await conn.fetchval("INSERT INTO stores (name) VALUES ($1) RETURNING id", f"s-{uuid.uuid4()}")
    rows = [(store, i + 1, "statement", RECORDED, uuid.UUID(s["id"]), _payload(s)) for i, s in enumerate(statements)]
    await conn.executemany("INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload) "
                           "VALUES ($1, $2, $3, $4, $5, $6::text::json)", rows)
    got = {
        (str(r["statement_id"]), r["ifi"], r["verb"], r["activity_id"], tuple(sorted(r["courses"])), r["success"],
         r["score"], r["duration_s"], r["at"], str(r["voids"]) if r["voids"] else None, r["position"])
        for r in await conn.fetch("SELECT * FROM projections.statement_facts($1, 0, $2)", store, len(statements))
    }
    want = set()
    for i, s in enumerate(statements):
        f = statement_facts(Event(store, i + 1, "statement", RECORDED, s["id"], orjson.loads(_payload(s))))
        if f.voids is None and f.ifi is None:
            continue  # the fold skips statements attributed to no one
        want.add((f.statement_id, f.ifi, f.verb, f.activity_id, tuple(sorted(f.courses)), f.success, f.score,
                  f.duration_s, f.at, f.voids, i + 1))
    return got, want


async def test_sql_facts_equal_the_python_reference_on_the_corpus(conn: asyncpg.Connection) -> None:
    got, want = await _facts_both_ways(conn, CORPUS)
    assert got == want
    assert len(got) == len(CORPUS) - 1  # only the anonymous actor's completion is left out


async def test_a_statement_is_never_later_than_its_stored_time(conn: asyncpg.Connection) -> None:
    """Migration 0035: a timestamp after the stored time counts as the stored time; an earlier
    one as itself."""
    sent = ["2025-06-01T12:00:00.001Z", "9999-12-31T23:59:59Z", "2025-06-01T13:30:00+01:00", "2025-06-01T11:59:59Z"]
    got, _ = await _facts_both_ways(conn, [_stmt(timestamp=ts) for ts in sent])
    assert [r[8] for r in sorted(got, key=lambda r: r[10])] == [
        RECORDED, RECORDED, RECORDED, datetime(2025, 6, 1, 11, 59, 59, tzinfo=UTC)]


async def test_the_facts_of_a_span_of_the_log_are_those_of_the_whole_log_in_it(conn: asyncpg.Connection) -> None:
    """statement_facts of (after, upto] gives the rows of the whole log's extraction in that
    span, with or without the voiding hint the folds pass (a hint only: the folds keep the rows
    with voids). A rebuild's chunks and every live window rely on it."""
    await _facts_both_ways(conn, CORPUS)
    store = await conn.fetchval("SELECT max(id) FROM stores")
    n = len(CORPUS)
    query = "SELECT * FROM projections.statement_facts($1, $2, $3, $4) ORDER BY position"

    async def rows(after: int, upto: int, like: str | None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await conn.fetch(query, store, after, upto, like)]

    expected = {like: await rows(0, n, like) for like in (None, "%voided%")}
    assert len(expected[None]) == n - 1 and [r[9] for r in expected["%voided%"]] != []
    for after, upto in ((0, n), (2, n - 3), (n // 2 - 1, n // 2 + 1), (n - 1, n)):
        for like in (None, "%voided%"):
            want = [r for r in expected[like] if after < r[10] <= upto]
            got = await rows(after, upto, like)
            keep = (lambda r: r[9] is not None) if like else (lambda r: True)
            assert [r for r in got if keep(r)] == [r for r in want if keep(r)], (after, upto, like)


durations = st.one_of(
    st.builds(lambda parts: "P" + "".join(parts), st.lists(st.sampled_from(
        ["1Y", "2M", "3W", "0.5D", "T1H", "T2M", "T3.25S", "T1H30M", "10D"]), max_size=3)),
    st.text(alphabet="PTYMWDHS0123456789.", max_size=8),
)
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.isoformat(timespec=["seconds", "milliseconds", "microseconds"][d.microsecond % 3])),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                 timezones=st.sampled_from([UTC])).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["2025-01-01T00:00:00.1234567+05:30", "2025-13-01T00:00:00Z", "x"]),
)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(durations, timestamps, st.sampled_from([None, 0, 0.5, -1, True]),
                          st.sampled_from([None, True, False, 1])), min_size=1, max_size=8))
async def test_sql_facts_equal_the_python_reference_for_random_results(
    conn: asyncpg.Connection, results: list[tuple[str, str, Any, Any]],
) -> None:
    statements = []
    for duration, ts, score, success in results:
        if ts.startswith("2025-13"):
            continue  # an impossible date: the LRS never accepts one, SQL refuses it (documented)
        result: dict[str, Any] = {"duration": duration}
        if score is not None:
            result["score"] = {"scaled": score}
        if success is not None:
            result["success"] = success
        statements.append(_stmt(result=result, timestamp=ts))
    got, want = await _facts_both_ways(conn, statements)
    assert got == want


# Greek capitals and small letters, the capital sigma, and characters str.lower() skips or stops at
# when it decides whether a sigma ends a word (case-ignorable: . ' : U+0301 U+0345 ʰ; neither: - 1)
_SIGMA_WORDS = st.text(alphabet="ΑΒΣσςαβAa.':-1 \u0301\u0345ʰ\u00ad", min_size=1, max_size=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(min_size=1, max_size=12), _SIGMA_WORDS), min_size=1, max_size=20))
async def test_sql_lowers_text_as_python_does(conn: asyncpg.Connection, texts: list[str]) -> None:
    """projections.lower_like_python (0033) is str.lower(), by which the LRS keys what it stores (an
    agent's documents, names, filter terms) and the people import keys a person, for any text
    PostgreSQL can hold, a word-final capital sigma (ς, not σ) included: a statement's actor and
    the import give one address one key."""
    texts = [t.replace("\x00", "") or "x" for t in texts]
    texts += ["SYKEHUSØ.NO", "İ", "ΟΔΟΣ", "ΑΘΗΝΑΣ-NET.GR", "ΑΘΗΝΑΣ.GR", "ΣΣ", "Σ", "AΣ'", "\u212a", "ǅǈǋ", "ẞ",
              "ÀÉÎÕÜ"]
    got = await conn.fetchval("SELECT array_agg(projections.lower_like_python(t) ORDER BY n) "
                              "FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)", texts)
    assert got == [t.lower() for t in texts]


async def test_bodies_are_read_as_jsonb_with_nul_as_the_replacement_character(conn: asyncpg.Connection) -> None:
    """projections.jsonb_of (0026): jsonb cannot hold U+0000, so the projections read it as U+FFFD;
    the text \\u0000 (an escaped backslash, then letters) stays as it is, however many
    backslashes come before."""
    value = ["a\x00b", "\\u0000", "\\\x00", "\\\\u0000", "\x00\x00", "plain"]
    body = orjson.dumps({"extensions": {"https://ext.example.org/v": value}}).decode()
    got = await conn.fetchval("SELECT projections.jsonb_of($1::text::json)::text", body)
    assert orjson.loads(got)["extensions"]["https://ext.example.org/v"] == [v.replace("\x00", "\ufffd") for v in value]
    plain = orjson.dumps({"a": "b\\u0000"}).decode()  # no NUL at all: cast as it is
    got = await conn.fetchval("SELECT projections.jsonb_of($1::text::json)::text", plain)
    assert orjson.loads(got) == {"a": "b\\u0000"}
