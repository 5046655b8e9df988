"""Who is asking: the authenticated caller of a request, as the rules below HTTP see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrs.errors import Forbidden

# xAPI Communication 4.2 (OAuth scopes), used for Basic credentials too.
ALL_SCOPES = frozenset(
    {"statements/write", "statements/read", "statements/read/mine", "all/read", "all", "state", "define", "profile",
     # Spor's own: the aggregated analyst views only (dashboards), never a person's rows
     "analytics/aggregates"}
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller bound to one store."""

    store_id: int
    credential_id: int | None
    scopes: frozenset[str]
    authority: dict[str, Any]
    authority_key: str
    # Set for a person signed in with OpenID Connect: the agent key of that person.
    person_key: str | None = None
    # Stores whose read models this caller may read: its own, or every store of its region for
    # a regional credential. xAPI resources always act on ``store_id`` alone.
    read_stores: tuple[int, ...] = ()

    @property
    def readable_stores(self) -> tuple[int, ...]:
        return self.read_stores or (self.store_id,)

    @property
    def reads_only_own(self) -> bool:
        """True when the caller may read only its own statements (statements/read/mine):
        those whose authority is the credential, or, for a person, those about the person."""
        return not (self.scopes & {"all", "all/read", "statements/read"})

    def holds(self, *any_of: str) -> bool:
        """Whether the caller holds one of the scopes (``all`` always does)."""
        return "all" in self.scopes or any(s in self.scopes for s in any_of)

    def require(self, *any_of: str) -> None:
        """Raise Forbidden unless the caller holds one of the scopes."""
        if self.holds(*any_of):
            return
        raise Forbidden(f"this credential lacks the scope for this request (needs one of: {', '.join(any_of)})")
