"""The transcript's expires_on agrees with compliance: none for a failed attempt (compliance
counts no completion with success false) and none when a requirement the activity satisfies
never expires (the longest validity is unbounded); otherwise the completion's date in the
reporting time zone + the longest one, the day compliance counts it expired from. (It was the
UTC instant + the days: a day apart from compliance for a completion after 23:00 UTC, and still
"valid" on the morning compliance said expired; a projections audit.)"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from projections import queries

DONE = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
IFI = "mbox:mailto:kari.testdatter@example.org"  # an unlinked identifier is its own person
COURSES = "https://courses.example.org/"


async def test_expires_on_is_none_for_a_failed_attempt_and_for_a_requirement_that_never_expires(
        conn: asyncpg.Connection) -> None:
    store = await conn.fetchval("INSERT INTO stores (name) VALUES ($1) RETURNING id", f"t-{uuid.uuid4()}")
    for rid, activity, days in [("infosec", "infosec", 365), ("hlr-short", "hlr", 30), ("hlr-long", "hlr", 730),
                                ("forever", "ethics", None), ("ethics-yearly", "ethics", 365)]:
        await conn.execute("INSERT INTO rm_transcript.requirements (store_id, requirement_id, name, activity_ids, "
                           "units, roles, professions, validity_days) VALUES ($1, $2, $2, $3, '{}', '{}', '{}', $4)",
                           store, rid, [COURSES + activity], days)
    rows = [("infosec", True), ("infosec", False), ("hlr", None), ("ethics", True), ("no-requirement", True)]
    for n, (activity, success) in enumerate(rows):
        await _complete(conn, store, activity, success, DONE + timedelta(minutes=n), n + 1)
    # after 23:00 UTC in winter and 22:00 in summer it is the next day in Oslo
    await _complete(conn, store, "infosec", True, datetime(2025, 11, 28, 23, 30, tzinfo=UTC), 10)
    await _complete(conn, store, "infosec", True, datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 11)
    got = [(r["activity_id"].removeprefix(COURSES), r["success"], r["expires_on"])
           for r in await queries.transcript(conn, [store], IFI)]
    assert got == [
        ("infosec", True, date(2026, 11, 29)),
        ("infosec", True, date(2027, 3, 30)),
        ("infosec", True, date(2027, 10, 1)),  # 2026-10-01 + 365 days
        ("infosec", False, None),  # failed: compliance does not count it
        ("hlr", None, date(2028, 9, 30)),  # the longest of 30 and 730 days
        ("ethics", True, None),  # one of its requirements never expires
        ("no-requirement", True, None),
    ]
    # in another reporting time zone, the days of that zone
    late = await queries.transcript(conn, [store], IFI, activity=COURSES + "infosec", timezone="UTC", limit=1)
    assert late[0]["expires_on"] == date(2026, 11, 28)


async def _complete(conn: asyncpg.Connection, store: int, activity: str, success: bool | None, at: datetime,
                    position: int) -> None:
    await conn.execute("INSERT INTO rm_transcript.completions (store_id, statement_id, ifi, activity_id, verb, "
                       "success, score, duration_s, completed_at, position) VALUES ($1, $2, $3, $4, "
                       "'http://adlnet.gov/expapi/verbs/completed', $5, NULL, NULL, $6, $7)",
                       store, uuid.uuid4(), IFI, COURSES + activity, success, at, position)
