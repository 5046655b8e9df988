"""StatementRef inheritance walks the same number of hops in Python and in SQL."""

from __future__ import annotations

from lrs.ops.statements import MAX_REF_DEPTH
from lrs.store.queries import sql


def test_the_sql_walks_as_many_statement_ref_hops_as_the_python_one() -> None:
    """The chain walks in statements.sql (append_check's, the forward referrers') stop where
    inherit_target_terms does."""
    assert f"depth < {MAX_REF_DEPTH}" in sql("append_check")
    assert f"depth < {MAX_REF_DEPTH}" in sql("append_statements")
