"""Canonical Activity definitions (and agent names): inline projections of the statement log.

Definitions are merged inside the statement append's transaction (``upsert_definitions`` on the
general path, ``spor_append_statements`` on the one-round-trip path, both calling the SQL
function ``spor_upsert_definitions``), so GET /activities and ``format=canonical`` are as
current as GET /statements. The batch is folded in Python first (later statements win,
language maps merge), then one statement upserts with ``unnest``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import asyncpg
import orjson

from lrs.ops import terms as T
from lrs.ops.activities import merge_definition
from lrs.ops.statements import Prepared
from lrs.store.db import scoped, translated
from lrs.store.queries import sql


def _activities(stmt: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Activities of a statement or SubStatement: object, context activities, nested object."""
    obj = stmt.get("object")
    if isinstance(obj, dict):
        kind = obj.get("objectType", "Activity")
        if kind == "Activity" and "id" in obj:
            yield obj
        elif kind == "SubStatement":
            yield from _activities(obj)
    ctx = stmt.get("context")
    if isinstance(ctx, dict) and isinstance(ctx.get("contextActivities"), dict):
        for value in ctx["contextActivities"].values():
            for act in value if isinstance(value, list) else [value]:
                if isinstance(act, dict) and "id" in act:
                    yield act


def _agents(stmt: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Agents (and Group members) named in a statement, for the Person object's names."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("objectType", "Agent") in ("Agent", "Group"):
                yield node
            for m in node.get("member") or ():
                yield from walk(m)

    yield from walk(stmt.get("actor"))
    obj = stmt.get("object")
    if isinstance(obj, dict):
        if obj.get("objectType") in ("Agent", "Group"):
            yield from walk(obj)
        elif obj.get("objectType") == "SubStatement":
            yield from _agents(obj)
    ctx = stmt.get("context")
    if isinstance(ctx, dict):
        yield from walk(ctx.get("instructor"))
        yield from walk(ctx.get("team"))


def fold_definitions(bodies: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Activity id -> definition merged over the statements in order."""
    out: dict[str, dict[str, Any]] = {}
    for body in bodies:
        for act in _activities(body):
            definition = act.get("definition")
            if isinstance(definition, dict) and definition:
                aid = str(act["id"])
                out[aid] = merge_definition(out.get(aid), definition)
    return out


def definition_args(items: list[Prepared]) -> tuple[list[str], list[bytes], list[str], list[str]]:
    """The arguments of spor_upsert_definitions for appended statements: Activity ids and
    their definitions folded over the batch, agent keys and names."""
    defs = fold_definitions(p.body for p in items)
    names: set[tuple[str, str]] = set()
    for p in items:
        for agent in _agents(p.body):
            key = T.agent_key(agent)
            name = agent.get("name")
            if key is not None and isinstance(name, str) and name:
                names.add((key, name))
    return list(defs), [orjson.dumps(d) for d in defs.values()], [k for k, _ in names], [n for _, n in names]


async def upsert_definitions(conn: asyncpg.Connection, store_id: int, items: list[Prepared]) -> None:
    """Merge the Activity definitions (and agent names) of appended statements, one round trip.

    Must run in the append's transaction, after the store lock is taken, so definitions are
    applied in position order.
    """
    ids, defs, keys, names = definition_args(items)
    if ids or keys:
        await conn.execute(sql("upsert_definitions"), store_id, ids, defs, keys, names)


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


async def agent_names(pool_or_conn: asyncpg.Pool | asyncpg.Connection, store_id: int, agent_key: str) -> list[str]:
    """Names seen in statements for the agent with this IFI key."""
    async with translated():
        if isinstance(pool_or_conn, asyncpg.Pool):
            async with scoped(pool_or_conn, [store_id]) as conn:
                rows = await conn.fetch(sql("agent_names"), store_id, agent_key)
        else:
            rows = await pool_or_conn.fetch(sql("agent_names"), store_id, agent_key)
    return [r["name"] for r in rows]
