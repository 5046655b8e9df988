"""Named SQL: every query lives in a ``lrs/store/sql/*.sql`` file under a ``-- name:`` line.

Format of each entry::

    -- name: statement_by_id
    -- One statement of a store by id, with its voided flag.
    SELECT ...;

The files are read once (``load_queries``); code asks for ``QUERIES["statement_by_id"]``. A test
checks that every name the code uses exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Query:
    """One named query: its name, the one-line description and the SQL text."""

    name: str
    description: str
    sql: str


def parse_queries(text: str, source: str) -> dict[str, Query]:
    """Split one .sql file into named queries; a duplicate or undescribed name is an error."""
    queries: dict[str, Query] = {}
    name: str | None = None
    description = ""
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not description or not sql:
            raise ValueError(f"{source}: query {name!r} needs a description line and SQL")
        if name in queries:
            raise ValueError(f"{source}: query {name!r} defined twice")
        queries[name] = Query(name, description, sql.rstrip(";"))

    for line in text.splitlines():
        m = _NAME.match(line)
        if m:
            flush()
            name, description, body = m.group("name"), "", []
        elif name is not None and not description and not body and line.startswith("--"):
            description = line.lstrip("-").strip()
        elif name is not None:
            body.append(line)
    flush()
    return queries


@cache
def load_queries() -> dict[str, Query]:
    """All named queries of all files in ``lrs/store/sql`` (migrations excluded)."""
    out: dict[str, Query] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        for name, q in parse_queries(path.read_text(), path.name).items():
            if name in out:
                raise ValueError(f"{path.name}: query {name!r} already defined elsewhere")
            out[name] = q
    return out


def sql(name: str) -> str:
    """The SQL text of a named query (KeyError names the missing query)."""
    try:
        return load_queries()[name].sql
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} in {SQL_DIR}") from None
