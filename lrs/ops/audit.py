"""The audit trail's rules: where reads of personal data are recorded, and how a refused one is.

A read of personal data is recorded when it succeeds (the rows and people it returned), and
also when it is refused: a caller asking for records it may not see (a dashboard credential
asking for a person's transcript, a person signed in asking for a colleague's statements) is
what an auditor looks for first (GDPR art. 32, Normen's logging rules). The request asked is
kept as it was, with ``refused`` naming the status the client got and why, so
``spor audit --person`` finds attempts on a person beside the reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from lrs.errors import Forbidden, LRSError
from lrs.logs import log
from lrs.ops.principal import Principal

# The longest text an audit record keeps of any one value (and of a key). What a client asked is
# recorded as it came, and a caller refused for want of a scope must not be able to write rows
# of any size into a table that is never trimmed; a longer value also could not be indexed
# (``request ->> 'agent'``, migration 0017: a btree entry holds ~2,700 bytes), so the record
# would be lost. 512 characters are at most 2,048 bytes of UTF-8.
MAX_RECORDED_CHARS = 512


def recordable(value: Any) -> Any:
    """``value`` as an audit record keeps it: every string (and key) cut to MAX_RECORDED_CHARS
    with a note of its length, NUL characters (which jsonb refuses) replaced. Lists keep every
    element: an export's record lists the people of all its rows."""
    if isinstance(value, str):
        text = value.replace("\x00", "\ufffd")
        if len(text) > MAX_RECORDED_CHARS:
            return f"{text[:MAX_RECORDED_CHARS]}... ({len(text)} characters)"
        return text
    if isinstance(value, dict):
        return {recordable(str(k)): recordable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [recordable(v) for v in value]
    return value


class AuditTrail(Protocol):
    """Where reads of personal data are recorded (lrs.store.audit)."""

    async def record(self, principal: Principal, action: str, request: dict[str, Any], records: int) -> None: ...


@contextlib.asynccontextmanager
async def refusals_recorded(audit: AuditTrail | None, principal: Principal, action: str,
                            asked: Callable[[], dict[str, Any] | None]) -> AsyncIterator[None]:
    """Around the scope checks of a read of personal data: a Forbidden raised inside is recorded
    (``record_refusal``, with what ``asked()`` gives; nothing when it gives None) and raised on."""
    try:
        yield
    except Forbidden as exc:
        tried = asked()
        if tried is not None:
            await record_refusal(audit, principal, action, tried, exc)
        raise


async def record_refusal(audit: AuditTrail | None, principal: Principal, action: str, asked: dict[str, Any],
                         refusal: LRSError, reason: str | None = None) -> None:
    """Record a refused read (no records returned). ``reason`` replaces the client's message
    where that hides the truth (a 404 for a statement that exists but is not the caller's).

    A refusal that cannot be recorded is still refused: the failure is logged, and the caller
    raises ``refusal`` as it would have (a database outage must not turn a 403 into a 500)."""
    if audit is None:
        return
    why = {"status": refusal.status, "reason": reason or refusal.message}
    try:
        await audit.record(principal, action, {**asked, "refused": why}, 0)
    except Exception as exc:  # the refusal stands whatever went wrong here
        # the error's kind only: a database error's text can quote what was asked
        log.warning("audit_refusal_lost", action=action, credential=principal.credential_id,
                    status=refusal.status, error=type(exc).__name__,
                    sqlstate=getattr(exc, "sqlstate", None))
