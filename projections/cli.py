"""Command-line commands of the projections: ``spor import org|people|requirements FILE`` and
``spor projections status|rebuild NAME|run|retry NAME``.

``lrs/cli.py`` adds them with ``projections.cli.add_subcommands(sub)``; ``python -m
projections.cli ...`` runs them on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from projections import reference, runner
from projections.facts import Window
from projections.models import ALL, by_name


def _database_url() -> tuple[str, Any]:
    # imported here: lrs.cli imports this module to add the subcommands
    from lrs.cli import resolve_database
    from lrs.settings import Settings

    settings, embedded = resolve_database(Settings.for_command("spor projections"), create=False)
    assert settings.database_url
    return settings.database_url, embedded


def _run(work: Callable[[str], Awaitable[int]]) -> int:
    url, embedded = _database_url()

    async def go() -> int:
        from lrs.store.migrate import migrate_and_advise

        conn = await asyncpg.connect(url)
        try:
            await migrate_and_advise(conn)
        finally:
            await conn.close()
        return await work(url)

    from lrs.database import stop_if_unused
    from lrs.store.db import exit_if_database_lost

    try:
        with exit_if_database_lost("spor projections"):
            return asyncio.run(go())
    finally:
        # left running for a `spor serve` or anyone else connected: the last one out stops it
        stop_if_unused(embedded, holds_folder=False)


async def _store_id(conn: asyncpg.Connection, name: str) -> int:
    from lrs.store.queries import sql

    sid = await conn.fetchval(sql("projection_store_by_name"), name)
    if sid is None:
        raise SystemExit(f"no store named {name!r} (`spor store list` shows them)")
    return int(sid)


def cmd_import(args: argparse.Namespace) -> int:
    """Import reference data from a CSV or JSON file as events."""
    path = Path(args.file)
    try:
        parsed = reference.parse_file(args.kind, path)
    except reference.ImportFailed as exc:
        sys.stderr.write(f"import refused, nothing applied:\n{exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"cannot read {path}: {exc}\n")
        return 2

    async def work(url: str) -> int:
        conn = await runner.connect(url)
        try:
            sid = await _store_id(conn, args.store)
            try:
                n = await reference.append(conn, sid, parsed.events,
                                           reference.store_check(sid, args.kind, parsed, path.name))
            except reference.ImportFailed as exc:
                sys.stderr.write(f"import refused, nothing applied:\n{exc}\n")
                return 2
        finally:
            await conn.close()
        print(f"{path.name}: {parsed.records} records read, {n} events appended to store {args.store}"
              + ("" if n else " (nothing changed)"))
        return 0

    return _run(work)


def _names(name: str) -> list[runner.Projection]:
    if name == "all":
        return list(ALL.values())
    try:
        return [by_name(name)]
    except KeyError as exc:
        raise SystemExit(str(exc.args[0])) from None


def cmd_projections(args: argparse.Namespace) -> int:
    """status, rebuild, run and retry."""
    if args.action == "status":
        return _run(lambda url: _status(url, args.json))
    if args.action == "rebuild":
        return _run(lambda url: _rebuild(url, _names(args.name or "all"), args.batch_size or runner.REBUILD_BATCH))
    if args.action == "retry":
        return _run(lambda url: _retry(url, _names(args.name or "all")))
    names = _names(args.name or "all")
    opts = runner.WorkerOptions(batch_size=args.batch_size or runner.RUN_BATCH, lease_seconds=args.lease_seconds,
                                poll_seconds=args.poll_seconds)
    return _run(lambda url: _work(url, names, opts, args.apply_delay))


async def _status(url: str, as_json: bool) -> int:
    conn = await runner.connect(url)
    try:
        rows = await runner.status(conn, list(ALL.values()))
        try:
            left = await runner.leftovers(conn, list(ALL.values()))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:  # the status is still shown
            print(f"leftover schemas could not be listed: {type(exc).__name__}", file=sys.stderr)
            left = []
    finally:
        await conn.close()
    if as_json:
        sys.stdout.write(orjson.dumps([r.as_dict() for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n")
        for x in left:  # the JSON on stdout keeps its shape; scripts see these on stderr
            print(_leftover_line(x), file=sys.stderr)
        return 0
    print(f"{'projection':<14} {'store':<20} {'position':>9} {'lag':>7} {'lag s':>8}  state")
    for r in rows:
        line = (f"{r.projection:<14} {r.store[:20]:<20} {r.position:>9} {r.lag_events:>7} "
                f"{r.lag_seconds:>8.1f}  {r.state}")
        if r.state == "failed":
            line += f" at position {r.failed_position}: {(r.error or '').splitlines()[0][:120]}"
        print(line)
    for x in left:
        print(_leftover_line(x))
    return 1 if any(r.state == "failed" for r in rows) else 0


def _leftover_line(x: runner.Leftover) -> str:
    why = ("the replaced tables, kept by a rebuild while a reader was still on them"
           if x.schema.endswith("_old") else "a rebuild that stopped before its swap")
    size = "size unknown (a table of it is in use)" if x.bytes is None else f"{x.bytes / 1e6:,.1f} MB"
    return (f"leftover {x.schema}: {size}, {why}; the next `spor projections rebuild {x.projection}` drops it"
            " (once no reader is on it)")


async def _rebuild(url: str, names: Sequence[runner.Projection], batch_size: int) -> int:
    # several at once, in parallel in the database; one progress bar over all of them
    label = "rebuild " + ", ".join(p.name for p in names)
    counts = await runner.rebuild_concurrently(url, names, batch_size=batch_size, progress=runner.Progress(label))
    for name, n in counts.items():
        print(f"{name}: rebuilt from {n} events and swapped in")
    return 0


async def _retry(url: str, names: Sequence[runner.Projection]) -> int:
    conn = await runner.connect(url)
    try:
        stores = [r["id"] for r in await conn.fetch("SELECT id FROM stores")]
        for p in names:
            await runner.retry(conn, p, stores)
    finally:
        await conn.close()
    return 0


async def _work(url: str, names: Sequence[runner.Projection], opts: runner.WorkerOptions, delay: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def slow(p: runner.Projection, store_id: int, window: Window) -> None:
        await asyncio.sleep(delay)

    worker = runner.Worker(url, names, opts, before_commit=slow if delay > 0 else None)
    print(f"projection worker {worker.owner}: {', '.join(p.name for p in names)}", flush=True)
    await worker.run(stop)
    return 0


def add_subcommands(sub: Any) -> None:
    """Add ``import`` and ``projections`` to the ``spor`` command's subparsers."""
    imp = sub.add_parser("import", help="import reference data (org tree, people, requirements) as events")
    imp.add_argument("kind", choices=list(reference.KINDS))
    imp.add_argument("file", help="a .csv or .json file (formats: docs/import-formats.md)")
    imp.add_argument("--store", default="default", help="the store the data belongs to (default: default)")
    imp.set_defaults(func=cmd_import)

    proj = sub.add_parser("projections", help="status, rebuild or run the read-model projections")
    proj.add_argument("action", choices=["status", "rebuild", "run", "retry"])
    proj.add_argument("name", nargs="?", help=f"projection ({', '.join(sorted(ALL))} or all; default all)")
    proj.add_argument("--json", action="store_true", help="machine-readable status")
    proj.add_argument("--batch-size", type=int, default=None,
                      help=f"events per window (default: run {runner.RUN_BATCH}, rebuild {runner.REBUILD_BATCH})")
    proj.add_argument("--lease-seconds", type=float, default=30.0)
    proj.add_argument("--poll-seconds", type=float, default=1.0)
    # a pause inside every batch's transaction: for crash tests and benchmarks only
    proj.add_argument("--apply-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    proj.set_defaults(func=cmd_projections)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spor")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
