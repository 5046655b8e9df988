"""The ``spor`` command line: serve, and the store/credential administration commands."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from lrs.ops import bootstrap
from lrs.settings import Settings
from lrs.store.credentials import PgCredentialRepository
from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import migrate

DATABASE = "spor"


def _public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')  # name is the constant DATABASE
    finally:
        await conn.close()


def resolve_database(settings: Settings) -> tuple[Settings, EmbeddedPostgres | None]:
    """Use SPOR_DATABASE_URL, or start the embedded cluster in the data folder."""
    if settings.database_url:
        return settings, None
    embedded = EmbeddedPostgres(settings.data_dir, pg_bin=Path(settings.pg_bin) if settings.pg_bin else None)
    admin_url = embedded.start()
    asyncio.run(_ensure_database(admin_url, DATABASE))
    return settings.with_(database_url=embedded.url(DATABASE)), embedded


async def _prepare(settings: Settings) -> bootstrap.NewCredential | None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn)
        await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                  schema="pg_catalog")
        return await bootstrap.ensure_default(PgCredentialRepository(conn), _public_url(settings))
    finally:
        await conn.close()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lrs.app import create_app
    from lrs.logs import configure

    settings = Settings.from_env(host=args.host, port=args.port)
    configure(settings.log_format, settings.log_level)
    settings, embedded = resolve_database(settings)
    try:
        created = asyncio.run(_prepare(settings))
        if embedded is not None:
            print(f"  embedded database: {embedded.data_dir} (PostgreSQL from {embedded.pg_bin})", flush=True)
        if created is not None:
            print(f"  store: {created.store}", flush=True)
            print(f"  key:    {created.key}", flush=True)
            print(f"  secret: {created.secret}", flush=True)
            print("  (the secret is shown only now; `spor credential create` makes more)", flush=True)
        print(f"Spor is starting. Point your xAPI client at: {_public_url(settings)}/xapi/", flush=True)
        # uvicorn shuts down gracefully on SIGTERM/SIGINT (finishing in-flight requests), then
        # re-raises the signal; exiting normally from it lets the embedded database stop too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_config=None,
            access_log=False, timeout_graceful_shutdown=30, loop="auto", http="auto",
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _with_db(settings: Settings, work: Any) -> Any:
    settings, embedded = resolve_database(settings)

    async def run() -> Any:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await migrate(conn)
            await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                      schema="pg_catalog")
            return await work(PgCredentialRepository(conn), settings)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()  # a no-op when a running `spor serve` owns the cluster


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


def cmd_store(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def work(repo: PgCredentialRepository, s: Settings) -> list[dict[str, Any]]:
        if args.action == "create":
            sid = await repo.create_store(args.name, args.organisation)
            return [{"id": sid, "name": args.name}]
        return await repo.list_stores()

    _print(_with_db(settings, work), args.json)
    return 0


def cmd_credential(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def work(repo: PgCredentialRepository, s: Settings) -> list[dict[str, Any]]:
        if args.action == "create":
            c = await bootstrap.create_credential(
                repo, args.store, label=args.label or "", scopes=args.scope or ["all"], public_url=_public_url(s)
            )
            return [{"store": c.store, "key": c.key, "secret": c.secret, "scopes": c.scopes}]
        if args.action == "revoke":
            if not await repo.revoke(args.key):
                raise SystemExit(f"no active credential with key {args.key!r}")
            return [{"key": args.key, "revoked": True}]
        return await repo.list_credentials()

    _print(_with_db(settings, work), args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spor", description="Spor: an xAPI Learning Record Store on PostgreSQL")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the xAPI server")
    serve.add_argument("--host", default=None, help="address to listen on (SPOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (SPOR_PORT, default 8080)")
    serve.set_defaults(func=cmd_serve)

    store = sub.add_parser("store", help="create or list stores")
    store.add_argument("action", choices=["create", "list"])
    store.add_argument("name", nargs="?")
    store.add_argument("--organisation", default=None)
    store.add_argument("--json", action="store_true", help="machine-readable output")
    store.set_defaults(func=cmd_store)

    cred = sub.add_parser("credential", help="create, list or revoke credentials")
    cred.add_argument("action", choices=["create", "list", "revoke"])
    cred.add_argument("--store", default=bootstrap.DEFAULT_STORE)
    cred.add_argument("--label", default=None)
    cred.add_argument("--scope", action="append", help="xAPI scope (repeatable; default all)")
    cred.add_argument("--key", default=None, help="credential key (for revoke)")
    cred.add_argument("--json", action="store_true", help="machine-readable output")
    cred.set_defaults(func=cmd_credential)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "store" and args.action == "create" and not args.name:
        raise SystemExit("spor store create NAME")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
