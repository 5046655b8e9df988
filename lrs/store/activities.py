"""Canonical Activity definitions (and agent names): inline projections of the statement log.

Definitions are merged inside the statement append's transaction (``upsert_definitions`` on the
general path, ``spor_append_group`` on the one-round-trip path, both calling the SQL function
``spor_merge_definitions``, migration 0022), so GET /activities and ``format=canonical`` are as
current as GET /statements. The batch is folded in Python first (later statements win,
language maps merge), then one statement upserts from the JSON object id -> definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from lrs.ops import terms as T
from lrs.ops.activities import canonical_offer, merge_definition, with_tag_order
from lrs.ops.nul import without_nul
from lrs.ops.statements import Prepared
from lrs.store.db import scoped, translated
from lrs.store.queries import sql


def _add_definition(activity: Any, out: dict[str, list[dict[str, Any]]]) -> None:
    """Add an Activity's definition to ``out`` (Activity id -> the definitions given it, in
    order), unless it has none or an empty one."""
    if isinstance(activity, dict) and "id" in activity:
        definition = activity.get("definition")
        if definition and isinstance(definition, dict):
            out.setdefault(str(activity["id"]), []).append(definition)


def _add_definitions(stmt: dict[str, Any], out: dict[str, list[dict[str, Any]]]) -> None:
    """Add to ``out`` the definitions a statement or SubStatement gives: its object's (a
    SubStatement's, in turn), then its context activities'."""
    obj = stmt.get("object")
    if isinstance(obj, dict):
        kind = obj.get("objectType", "Activity")
        if kind == "Activity":
            _add_definition(obj, out)
        elif kind == "SubStatement":
            _add_definitions(obj, out)
    ctx = stmt.get("context")
    if isinstance(ctx, dict) and isinstance(activities := ctx.get("contextActivities"), dict):
        for value in activities.values():
            for act in value if isinstance(value, list) else (value,):
                _add_definition(act, out)


def _add_agent_names(node: Any, names: dict[tuple[str, str], None]) -> None:
    """Add an Agent's or Group's (and its members') [key, name] pairs to ``names``."""
    if not isinstance(node, dict):
        return
    if node.get("objectType", "Agent") in ("Agent", "Group"):
        name = node.get("name")
        if isinstance(name, str) and name and (key := T.agent_key(node)) is not None:
            names[(key, name)] = None
    members = node.get("member")
    if members:
        for member in members:
            _add_agent_names(member, names)


def _add_names(stmt: dict[str, Any], names: dict[tuple[str, str], None]) -> None:
    """The names of the agents a statement or SubStatement names, for the Person object: its
    actor, an Agent or Group object (a SubStatement's, in turn), its instructor and team."""
    _add_agent_names(stmt.get("actor"), names)
    obj = stmt.get("object")
    if isinstance(obj, dict):
        kind = obj.get("objectType")
        if kind in ("Agent", "Group"):
            _add_agent_names(obj, names)
        elif kind == "SubStatement":
            _add_names(obj, names)
    ctx = stmt.get("context")
    if isinstance(ctx, dict):
        _add_agent_names(ctx.get("instructor"), names)
        _add_agent_names(ctx.get("team"), names)


def _definitions(bodies: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Activity id -> the definitions the statements give it, in order (empty ones left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        _add_definitions(body, out)
    return out


def _fold(definitions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One Activity's definitions merged in order, each taken as far as the canonical
    definition's bounds let it (``canonical_offer``); None when none offers anything."""
    out: dict[str, Any] | None = None
    for definition in definitions:
        offer = canonical_offer(definition)
        if offer is not None:
            out = merge_definition(out, offer, bounded=False)
    return out


def fold_definitions(bodies: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Activity id -> definition merged over the statements in order (``_fold``)."""
    return {aid: folded for aid, given in _definitions(bodies).items() if (folded := _fold(given)) is not None}


class KnownNames:
    """Agent names this process has seen committed, per store, so an append need not send them
    again. ``agent_names`` rows are deleted only by an erasure (``lrs/person_erasure.py``), so a
    pair seen committed stays stored, in the database history the process saw it in: on a
    connection new to the cache (after a failover or a restore the pool reconnects) everything
    is forgotten (``forget``). After an erasure, a person who comes back may lack a name
    in the Agents resource until the server restarts or the pair leaves the cache
    (docs/security.md, Erasure).
    Most statements name people whose names are stored already (every statement of a course
    names the learner and the instructor); sending them cost the driver's encoding and, under
    the store's lock, a unique-index probe each.

    Bounded in memory: a pair is kept as its 64-bit hash (a tuple of three was ~310 bytes, a
    server process held 25-30 MB more loading a million statements of 80,000 people; two
    sets of hashes hold 50,000 pairs in ~4 MB). Two generations: when the newer is full the
    older is dropped, and a pair found in the older moves to the newer, so the pairs in use
    stay. Two pairs with one hash (odds of ~1 in 10^14 for a full cache) would leave the
    second name unsent: such a person's Person object would lack that name."""

    def __init__(self, limit: int = 50_000) -> None:
        self.generation = max(1, limit // 2)
        self._new: set[int] = set()
        self._old: set[int] = set()

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def unknown(self, store_id: int, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for k, n in pairs:
            h = hash((store_id, k, n))
            if h in self._new:
                continue
            if h in self._old:
                self._add(h)
                continue
            out.append((k, n))
        return out

    def remember(self, store_id: int, pairs: Iterable[tuple[str, str]]) -> None:
        for k, n in pairs:
            self._add(hash((store_id, k, n)))

    def _add(self, h: int) -> None:
        if len(self._new) >= self.generation:
            self._old, self._new = self._new, set()
        self._new.add(h)

    def forget(self) -> None:
        """Forget every pair (a pool connection new to the cache: PgStatementRepository)."""
        self._new.clear()
        self._old.clear()


class KnownDefinitions:
    """The Activity definitions this process has merged into each store, so an append need not
    send one again while the store's definitions are as they were then (migration 0040).

    Per store: the store's definitions version after this process's last append, and for each
    Activity the definition (as sent, hashed) that append merged. A definition merged twice
    changes nothing, so while the version stands (nothing has changed any definition of the
    store since) the same definition need not be merged again. An append that leaves some out
    names the version; the store refuses it when its version differs, and the process then
    forgets the store (``forget``) and sends everything.

    Bounded in memory: hashes of the id and of the definition's JSON (~100-130 bytes an
    Activity), at most ``limit`` Activities in all; past it, only the store just learnt from is
    kept, and of it only what its last append merged. Hashes are 64 bits: two Activities of a
    store with one id hash and one definition hash (two with the same definition, as those
    giving only a type often have, and ids that collide: odds of ~1 in 10^10 for 20,000
    Activities), or one Activity's two definitions with one hash (~1 in 10^19), would leave a
    definition unmerged while the store's version stands."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._stores: dict[int, tuple[int, dict[int, int]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def version(self, store_id: int) -> tuple[int | None, dict[int, int]]:
        """The store's definitions version this process knows, and what was merged at it."""
        return self._stores.get(store_id, (None, {}))

    def learn(self, store_id: int, before: int, after: int, merged: dict[int, int | None]) -> None:
        """An append committed: the store's version was ``before`` when it merged (it changed
        nothing else) and ``after`` once it had; ``merged``: Activity -> the hash of the one
        definition it merged (None: a fold of several, not kept)."""
        version, known = self._stores.pop(store_id, (None, {}))
        self._size -= len(known)
        # what was known holds still only when nothing changed between then and this merge
        kept = known if version == before else {}
        for key, digest in merged.items():
            if digest is None:
                kept.pop(key, None)
            else:
                kept[key] = digest
        if self._size + len(kept) > self.limit:
            self._stores.clear()
            self._size = 0
            if len(kept) > self.limit:
                kept = {k: d for k, d in merged.items() if d is not None}
        self._stores[store_id] = (after, kept)
        self._size += len(kept)

    def forget(self, store_id: int | None = None) -> None:
        """Forget one store (its version moved on), or every store (a new connection)."""
        if store_id is None:
            self._stores.clear()
            self._size = 0
        else:
            _, known = self._stores.pop(store_id, (None, {}))
            self._size -= len(known)


@dataclass
class DefinitionArgs:
    """The definition and name documents of spor_merge_definitions (migration 0022) for a
    group of appended statements: Activity id -> definition folded over the group, as JSON,
    and the [agent key, name] pairs not known to be stored. With ``KnownDefinitions``, the
    Activities whose definitions were merged already are left out: ``version`` is the version
    they were merged at (None: none left out), and ``merged`` what the others are, for
    ``KnownDefinitions.learn`` once the append commits."""

    defs: bytes
    names: list[tuple[str, str]]
    version: int | None = None
    merged: dict[int, int | None] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.defs == b"{}" and not self.names

    def names_json(self) -> bytes:
        return orjson.dumps(self.names)


def definition_args(store_id: int, items: list[Prepared], known: KnownNames | None = None,
                    known_definitions: KnownDefinitions | None = None) -> DefinitionArgs:
    """What appending ``items`` merges into the canonical definitions and agent names; with
    ``known_definitions``, without the definitions merged already at the version it knows."""
    names: dict[tuple[str, str], None] = {}
    given_to: dict[str, list[dict[str, Any]]] = {}
    for p in items:
        _add_names(p.body, names)
        _add_definitions(p.body, given_to)
    pairs = list(names) if known is None else known.unknown(store_id, names)
    version, merged_before = (None, {}) if known_definitions is None else known_definitions.version(store_id)
    folded: dict[str, dict[str, Any]] = {}
    merged: dict[int, int | None] = {}
    left_out = False
    for aid, given in given_to.items():
        activity = hash(aid)
        digests = {hash(orjson.dumps(d)) for d in given}
        digest = digests.pop() if len(digests) == 1 else None
        if version is not None and digest is not None and merged_before.get(activity) == digest:
            left_out = True
            continue
        merged[activity] = digest
        if (definition := _fold(given)) is not None:
            folded[aid] = with_tag_order(definition)
    defs = orjson.dumps(folded)
    if b"\\u0000" in defs:
        # an extension value holding U+0000 (lrs.ops.statements.check_storable lets those through):
        # the canonical copy is jsonb, which cannot hold it; the statement keeps it
        defs = orjson.dumps(without_nul(orjson.loads(defs)))
    return DefinitionArgs(defs, pairs, version if left_out else None, merged)


async def upsert_definitions(conn: asyncpg.Connection, store_id: int, args: DefinitionArgs) -> None:
    """Merge the Activity definitions (and agent names) of appended statements, one round trip.

    Must run in the append's transaction, after the store lock is taken, so definitions are
    applied in position order.
    """
    if not args.empty:
        await conn.execute(sql("merge_definitions"), store_id, args.defs, args.names_json())


async def canonical_definitions(pool_or_conn: asyncpg.Pool | asyncpg.Connection, store_id: int,
                                ids: list[str]) -> dict[str, dict[str, Any]]:
    """Activity id -> canonical definition, for the ids that have one."""
    if not ids:
        return {}
    async with translated():
        if isinstance(pool_or_conn, asyncpg.Pool):
            # A pool connection is scoped to the store (row-level security, migration 0004); a
            # connection passed in is already scoped by its owner.
            async with scoped(pool_or_conn, [store_id]) as conn:
                rows = await conn.fetch(sql("canonical_definitions"), store_id, list(ids))
        else:
            rows = await pool_or_conn.fetch(sql("canonical_definitions"), store_id, list(ids))
    return {r["activity_id"]: r["definition"] for r in rows}


# At most this many of the names seen for one agent are given (GET /agents): every statement may
# name its actor differently, and a Person object holding all of them grew with the store.
AGENT_NAMES_MAX = 100


async def agent_names(pool_or_conn: asyncpg.Pool | asyncpg.Connection, store_id: int, agent_key: str) -> list[str]:
    """Names seen in statements for the agent with this IFI key: the first AGENT_NAMES_MAX in the
    database's order of text."""
    async with translated():
        if isinstance(pool_or_conn, asyncpg.Pool):
            async with scoped(pool_or_conn, [store_id]) as conn:
                rows = await conn.fetch(sql("agent_names"), store_id, agent_key, AGENT_NAMES_MAX)
        else:
            rows = await pool_or_conn.fetch(sql("agent_names"), store_id, agent_key, AGENT_NAMES_MAX)
    return [r["name"] for r in rows]
