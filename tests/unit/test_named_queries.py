"""Every query name the code asks for exists, once, with a description."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lrs.store.queries import load_queries, parse_queries

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"""\bsql\(\s*["']([a-z_][a-z0-9_]*)["']\s*\)""")


def used_names() -> set[str]:
    names: set[str] = set()
    for path in list((ROOT / "lrs").rglob("*.py")) + list((ROOT / "projections").rglob("*.py")):
        names.update(CALL.findall(path.read_text()))
    return names


def test_code_asks_for_queries_at_all() -> None:
    assert {"append_statements", "statement_by_id", "credential_by_key"} <= used_names()


def test_every_query_name_used_in_code_exists() -> None:
    missing = used_names() - set(load_queries())
    assert not missing, f"queries used but not defined in lrs/store/sql/*.sql: {sorted(missing)}"


def test_every_query_has_a_description_and_sql() -> None:
    for q in load_queries().values():
        assert q.description and q.sql.strip(), q.name


def test_duplicate_names_in_a_file_are_refused() -> None:
    text = "-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;\n"
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries(text, "x.sql")
