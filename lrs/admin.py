"""Administration commands: ``spor store``, ``spor credential``, ``spor audit``, ``spor person``.

Output is a table for people and ``--json`` for scripts. Secrets are printed once, at creation
or rotation, and never again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from lrs import person_erasure, person_export
from lrs.data_folder_lock import DataFolderInUse, lock_data_folder
from lrs.database import require_cluster, resolve_database, stop_if_unused
from lrs.ops import bootstrap
from lrs.ops.terms import mbox_sha1_keys
from lrs.settings import Settings
from lrs.store.audit import PgAuditRepository
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import exit_if_database_lost, set_json_codecs
from lrs.store.migrate import migrate_and_advise
from projections.reference import identifier_key

Work = Callable[[asyncpg.Connection, Settings], Awaitable[list[dict[str, Any]]]]
_SPAN = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


def parse_when(text: str) -> datetime:
    """A point in time: an ISO 8601 date-time, or a span from now such as 90d, 12h, 2w."""
    m = _SPAN.match(text.strip())
    if m:
        return datetime.now(UTC) + timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"not a time or span: {text!r} (use e.g. 2027-01-31T00:00:00Z or 90d)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def run_with_database(work: Work, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Run ``work`` on an owner connection: SPOR_DATABASE_URL, or the embedded cluster (joined
    when a `spor serve` already runs on it, else started and stopped around the command)."""
    settings = settings or Settings.for_command("spor")
    held = None
    require_cluster(settings)  # before the lock, which would make the folder
    if not settings.database_url:
        # No server runs: the lock is this command's while it starts and stops the cluster (a
        # server starting meanwhile waits for it). One runs: this command joins its cluster.
        with contextlib.suppress(DataFolderInUse):
            held = lock_data_folder(settings.data_dir, holder="an administration command")
    try:
        return _run_with_database(work, settings, owns_cluster=held is not None)
    finally:
        if held is not None:
            os.close(held)


def _run_with_database(work: Work, settings: Settings, *, owns_cluster: bool) -> list[dict[str, Any]]:
    settings, embedded = resolve_database(settings, create=False)

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await migrate_and_advise(conn)
            await set_json_codecs(conn)
            return await work(conn, settings)
        finally:
            await conn.close()

    try:
        with exit_if_database_lost("spor"):
            return asyncio.run(run())
    finally:
        # left running for a `spor serve`, or anyone else connected (a projection worker)
        stop_if_unused(embedded, holds_folder=owns_cluster)


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """``--json``: a JSON array; otherwise an aligned table."""
    if as_json:
        sys.stdout.write(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        print("(none)")
        return

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        if isinstance(v, list | tuple):
            return ",".join(map(str, v))
        if isinstance(v, dict):
            return orjson.dumps(v).decode()
        return str(v)

    columns = list(rows[0])
    table = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cmd_store(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection, s: Settings) -> list[dict[str, Any]]:
        repo = PgCredentialRepository(conn)
        if args.action == "create":
            if not args.name:
                raise SystemExit("usage: spor store create NAME [--organisation ORG] [--region REGION]")
            if await repo.store_by_name(args.name):
                raise SystemExit(f"a store named {args.name!r} exists already")
            sid = await repo.create_store(args.name, args.organisation, args.region)
            return [{"id": sid, "name": args.name, "organisation": args.organisation, "region": args.region}]
        return await repo.list_stores()

    print_rows(run_with_database(work), args.json)
    return 0


def cmd_credential(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection, s: Settings) -> list[dict[str, Any]]:
        repo = PgCredentialRepository(conn)
        if args.action == "create":
            expires_at = parse_when(args.expires) if args.expires else None
            if expires_at is not None and expires_at <= datetime.now(UTC):
                raise SystemExit(f"--expires {args.expires}: that is in the past; the credential would never work")
            try:
                c = await bootstrap.create_credential(
                    repo, args.store, label=args.label or "", scopes=args.scope or ["all"],
                    public_url=public_url(s), expires_at=expires_at, region=args.region,
                )
            except (LookupError, ValueError) as exc:
                raise SystemExit(str(exc)) from None
            return [{"store": c.store, "key": c.key, "secret": c.secret, "scopes": c.scopes}]
        if args.action in ("revoke", "rotate") and not args.key:
            raise SystemExit(f"usage: spor credential {args.action} --key KEY")
        if args.action == "revoke":
            if not await repo.revoke(args.key):
                raise SystemExit(f"no active credential with key {args.key!r}")
            return [{"key": args.key, "revoked": True}]
        if args.action == "rotate":
            return [await _rotate(conn, repo, args, s)]
        return await repo.list_credentials()

    print_rows(run_with_database(work), args.json)
    return 0


async def _rotate(conn: asyncpg.Connection, repo: PgCredentialRepository, args: argparse.Namespace,
                  s: Settings) -> dict[str, Any]:
    """A new secret under a new key with the same store, scopes, label and authority; the old key
    stops working now, or after ``--grace`` so running clients can switch over."""
    old = await repo.by_key(args.key)
    if old is None or not old.active:
        raise SystemExit(f"no active credential with key {args.key!r}")
    store = await conn.fetchval("SELECT name FROM stores WHERE id = $1", old.store_id)
    async with conn.transaction():
        try:
            c = await bootstrap.create_credential(
                repo, store, label=old.label, scopes=list(old.scopes), public_url=public_url(s),
                expires_at=old.expires_at, region=old.region, rotated_from=old.id, authority=old.authority,
            )
        except ValueError as exc:  # a region made before create_credential checked it
            raise SystemExit(f"cannot rotate {args.key!r}: {exc}; revoke it and create a new one") from None
        if args.grace:
            await repo.expire(old.key, parse_when(args.grace))
        else:
            await repo.revoke(old.key)
    return {"store": c.store, "key": c.key, "secret": c.secret, "scopes": c.scopes, "replaces": old.key,
            "old_key_valid_until": parse_when(args.grace) if args.grace else "revoked now"}


def cmd_audit(args: argparse.Namespace) -> int:
    if bool(args.person) == bool(args.credential):
        raise SystemExit("usage: spor audit --person AGENT_KEY | --credential KEY [--limit N] [--json]")

    async def work(conn: asyncpg.Connection, s: Settings) -> list[dict[str, Any]]:
        audit = PgAuditRepository(conn)
        if args.person:
            return await audit.by_person(args.person, args.limit)
        return await audit.by_credential(args.credential, args.limit)

    print_rows(run_with_database(work), args.json)
    return 0


def cmd_person(args: argparse.Namespace) -> int:
    """``spor person export`` (lrs/person_export.py) and ``spor person erase``
    (lrs/person_erasure.py)."""
    try:
        return _person(args)
    except person_export.UnknownPerson as exc:
        raise SystemExit(f"{exc}; nothing done") from None


def _person(args: argparse.Namespace) -> int:
    if not args.person_id and not args.agent:
        raise SystemExit(f"usage: spor person {args.action} --store NAME (--person-id ID | --agent IDENTIFIER)..."
                         + (" --out FILE" if args.action == "export" else " [--yes]"))
    keys = []
    for given in args.agent or ():
        value = _agent_argument(given)
        key = identifier_key(value)
        if key is None:
            raise SystemExit(f"--agent {given!r}: not an identifier; give an xAPI agent as JSON, mailto:ADDRESS, "
                             "account:HOMEPAGE|NAME or openid:URL")
        keys.append(key)
        # the mbox_sha1sum of the address as typed, too: a client may have hashed those capitals
        typed = value.get("mbox") if isinstance(value, dict) else value
        if isinstance(typed, str) and key.startswith("mbox:"):
            keys += mbox_sha1_keys("mbox:" + typed.strip())
    if args.action == "erase":
        return _erase(args, keys)
    if not args.out:
        raise SystemExit("spor person export: --out FILE is required (the file to write)")
    try:
        # new, and readable by its owner alone: it holds a person's records
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SystemExit(f"--out {args.out}: exists already; name a new file") from None
    except OSError as exc:
        raise SystemExit(f"--out {args.out}: {exc.strerror}") from None
    done = handed = False

    async def work(conn: asyncpg.Connection, s: Settings) -> list[dict[str, Any]]:
        store = await _store_id(conn, args.store)
        identity = await person_export.identify(conn, store, keys, args.person_id or [])
        nonlocal done, handed
        handed = True
        with os.fdopen(fd, "wb") as out:
            counts = await person_export.export_person(conn, store, args.store, identity, out)
        await person_export.record_export(conn, store, identity, counts, by=f"spor person export ({_os_user()})")
        done = True
        return [{"file": args.out, "identifiers": identity.keys, "person_ids": identity.person_ids,
                 **counts.totals()}]

    try:
        print_rows(run_with_database(work), args.json)
    finally:
        if not done:  # a half-written export is no answer to anyone
            if not handed:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(args.out)
    return 0


def _erase(args: argparse.Namespace, keys: list[str]) -> int:
    """Erase (``--yes``) or show what erasing would take; then rebuild the read models, which
    still hold the person's rows, from the log (unless ``--no-rebuild``)."""
    async def work(conn: asyncpg.Connection, s: Settings) -> list[dict[str, Any]]:
        store = await _store_id(conn, args.store)
        identity, erased = await person_erasure.erase_person(conn, store, keys, args.person_id or [],
                                                             apply=args.yes, by=f"spor person erase ({_os_user()})")
        if args.yes and not args.no_rebuild:
            from projections import runner
            from projections.models import ALL

            print("erased; rebuilding the read models from the log (they still hold the person's rows)",
                  file=sys.stderr)
            assert s.database_url is not None
            await runner.rebuild_concurrently(s.database_url, list(ALL.values()),
                                              progress=runner.Progress("rebuild all"))
        return [{"erased" if args.yes else "would_erase": erased.counts(), "identifiers": identity.keys,
                 "person_ids": identity.person_ids, "former_identifiers_not_erased": identity.former,
                 "identifiers_someone_else_also_held": identity.shared}]

    rows = run_with_database(work)
    print_rows(rows, args.json)
    if not args.yes:
        print("nothing was erased: this was a dry run; add --yes to erase", file=sys.stderr)
    elif args.no_rebuild:
        print("the read models still hold the person's rows: run `spor projections rebuild all`", file=sys.stderr)
    return 0


async def _store_id(conn: asyncpg.Connection, name: str) -> int:
    store = await PgCredentialRepository(conn).store_by_name(name)
    if store is None:
        raise SystemExit(f"no store named {name!r}")
    return int(store["id"])


def _agent_argument(text: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise SystemExit(f"--agent {text!r}: not valid JSON") from None
    return text


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def add_subcommands(sub: Any) -> None:
    """Register store, credential, audit and person on the `spor` parser."""
    store = sub.add_parser("store", help="create or list stores (tenants)")
    store.add_argument("action", choices=["create", "list"])
    store.add_argument("name", nargs="?")
    store.add_argument("--organisation", default=None, help="the organisation that owns the store")
    store.add_argument("--region", default=None, help="region the store belongs to (for regional credentials)")
    store.add_argument("--json", action="store_true", help="machine-readable output")
    store.set_defaults(func=cmd_store)

    cred = sub.add_parser("credential", help="create, list, rotate or revoke credentials")
    cred.add_argument("action", choices=["create", "list", "rotate", "revoke"])
    cred.add_argument("--store", default=bootstrap.DEFAULT_STORE, help="store the credential belongs to")
    cred.add_argument("--label", default=None, help="who or what uses it, e.g. kursbyggeren")
    cred.add_argument("--scope", action="append", help="xAPI scope (repeatable; default all)")
    cred.add_argument("--expires", default=None, help="expiry: ISO date-time or a span such as 90d")
    cred.add_argument("--region", default=None, help="make it regional: read (never write) the region's stores")
    cred.add_argument("--key", default=None, help="credential key (rotate, revoke)")
    cred.add_argument("--grace", default=None, help="rotate: keep the old key valid this long (e.g. 1h)")
    cred.add_argument("--json", action="store_true", help="machine-readable output")
    cred.set_defaults(func=cmd_credential)

    audit = sub.add_parser("audit", help="who read whose records")
    audit.add_argument("--person", default=None, help="agent key, e.g. account:https://id.example.org|emp-1001")
    audit.add_argument("--credential", default=None, help="credential key")
    audit.add_argument("--limit", type=int, default=1000)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(func=cmd_audit)

    person = sub.add_parser("person", help="export (an access request) or erase everything about a person")
    person.add_argument("action", choices=["export", "erase"])
    person.add_argument("--store", default=bootstrap.DEFAULT_STORE, help="the store whose records it is")
    person.add_argument("--person-id", action="append", help="a person id of the people reference data (repeatable)")
    person.add_argument("--agent", action="append",
                        help="an identifier: xAPI agent JSON, mailto:ADDRESS, account:HOMEPAGE|NAME or openid:URL "
                             "(repeatable)")
    person.add_argument("--out", default=None, help="export: the file to write (new; readable by its owner alone)")
    person.add_argument("--yes", action="store_true", help="erase: do it (without: a dry run that shows the counts)")
    person.add_argument("--no-rebuild", action="store_true",
                        help="erase: leave the read models to a later `spor projections rebuild all`")
    person.add_argument("--json", action="store_true", help="machine-readable summary")
    person.set_defaults(func=cmd_person)
