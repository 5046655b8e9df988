"""Which requests of one group append may void what (lrs.store.statements._accepted_writes):
each request is judged against the whole group, and a cascade of refusals is bounded."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from lrs.errors import Forbidden, ServiceUnavailable
from lrs.ops.principal import Principal
from lrs.ops.statements import prepare
from lrs.store.statements import MAX_VOIDING_PASSES, _accepted_writes, _Write
from tests.statements import statement

VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def writer(name: str) -> Principal:
    authority = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": name}}
    return Principal(1, None, frozenset({"statements/write"}), authority, f"account:https://spor.example.org|{name}")


def voiding(target: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"mbox": "mailto:lms@example.org"}, "verb": {"id": VOIDED},
            "object": {"objectType": "StatementRef", "id": target}}


def request(*statements: dict[str, Any], by: str = "app") -> _Write:
    return _Write([prepare(s, writer(by), "2.0.0") for s in statements], [], False, False)


def cascade(length: int) -> tuple[list[_Write], dict[str, str | None]]:
    """Request j holds a statement of its own and voids the statement of request j+1; the last
    voids a stored statement of another credential, so it is refused, and then each before it."""
    others = str(uuid.uuid4())
    own = [{"id": str(uuid.uuid4()), **statement()} for _ in range(length)]
    writes = [request(own[j], voiding(own[j + 1]["id"]) if j + 1 < length else voiding(others))
              for j in range(length)]
    return writes, {others: "account:https://spor.example.org|someone-else"}


def test_a_voiding_may_target_a_statement_of_a_later_request_of_its_own_credential() -> None:
    target = {"id": str(uuid.uuid4()), **statement()}
    writes = [request(voiding(target["id"])), request(target)]
    outcomes: list[datetime | BaseException | None] = [None, None]
    accepted, taken = _accepted_writes(writes, {}, {}, outcomes)
    assert outcomes == [None, None] and set(taken) == {0, 1} and target["id"] in accepted


def test_a_short_cascade_of_refusals_is_followed_to_its_end() -> None:
    writes, stored = cascade(3)
    outcomes: list[datetime | BaseException | None] = [None] * 3
    _, taken = _accepted_writes(writes, {}, stored, outcomes)
    assert taken == {} and all(isinstance(o, Forbidden) for o in outcomes), outcomes


def test_a_long_cascade_stops_after_a_bounded_number_of_passes() -> None:
    """Each refusal costs a pass over the group under the store's lock (a review: 1,000 such
    requests took 1.1 s): after MAX_VOIDING_PASSES the requests with voidings are sent back."""
    writes, stored = cascade(40)
    plain = request({"id": str(uuid.uuid4()), **statement()})
    outcomes: list[datetime | BaseException | None] = [None] * 41
    _, taken = _accepted_writes([*writes, plain], {}, stored, outcomes)
    assert sum(isinstance(o, Forbidden) for o in outcomes) == MAX_VOIDING_PASSES
    assert sum(isinstance(o, ServiceUnavailable) for o in outcomes) == 40 - MAX_VOIDING_PASSES
    assert list(taken) == [40] and outcomes[40] is None

