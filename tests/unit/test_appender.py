"""The group appender: requests of a store grouped, up to ``in_flight`` groups written at once."""

from __future__ import annotations

import asyncio

import pytest

from lrs.store.appender import GroupAppender


class _Writer:
    """A group writer whose groups finish when the test says so."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release: list[asyncio.Event] = []
        self.active = 0
        self.most_active = 0

    async def __call__(self, store: int, items: list[str]) -> list[str | BaseException]:
        self.groups.append(list(items))
        gate = asyncio.Event()
        self.release.append(gate)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await gate.wait()
        finally:
            self.active -= 1
        if "bad" in items:
            if len(items) > 1:
                raise RuntimeError("the group fails")
            return [ValueError("refused")]
        return [f"{store}:{i}" for i in items]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_second_group_is_written_while_the_first_is_in_flight() -> None:
    w = _Writer()
    appender: GroupAppender[str, str] = GroupAppender(w, in_flight=2)
    a = asyncio.create_task(appender.submit(1, "a", 1))
    await _settle()
    b = asyncio.create_task(appender.submit(1, "b", 1))
    c = asyncio.create_task(appender.submit(1, "c", 1))
    await _settle()
    # "a" alone, then "b" in a second group at once (room for it); "c" came with it
    assert w.groups == [["a"], ["b", "c"]] and w.active == 2
    d = asyncio.create_task(appender.submit(1, "d", 1))
    await _settle()
    assert len(w.groups) == 2  # no room: "d" waits for a group to end
    w.release[1].set()
    await _settle()
    assert (await b, await c) == ("1:b", "1:c") and not a.done()
    assert w.groups[2] == ["d"]
    w.release[0].set()
    w.release[2].set()
    assert (await a, await d) == ("1:a", "1:d")
    assert w.most_active == 2 and appender.groups_written == 3


async def test_one_group_at_a_time_with_in_flight_one() -> None:
    w = _Writer()
    appender: GroupAppender[str, str] = GroupAppender(w, in_flight=1)
    tasks = [asyncio.create_task(appender.submit(1, x, 1)) for x in "ab"]
    await _settle()
    tasks.append(asyncio.create_task(appender.submit(1, "c", 1)))
    await _settle()
    assert w.groups == [["a", "b"]]
    w.release[0].set()
    await _settle()
    assert w.groups == [["a", "b"], ["c"]]
    w.release[1].set()
    assert await asyncio.gather(*tasks) == ["1:a", "1:b", "1:c"]
    assert w.most_active == 1


async def test_stores_are_written_independently_and_the_writer_goes_when_done() -> None:
    w = _Writer()
    appender: GroupAppender[str, str] = GroupAppender(w, in_flight=1)
    one = asyncio.create_task(appender.submit(1, "x", 1))
    two = asyncio.create_task(appender.submit(2, "y", 1))
    await _settle()
    assert w.groups == [["x"], ["y"]] and w.active == 2
    for gate in w.release:
        gate.set()
    assert (await one, await two) == ("1:x", "2:y")
    await _settle()
    assert appender._writers == {} and appender._queues == {}


async def test_a_failing_group_is_retried_request_by_request_while_another_is_in_flight() -> None:
    w = _Writer()
    appender: GroupAppender[str, str] = GroupAppender(w, in_flight=2)
    first = asyncio.create_task(appender.submit(1, "a", 1))
    await _settle()
    bad = asyncio.create_task(appender.submit(1, "bad", 1))
    good = asyncio.create_task(appender.submit(1, "ok", 1))
    await _settle()
    w.release[1].set()  # the group ["bad", "ok"] fails; each is tried alone
    for _ in range(2):
        await _settle()
        w.release[-1].set()
    await _settle()
    with pytest.raises(ValueError, match="refused"):
        await bad
    assert await good == "1:ok"
    w.release[0].set()
    assert await first == "1:a"
    assert w.groups == [["a"], ["bad", "ok"], ["bad"], ["ok"]]


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="in_flight"):
        GroupAppender(_Writer(), in_flight=0)
