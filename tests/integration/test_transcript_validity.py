"""The transcript's valid_until agrees with compliance: none for a failed attempt (compliance
counts no completion with success false) and none when a requirement the activity satisfies
never expires (the longest validity is unbounded); otherwise completed_at + the longest one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from projections import queries

DONE = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
IFI = "mbox:mailto:kari.testdatter@example.org"  # an unlinked identifier is its own person
COURSES = "https://courses.example.org/"


async def test_valid_until_is_none_for_a_failed_attempt_and_for_a_requirement_that_never_expires(
        conn: asyncpg.Connection) -> None:
    store = await conn.fetchval("INSERT INTO stores (name) VALUES ($1) RETURNING id", f"t-{uuid.uuid4()}")
    for rid, activity, days in [("infosec", "infosec", 365), ("hlr-short", "hlr", 30), ("hlr-long", "hlr", 730),
                                ("forever", "ethics", None), ("ethics-yearly", "ethics", 365)]:
        await conn.execute("INSERT INTO rm_transcript.requirements (store_id, requirement_id, name, activity_ids, "
                           "units, roles, professions, validity_days) VALUES ($1, $2, $2, $3, '{}', '{}', '{}', $4)",
                           store, rid, [COURSES + activity], days)
    rows = [("infosec", True), ("infosec", False), ("hlr", None), ("ethics", True), ("no-requirement", True)]
    for n, (activity, success) in enumerate(rows):
        await conn.execute("INSERT INTO rm_transcript.completions (store_id, statement_id, ifi, activity_id, verb, "
                           "success, score, duration_s, completed_at, position) VALUES ($1, $2, $3, $4, "
                           "'http://adlnet.gov/expapi/verbs/completed', $5, NULL, NULL, $6, $7)",
                           store, uuid.uuid4(), IFI, COURSES + activity, success, DONE + timedelta(minutes=n), n + 1)
    got = [(r["activity_id"].removeprefix(COURSES), r["success"], r["valid_until"])
           for r in await queries.transcript(conn, [store], IFI)]
    assert got == [
        ("infosec", True, DONE + timedelta(days=365)),
        ("infosec", False, None),  # failed: compliance does not count it
        ("hlr", None, DONE + timedelta(minutes=2, days=730)),  # the longest of 30 and 730 days
        ("ethics", True, None),  # one of its requirements never expires
        ("no-requirement", True, None),
    ]
