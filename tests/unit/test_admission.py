"""The write budget (lrs/http/admission.py): bodies past the limit wait, first come first
served; one body larger than the limit goes alone; a client that leaves gives its place back."""

from __future__ import annotations

import asyncio

import pytest

from lrs.http.admission import WriteBudget
from lrs.settings import Settings


async def _holder(budget: WriteBudget, size: int, log: list[str], name: str, release: asyncio.Event) -> None:
    async with budget.hold(size):
        log.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_within_the_limit_go_at_once_and_the_rest_wait_in_order() -> None:
    budget = WriteBudget(100)
    log: list[str] = []
    gates = {n: asyncio.Event() for n in "abcd"}
    tasks = [asyncio.create_task(_holder(budget, size, log, n, gates[n]))
             for n, size in (("a", 60), ("b", 40), ("c", 50), ("d", 10))]
    await _settle()
    # a and b fill the budget; c waits, and d (small enough to fit later) waits behind c
    assert log == ["a", "b"] and budget.used == 100
    gates["b"].set()
    await _settle()
    assert log == ["a", "b"]  # 40 free: not enough for c, and d may not overtake it
    gates["a"].set()
    await _settle()
    assert log == ["a", "b", "c", "d"] and budget.used == 60
    gates["c"].set()
    gates["d"].set()
    await asyncio.gather(*tasks)
    assert budget.used == 0


async def test_a_body_larger_than_the_limit_is_admitted_alone() -> None:
    budget = WriteBudget(100)
    log: list[str] = []
    big, small = asyncio.Event(), asyncio.Event()
    t1 = asyncio.create_task(_holder(budget, 10_000, log, "big", big))
    await _settle()
    t2 = asyncio.create_task(_holder(budget, 1, log, "small", small))
    await _settle()
    assert log == ["big"] and budget.used == 100
    big.set()
    await _settle()
    assert log == ["big", "small"]
    small.set()
    await asyncio.gather(t1, t2)
    assert budget.used == 0


async def test_a_waiting_request_that_is_cancelled_leaves_the_queue() -> None:
    budget = WriteBudget(100)
    log: list[str] = []
    gates = {n: asyncio.Event() for n in "abc"}
    a = asyncio.create_task(_holder(budget, 80, log, "a", gates["a"]))
    await _settle()
    b = asyncio.create_task(_holder(budget, 50, log, "b", gates["b"]))
    c = asyncio.create_task(_holder(budget, 20, log, "c", gates["c"]))
    await _settle()
    assert log == ["a"]
    b.cancel()  # the client of b disconnected: c (which fits) goes now
    await _settle()
    assert log == ["a", "c"] and budget.used == 100
    with pytest.raises(asyncio.CancelledError):
        await b
    gates["a"].set()
    gates["c"].set()
    await asyncio.gather(a, c)
    assert budget.used == 0


async def test_a_request_cancelled_just_after_being_admitted_gives_its_bytes_back() -> None:
    budget = WriteBudget(100)
    log: list[str] = []
    gate = asyncio.Event()
    a = asyncio.create_task(_holder(budget, 100, log, "a", gate))
    await _settle()
    b = asyncio.create_task(_holder(budget, 100, log, "b", asyncio.Event()))
    await _settle()
    gate.set()
    await asyncio.sleep(0)  # a releases and admits b (its future resolved) ...
    assert log == ["a"] and budget.used == 100 and a.done()
    b.cancel()  # ... and b is cancelled before it runs
    await asyncio.gather(a, b, return_exceptions=True)
    assert budget.used == 0


def test_the_setting_must_be_positive() -> None:
    with pytest.raises(ValueError, match="SPOR_WRITE_BUFFER_BYTES"):
        Settings.from_env({"SPOR_WRITE_BUFFER_BYTES": "0"})
    assert Settings.from_env({"SPOR_WRITE_BUFFER_BYTES": "1048576"}).write_buffer_bytes == 1 << 20
