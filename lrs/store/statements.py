"""The statement repository: appends to the event log with the inline statement index, and reads.

Appends reserve positions through a ticket (the common case, migration 0039) or under the
per-store append lock (``append_lock_scoped``, the general path), and the
statement index is written in the same transaction as the event, which is what makes
``X-Experience-API-Consistent-Through`` honest. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from lrs.errors import Conflict, Forbidden, ServiceUnavailable
from lrs.ops import terms as T
from lrs.ops.statements import Attachment, Page, Prepared, Query, StatementRow, inherit_target_terms, same_statement
from lrs.ops.timestamps import format_timestamp
from lrs.store.activities import (
    KnownDefinitions,
    KnownNames,
    canonical_definitions,
    definition_args,
    upsert_definitions,
)
from lrs.store.appender import GroupAppender
from lrs.store.db import scoped, translated
from lrs.store.log import Reservation
from lrs.store.queries import sql


def _new_in(items: list[Prepared], stored: dict[str, dict[str, Any]], accepted: dict[str, Prepared]) -> list[Prepared]:
    """A request's statements not stored yet; Conflict when one of its ids is stored (or taken
    earlier in the same group) with different content: then nothing of the request is kept."""
    mine: list[Prepared] = []
    for p in items:
        other = stored.get(p.id)
        if other is None and p.id in accepted:
            other = accepted[p.id].body
        if other is None:
            mine.append(p)
        elif not same_statement(p.body, other, p.request_version):
            raise Conflict(f"statement {p.id} is already stored with different content")
    return mine


# Passes over a group to settle which requests' voidings stand (_accepted_writes).
MAX_VOIDING_PASSES = 8


def _accepted_writes(
    writes: list[_Write], existing: dict[str, dict[str, Any]], stored_authority: dict[str, str | None],
    outcomes: list[datetime | BaseException | None],
) -> tuple[dict[str, Prepared], dict[int, list[Prepared]]]:
    """Which requests of a group are written: each request's new statements (in request order)
    and every new statement by id. A request is refused whole (its outcome set) when an id is
    stored or taken earlier in the group with other content (Conflict), or when it voids what
    its credential may not (Forbidden). A voiding's target may be in any request of the group;
    a request refused takes its statements out, which can undo what another relied on, so the
    decision is made again until no further request is refused. That is a pass over the group
    per refusal, under the store's lock: after MAX_VOIDING_PASSES, each request of a credential
    without scope all that holds a voiding is sent back (503, to send again) and the rest go
    ahead without one. A refused request is not reconsidered, though its going could clear a
    Conflict of another that a voiding needed (a 403 that a second try would not get)."""
    forbidden: set[int] = set()
    for _ in range(MAX_VOIDING_PASSES):
        accepted, taken = _taken(writes, existing, forbidden, outcomes)
        refused = False
        for i, mine in taken.items():
            if writes[i].void_any:
                continue
            try:
                _voids_only_its_own(mine, stored_authority, accepted)
            except Forbidden as exc:
                outcomes[i] = exc
                forbidden.add(i)
                refused = True
        if not refused:
            return accepted, taken
    for i, w in enumerate(writes):
        if i not in forbidden and not w.void_any and any(p.voids for p in w.items):
            outcomes[i] = ServiceUnavailable(
                "this request's voiding could not be checked among the many requests with voidings written "
                "together with it; nothing of it was stored: send it again", headers={"Retry-After": "1"})
            forbidden.add(i)
    return _taken(writes, existing, forbidden, outcomes)  # no voiding left to check


def _taken(writes: list[_Write], existing: dict[str, dict[str, Any]], forbidden: set[int],
           outcomes: list[datetime | BaseException | None]) -> tuple[dict[str, Prepared], dict[int, list[Prepared]]]:
    """One pass of _accepted_writes over the requests not refused: each one's new statements,
    or Conflict (its outcome)."""
    accepted: dict[str, Prepared] = {}
    taken: dict[int, list[Prepared]] = {}
    for i, w in enumerate(writes):
        if i in forbidden:
            continue
        outcomes[i] = None
        try:
            mine = _new_in(w.items, existing, accepted)
        except Conflict as exc:
            outcomes[i] = exc
            continue
        accepted.update((p.id, p) for p in mine)
        taken[i] = mine
    return accepted, taken


def _voids_only_its_own(mine: list[Prepared], stored_authority: dict[str, str | None],
                        accepted: dict[str, Prepared]) -> None:
    """Forbidden unless each new voiding statement of a request targets a statement of its own
    authority: stored, new in the same request, or new in another request of the same group."""
    new_here = {p.id: p for p in mine}
    for p in mine:
        if p.voids is None:
            continue
        target = new_here.get(p.voids) or accepted.get(p.voids)
        by = _authority_key(target.body["authority"]) if target is not None else stored_authority.get(p.voids)
        if (target is None and p.voids not in stored_authority) or by != _authority_key(p.body["authority"]):
            # one answer whether the target is stored or not: a credential that may not read
            # another's statements must not learn from this that one exists (an ops audit)
            raise Forbidden(f"statement {p.id} voids {p.voids}, which is not a statement this credential stored: "
                            "only the credential that stored a statement, or one with scope all, may void it "
                            "(scope all may also void one not stored yet)")


# spor_append_group's refusal of definitions left out at a version the store has passed (0040)
DEFINITIONS_CHANGED = "SPD01"


async def _release_ticket(conn: asyncpg.Connection, store_id: int, *, settle: int | None) -> None:
    """Let go of the ticket of a failed common append (a session lock: a rollback keeps it), or
    close the connection, which lets go of it too; every later append of the store waits for it.
    ``settle``: the ticket drawn (None when none was, or the task is being cancelled). When no
    ticket in flight will end it (the last drawn, none before it still held), mark it ended, so
    Consistent-Through can be "now" again; otherwise the commit of a ticket in flight does that,
    and a failed request holds up nobody (a review). Best effort: Consistent-Through is only the
    last stored time meanwhile."""
    try:
        await asyncio.shield(conn.execute(sql("release_tickets")))
    except BaseException:
        with contextlib.suppress(Exception):
            conn.terminate()
        raise
    if settle is not None:
        with contextlib.suppress(Exception):
            await conn.execute(sql("settle_tickets"), store_id, settle)


def _row(r: asyncpg.Record) -> StatementRow:
    return StatementRow(
        id=r["id"],
        payload=r["payload"].encode(),
        stored=r["stored"],
        voided=r["voided"],
        attachment_sha2s=list(r["attachment_sha2s"] or ()),
        position=r["position"],
        authority_key=r["authority_key"],
        actor=actor.encode() if (actor := r.get("actor")) is not None else None,
        agent_object=obj.encode() if (obj := r.get("agent_object")) is not None else None,
    )


@dataclass
class _Write:
    """One request's statements waiting for a group transaction."""

    items: list[Prepared]
    attachments: list[Attachment]
    define: bool
    void_any: bool = True  # may void statements of other authorities (and ones not stored yet)


class PgStatementRepository:
    """StatementRepository over PostgreSQL (see lrs.ops.statements.StatementRepository).

    Writes go through a GroupAppender: concurrent requests for one store share a transaction
    (group commit, see lrs/store/appender.py).
    """

    def __init__(self, pool: asyncpg.Pool, *, max_group: int = 5000, in_flight: int = 2) -> None:
        self.pool = pool
        self.appender: GroupAppender[_Write, datetime | None] = GroupAppender(self._write_group, max_group, in_flight)
        self.known_names = KnownNames()
        self.known_definitions = KnownDefinitions()
        # per store: (monotonic time read, Consistent-Through then)
        self._through: dict[int, tuple[float, datetime]] = {}

    async def append(
        self, store_id: int, items: list[Prepared], attachments: list[Attachment], *, define: bool = True,
        void_any: bool = True,
    ) -> datetime | None:
        """Append a request's new statements all-or-nothing; the stored time, or None when
        every statement was stored before (same content). Conflict (409) when an id is stored
        with different content. ``define``: may update canonical Activity definitions.
        ``void_any``: may void statements of another authority, or not stored yet; without it
        such a voiding is Forbidden (403), and nothing of the request is kept."""
        return await self.appender.submit(store_id, _Write(items, attachments, define, void_any), len(items))

    async def _write_group(self, store_id: int, writes: list[_Write]) -> list[datetime | BaseException | None]:
        stored = await self._append_in_one_call(store_id, writes)
        if stored is not None:
            return [stored] * len(writes)
        return await self._append_general(store_id, writes)

    def _forget_if_new(self, conn: asyncpg.Connection) -> None:
        """Empty the caches of what the database holds when ``conn`` is new to them."""
        take_new = getattr(conn, "take_new", None)
        if take_new is not None and take_new():
            self.known_names.forget()
            self.known_definitions.forget()

    async def _append_in_one_call(self, store_id: int, writes: list[_Write]) -> datetime | None:
        """The common case (spor_append_group, migrations 0007, 0016, 0022, 0039, 0040): no
        statement refers to another, no id repeats. A reservation (positions, stored time, a
        ticket) and one call, which writes alongside other appends and commits in ticket order.
        None, with nothing written, when the general path must take the group (an id is stored
        already, or a stored statement refers to a new one). Definitions this process merged
        already are left out (``KnownDefinitions``); when the store's definitions changed since,
        the call keeps nothing and is made again with all of them."""
        items = [p for w in writes for p in w.items]
        if any(p.refers_to for p in items) or len({p.id for p in items}) != len(items):
            return None
        runs = term_run_columns(items)
        if runs is None:
            return None
        columns = statement_columns(items)
        attachments = [a for w in writes for a in w.attachments]
        defining_items = [p for w in writes if w.define for p in w.items]
        for leave_out_known in (True, False):
            async with translated(), self.pool.acquire() as conn:
                self._forget_if_new(conn)
                defining = definition_args(store_id, defining_items, self.known_names,
                                           self.known_definitions if leave_out_known else None)
                ticket: asyncpg.Record | None = None
                try:
                    # Inside the try: a reservation the driver gave up on (timeout, cancellation)
                    # may have been made all the same, and its ticket would stop the store.
                    ticket = await conn.fetchrow(sql("reserve_ticket"), store_id, len(items))
                    done = await conn.fetchrow(
                        sql("append_in_one_call"),
                        store_id,
                        *columns,
                        *_attachment_columns(attachments),
                        defining.defs,
                        defining.names_json(),
                        ticket["ticket"],
                        ticket["first_position"],
                        ticket["stored"],
                        ticket["ended_ticket"],
                        defining.version,
                        *runs,
                    )
                except BaseException as exc:
                    drawn = ticket["ticket"] if ticket is not None and isinstance(exc, Exception) else None
                    await _release_ticket(conn, store_id, settle=drawn)
                    # Not expected (the ids are settled in ticket order, migration 0039), but were
                    # PostgreSQL to end a wait as a deadlock, the general path takes the group.
                    if isinstance(exc, asyncpg.DeadlockDetectedError):
                        return None
                    if getattr(exc, "sqlstate", None) == DEFINITIONS_CHANGED and leave_out_known:
                        # the definitions left out may need merging again: nothing was kept
                        self.known_definitions.forget(store_id)
                        continue
                    raise
            stored: datetime | None = done["stored"]
            if stored is not None:
                self.known_names.remember(store_id, defining.names)
                self.known_definitions.learn(store_id, done["defs_before"], done["defs_after"], defining.merged)
            return stored
        raise AssertionError("unreachable: the call with every definition cannot be refused for one left out")

    async def _append_general(self, store_id: int, writes: list[_Write]) -> list[datetime | BaseException | None]:
        outcomes: list[datetime | BaseException | None] = [None] * len(writes)
        merged = None
        ids = [p.id for w in writes for p in w.items]
        refs = sorted({p.refers_to for w in writes for p in w.items if p.refers_to})
        # Few round trips inside the transaction: other writers of the store wait for it.
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            # The lock is taken in its own statement so the check below, a new statement,
            # sees every earlier append (READ COMMITTED takes a snapshot per statement).
            await conn.execute(sql("append_lock_scoped"), store_id)
            check = await conn.fetchrow(sql("append_check"), store_id, ids, refs)
            if check is None:
                raise LookupError(f"store {store_id} does not exist")
            existing: dict[str, dict[str, Any]] = check["existing"]
            targets = {k: (list(recorded_terms(terms, body).items()), target)
                       for k, (terms, target, _, body) in check["targets"].items()}
            authorities = {k: authority for k, (_, _, authority, _) in check["targets"].items()}
            accepted, taken = _accepted_writes(writes, existing, authorities, outcomes)
            new: list[Prepared] = []
            attachments: list[Attachment] = []
            defining: list[Prepared] = []
            for i, mine in taken.items():
                new += mine
                attachments += writes[i].attachments
                if writes[i].define:
                    defining += mine
            if not new:
                return outcomes
            # this attempt's own copies: it may roll back, and the group's requests are then
            # retried one by one, where a target in another request may not be stored at all;
            # terms inherited from it must not stay in the prepared statements (a review)
            new = [replace(p) for p in new]
            inherit_target_terms(new, targets)
            first = check["last_position"] + 1
            reservation = Reservation(first, len(new), check["stored"])
            await self._insert(conn, store_id, new, attachments, reservation, set(check["voided_before"]))
            if defining:
                self._forget_if_new(conn)
                merged = definition_args(store_id, defining, self.known_names)
                await upsert_definitions(conn, store_id, merged)
        if merged is not None:  # committed
            self.known_names.remember(store_id, merged.names)
        for i, outcome in enumerate(outcomes):
            if outcome is None and any(p.id in accepted and accepted[p.id] is p for p in writes[i].items):
                outcomes[i] = reservation.stored
        return outcomes

    async def _insert(
        self, conn: asyncpg.Connection, store_id: int, items: list[Prepared], attachments: list[Attachment],
        reservation: Reservation, voided_before: set[str],
    ) -> None:
        stored_text = format_timestamp(reservation.stored)
        positions = reservation.positions
        voiding_ids = {p.id for p in items if p.voids}
        # Data 2.3.2: a voiding statement itself is never voided.
        voided = ({p.voids for p in items if p.voids} | voided_before) - voiding_ids
        bodies: list[bytes] = []
        for p in items:
            # A copy: this attempt may roll back (the group is then retried request by request),
            # and a body that kept this attempt's time as its timestamp would carry it into
            # the next, where the statement is stored later (a review of the appender).
            body = dict(p.body)
            body["stored"] = stored_text
            if "timestamp" not in body:
                # xAPI Data 2.4.7: without a timestamp the LRS sets it to the stored time.
                body["timestamp"] = stored_text
            bodies.append(orjson.dumps(body))
        await conn.execute(
            sql("append_statements"),
            store_id,
            positions,
            reservation.stored,
            [p.id for p in items],
            bodies,
            [p.voids for p in items],
            [p.refers_to for p in items],
            *_index_columns(items),
            [p.id in voided for p in items],
            *_term_columns(items, positions),
            *_attachment_columns(attachments),
            reservation.last,
            sorted({p.voids for p in items if p.voids}),
        )

    async def get(self, store_id: int, statement_id: str) -> StatementRow | None:
        async with translated(), scoped(self.pool, [store_id]) as conn:
            r = await conn.fetchrow(sql("statement_by_id"), store_id, statement_id)
        return _row(r) if r else None

    async def agents_at(self, store_id: int, positions: list[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """Per position, the statement's actor and its Agent or Group object as JSON (None when
        the statement must be read for them, or its object is no agent)."""
        async with translated(), scoped(self.pool, [store_id]) as conn:
            rows = await conn.fetch(sql("statements_agents_at"), store_id, positions)
        return {r["position"]: (r["actor"].encode() if r["actor"] is not None else None,
                                r["agent_object"].encode() if r["agent_object"] is not None else None)
                for r in rows}

    async def consistent_through(self, store_id: int, max_age: float = 0.0) -> datetime:
        """The store's Consistent-Through; with ``max_age``, one read at most that many seconds
        ago will do (it only moves forward, so an older value is still true). Error responses
        use that, so a flood of refused requests costs no query each."""
        now = time.monotonic()
        seen = self._through.get(store_id)
        if seen is not None and max_age > 0 and now - seen[0] <= max_age:
            return seen[1]
        async with translated(), scoped(self.pool, [store_id]) as conn:
            r = await conn.fetchrow(sql("store_horizon"), store_id)
        if r is None:
            raise LookupError(f"store {store_id} does not exist")
        self._through[store_id] = (now, r["consistent_through"])
        return r["consistent_through"]

    async def query(self, store_id: int, q: Query) -> Page:
        """One page (limit + 1 rows, so the caller knows whether more exist), the horizon and
        the Consistent-Through time, over one connection."""
        async with translated(), scoped(self.pool, [store_id]) as conn:
            h = await conn.fetchrow(sql("store_horizon"), store_id)
            if h is None:
                raise LookupError(f"store {store_id} does not exist")
            horizon = q.horizon if q.horizon is not None else h["last_position"]
            driving = q.driving_term()
            if driving is None:
                name = "query_all_asc" if q.ascending else "query_all_desc"
                rows = await conn.fetch(sql(name), store_id, horizon, q.after, q.since, q.until, q.limit + 1,
                                        q.authority, q.page_bytes)
                within = next((i for i, r in enumerate(rows) if r["payload"] is None), None)
                ends_early = within is not None
                if within is not None:
                    rows = rows[:within]
            else:
                rows, ends_early = await _by_term(conn, store_id, q, horizon, driving)
        return Page([_row(r) for r in rows], horizon, h["consistent_through"], ends_early)

    async def canonical_definitions(self, store_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
        return await canonical_definitions(self.pool, store_id, ids)

    async def through_at(self, store_id: int, position: int) -> datetime:
        """A Consistent-Through for a paging horizon: just before the stored time of the newest
        statement at or before ``position``. Stored times never go back as positions grow, and
        before migration 0029 two statements could share one, so a statement past the position
        may have that very time: the moment before it is one every statement stored by then
        lies at or before the position."""
        async with translated(), scoped(self.pool, [store_id]) as conn:
            stored = await conn.fetchval(sql("stored_at_or_before"), store_id, position)
        if stored is None:
            return datetime.min.replace(tzinfo=UTC)
        return max(stored - timedelta(microseconds=1), datetime.min.replace(tzinfo=UTC))

    async def attachment_sizes(self, store_id: int, sha2s: list[str]) -> dict[str, int]:
        """The size of each stored attachment's data, by lower-cased sha2 (from the value's
        header: the data is not read)."""
        if not sha2s:
            return {}
        async with translated(), scoped(self.pool, [store_id]) as conn:
            rows = await conn.fetch(sql("attachment_sizes"), store_id, [s.lower() for s in sha2s])
        return {r["sha2"].lower(): r["size"] for r in rows}

    async def attachment_contents(self, store_id: int, sha2s: list[str]) -> list[Attachment]:
        if not sha2s:
            return []
        async with translated(), scoped(self.pool, [store_id]) as conn:
            # content is stored under the lower-cased hash; rows written before statements
            # listed their hashes lower-cased may list them as sent
            rows = await conn.fetch(sql("attachments_by_sha2"), store_id, [s.lower() for s in sha2s])
        return [Attachment(r["sha2"], r["content_type"], bytes(r["content"])) for r in rows]

    async def attachments_described(self, store_id: int, sha2s: list[str]) -> list[tuple[Attachment, int]]:
        """Stored attachments without their data (``content`` empty), each with its data's size
        (from the value's header: the data is not read). For HEAD, which sends no body."""
        if not sha2s:
            return []
        async with translated(), scoped(self.pool, [store_id]) as conn:
            rows = await conn.fetch(sql("attachments_described"), store_id, [s.lower() for s in sha2s])
        return [(Attachment(r["sha2"], r["content_type"], b""), r["size"]) for r in rows]


# A page by filter term takes positions from the terms index in rounds: the first asks for as
# many as the page needs, each further one (when statement filters dropped some) for four times
# as many as the last, up to this.
MOST_POSITIONS_A_ROUND = 10_000


async def _by_term(conn: asyncpg.Connection, store_id: int, q: Query, horizon: int,
                   driving: tuple[str, bool]) -> tuple[list[asyncpg.Record], bool]:
    """The rows of a page (limit + 1) of a query with a filter term: positions from the filter-term
    runs (``term_positions_*``, migration 0042), then the statements at them read with read-ahead
    (``log_statements_at`` from the event log, or ``statements_at`` when the page needs the
    authority or the attachment hashes; either says which the statement filters keep: voided,
    since/until, authority), in the query's order; and whether the page ends early, at the
    first statement kept whose body the byte budget (``q.page_bytes``) left out (0031).

    A statement's stored time never goes back as positions grow (the append takes the greater
    of the last one and now), so newest first, the first statement stored at or before
    ``since`` ends the page, as oldest first the first one stored after ``until`` does: none
    beyond it could match."""
    want = q.limit + 1
    others = _other_terms(q, driving[0])
    extra: list[Any] = []
    for i in range(3):
        term, related = others[i] if i < len(others) else (None, False)
        extra += [term, related]
    name = "term_positions_asc" if q.ascending else "term_positions_desc"
    at, at_args = _rows_at(q)
    after, ask = q.after, want
    out: list[asyncpg.Record] = []
    left = q.page_bytes  # of the byte budget, for the rounds to come
    while True:
        positions = [r[0] for r in await conn.fetch(sql(name), store_id, driving[0], driving[1], horizon, after,
                                                    ask, *extra)]
        if positions:
            # the statements a read/mine credential's filters match only by another's terms are
            # left out, and the page's byte budget counted again without them (a review: they
            # used it up, and the page came back empty, cut before its first statement)
            borrowed: set[int] = set()
            while True:
                found = {r["position"]: r for r in await conn.fetch(
                    sql(at), store_id, [p for p in positions if p not in borrowed], q.since, q.until,
                    *at_args, left, bool(out))}
                newly = await _matched_only_by_others(conn, store_id, q, [driving, *others], found)
                if not newly:
                    break
                borrowed |= newly
            for p in positions:
                r = found.get(p)
                if r is None:
                    continue  # (every position the index gives up to the horizon has its row)
                if q.ascending and q.until is not None and r["stored"] > q.until:
                    return out, False
                if not q.ascending and q.since is not None and r["stored"] <= q.since:
                    return out, False
                if r["kept"]:
                    if r["payload"] is None:
                        return out, True
                    out.append(r)
                    if left is not None:
                        left -= r["bytes"]
                    if len(out) == want:
                        return out, False
        if len(positions) < ask:
            return out, False
        after, ask = positions[-1], min(ask * 4, MOST_POSITIONS_A_ROUND)


async def _matched_only_by_others(conn: asyncpg.Connection, store_id: int, q: Query,
                                  filters: list[tuple[str, bool]], found: dict[int, asyncpg.Record]) -> set[int]:
    """For a caller that reads only its own statements (a credential's, ``q.authority``; a
    person's, ``q.person``): the positions of statements that refer, through StatementRefs, to
    another's statement (or through one) and match the query's filters only by the terms
    inherited from it. A statement targeting another inherits that one's terms (Communication
    2.1.3: filters apply to the target too), so such a credential, knowing another's statement's
    id, could learn by filters whom it is about, what was done, in which activity; and a person
    was given others' statements about their own (a colleague's note referring to theirs; a
    security audit). Own statements match by their own terms and those of own statements they
    refer to, up to the first that is not: a credential's are those it is the authority of, a
    person's those they are the actor or object of by their own terms."""
    if q.authority is None and q.person is None:
        return set()
    # every statement kept, with its body read or not (the chains' bodies are read here): a
    # round's borrowed statements are all found at once, and the page read again once (a
    # review: found a budget's worth at a time, the round was read again and again)
    candidates = [p for p, r in found.items() if r["kept"]]
    if not candidates:
        return set()
    out: set[int] = set()
    for row in await conn.fetch(sql("chains_leaving_authority"), store_id, candidates, q.authority):
        own: dict[str, bool] = {}
        for body in row["bodies"]:
            terms = T.statement_terms(orjson.loads(body))
            if q.person is not None and not terms.get(T.AGENT + q.person):
                break  # not the person's own: neither it nor what it refers to counts
            own = T.merge_terms(own, terms.items())
        if not all(term in own and (own[term] or related) for term, related in filters):
            out.add(row["root"])
    return out


def _rows_at(q: Query) -> tuple[str, list[Any]]:
    """The query that reads a page's rows at its positions, and its arguments after (store,
    positions, since, until): from the event log alone (0025) unless the page needs what only
    `statements` has, the authority (statements/read/mine) or the attachment hashes."""
    if q.authority is not None or q.attachments:
        return "statements_at", [q.authority]
    return "log_statements_at", []


def _other_terms(q: Query, driving: str) -> list[tuple[str, bool]]:
    all_terms = [
        (T.AGENT + q.agent, q.related_agents) if q.agent else None,
        (T.REGISTRATION + q.registration, True) if q.registration else None,
        (T.ACTIVITY + q.activity, q.related_activities) if q.activity else None,
        (T.VERB + q.verb, True) if q.verb else None,
    ]
    return [t for t in all_terms if t is not None and t[0] != driving]


def _index_columns(items: list[Prepared]) -> tuple[list[str | None], list[bytes], list[str]]:
    """Per statement, for its index row: attachment hashes (comma-joined), filter terms (JSON),
    authority key."""
    return _sha2_lists(items), [orjson.dumps(p.terms) for p in items], _authority_keys(items)


def recorded_terms(terms: dict[str, bool] | str | None, body: dict[str, Any] | str | bytes | None) -> dict[str, bool]:
    """A statement row's effective filter terms ({term: direct}): its ``terms`` column, or, when
    that is NULL (the common append, migration 0044), its body's own (``statement_terms`` of the
    body as stored). Either may come decoded or as JSON text."""
    if terms is not None:
        return orjson.loads(terms) if isinstance(terms, str | bytes) else terms
    if body is None:
        raise ValueError("a statement row without recorded terms needs its body")
    return T.statement_terms(orjson.loads(body) if isinstance(body, str | bytes) else body)


def _sha2_lists(items: list[Prepared]) -> list[str | None]:
    """Per statement, its attachments' hashes comma-joined (None: none)."""
    return [",".join(p.attachment_sha2s) or None for p in items]


def _authority_keys(items: list[Prepared]) -> list[str]:
    keys: list[str] = []
    last: dict[str, Any] | None = None
    key = ""
    for p in items:
        # a request's statements share its principal's authority: keyed once
        if (authority := p.body["authority"]) is not last:
            last, key = authority, _authority_key(authority)
        keys.append(key)
    return keys


def _term_columns(items: list[Prepared], keys: Iterable[int]) -> tuple[list[str], list[int], list[bool]]:
    """One filter-term row per (statement, term) for the general path: term, the statement's
    position, direct. (The one-call path unfolds each statement's terms object in SQL.)"""
    names: list[str] = []
    at: list[int] = []
    direct: list[bool] = []
    for key, p in zip(keys, items, strict=True):
        for term, is_direct in p.terms.items():
            names.append(term)
            at.append(key)
            direct.append(is_direct)
    return names, at, direct


def statement_columns(items: list[Prepared]) -> tuple[str, bytes, str, str, str]:
    """The per-statement arguments of the one-call path (``append_in_one_call``): the ids joined
    by commas; the bodies (``body_column``); whether the function fills in the timestamp (xAPI
    Data 2.4.7; it puts "stored" and that timestamp first), a t or f each; JSON arrays of the
    attachment hashes (comma-joined, or null) and of the authority keys. Text, not lists: the
    driver checks each element of a list it sends (~0.4 us each). The filter terms go as runs
    (``term_run_columns``); the statements' rows record none (NULL: their bodies' own, 0044)."""
    return (",".join([p.id for p in items]),
            body_column(items),
            "".join(["f" if "timestamp" in p.body else "t" for p in items]),
            orjson.dumps(_sha2_lists(items)).decode(),
            orjson.dumps(_authority_keys(items)).decode())


def body_column(items: list[Prepared]) -> bytes:
    """The bodies of the one-call path: UTF-8 JSON joined by the byte 0x1E, which UTF-8 JSON
    never holds (RFC 8259 section 7; UTF-8 continuation bytes are 0x80 and above). Bytes, not
    str: see migration 0022. Each body without its first byte, '{': the function writes it
    before the members it adds (0042). (``prepare`` leaves a sent ``stored`` out.)"""
    return b"\x1e".join([p.text[1:] for p in items])


# Separators for the run terms of one call, the first that no term holds (see term_run_columns).
_TERM_SEPARATORS = [chr(c) for c in (0x1E, 0x1F, 0x1D, 0x1C, *range(0xE000, 0xF900))]


def term_run_columns(items: list[Prepared]) -> tuple[str, str, str, str, str, str] | None:
    """The filter terms of the one-call path as runs (migration 0042), one a term: the terms
    joined by a separator no term holds, and that separator; per run the ordinal (from 1) of
    its first statement in the call and where its entries end in the flat lists that follow
    (from 1, inclusive); per entry its offset from the first statement, and ``direct`` as t or
    f. The numbers go as JSON arrays, and the flags as one string: the driver checks each
    element of a list it sends (~0.4 us each), and a call has ~1,700 entries. The database
    adds the call's position to the ordinals. None when no separator will do (the general path
    then takes the group)."""
    runs: dict[str, tuple[int, list[int], list[str]]] = {}
    for n, p in enumerate(items, 1):
        for term, is_direct in p.terms.items():
            run = runs.get(term)
            if run is None:
                runs[term] = (n, [0], ["t" if is_direct else "f"])
            else:
                run[1].append(n - run[0])
                run[2].append("t" if is_direct else "f")
    names = list(runs)
    every = "".join(names)
    separator = next((c for c in _TERM_SEPARATORS if c not in every), None)
    if separator is None:
        return None
    firsts: list[int] = []
    ends: list[int] = []
    offsets: list[int] = []
    direct: list[str] = []
    for first, offs, dirs in runs.values():
        firsts.append(first)
        offsets += offs
        direct += dirs
        ends.append(len(offsets))
    return (separator.join(names), separator, orjson.dumps(firsts).decode(), orjson.dumps(ends).decode(),
            orjson.dumps(offsets).decode(), "".join(direct))


def _attachment_columns(attachments: Iterable[Attachment]) -> tuple[list[str], list[str], list[bytes]]:
    """Attachment contents, once per hash: hashes, content types, bytes."""
    unique = {a.sha2: a for a in attachments}.values()
    return [a.sha2 for a in unique], [a.content_type for a in unique], [a.content for a in unique]


def _authority_key(authority: dict[str, Any]) -> str:
    key = T.agent_key(authority)
    if key is None:
        # An OAuth authority is a two-member anonymous group; key it by its members.
        key = "+".join(sorted(k for m in authority.get("member", []) if (k := T.agent_key(m))))
    return key
