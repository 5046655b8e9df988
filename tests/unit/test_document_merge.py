"""Unit tests for lrs.ops.documents.MergeDecision: the split made before the store lock is used
only for the document it was made of."""

from __future__ import annotations

import inspect
import threading
from datetime import UTC, datetime

import orjson
import pytest

from lrs.errors import BadRequest, PreconditionFailed
from lrs.ops.documents import MERGE, SPLIT_IN_THREAD_BYTES, Document, MergeDecision, Preconditions, Write

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def doc(content: bytes, etag: str, content_type: str = "application/json") -> Document:
    return Document(content_type, etag, NOW, content)


async def test_the_split_made_ahead_is_used_for_the_same_document() -> None:
    decision = MergeDecision(Preconditions(), b'{"b": 2}', "application/json", None)
    await decision.prepare(doc(b'{"a": 1}', "e1"))
    # the document under the lock has that ETag: the split made ahead stands for it (the content
    # given here differs only to show which split was used; one ETag is one content)
    write = decision(doc(b'{"other": 0}', "e1"))
    assert isinstance(write, Write)
    assert (write.kind, orjson.loads(write.content or b"")) == (MERGE, {"a": 1, "b": 2})


async def test_a_write_between_the_split_and_the_lock_is_merged_into_not_lost() -> None:
    decision = MergeDecision(Preconditions(), b'{"b": 2}', "application/json", None)
    await decision.prepare(doc(b'{"a": 1}', "e1"))
    write = decision(doc(b'{"a": 1, "c": 3}', "e2"))  # another write came in between
    assert isinstance(write, Write)
    assert orjson.loads(write.content or b"") == {"a": 1, "c": 3, "b": 2}


async def test_a_stored_document_that_is_no_object_is_said_after_the_preconditions() -> None:
    decision = MergeDecision(Preconditions(if_match=['"other"']), b'{"b": 2}', "application/json", None)
    await decision.prepare(doc(b"[1, 2]", "e1"))  # not an object: nothing split, nothing raised yet
    with pytest.raises(PreconditionFailed):
        decision(doc(b"[1, 2]", "e1"))
    decision = MergeDecision(Preconditions(), b'{"b": 2}', "application/json", None)
    await decision.prepare(doc(b"[1, 2]", "e1"))
    with pytest.raises(BadRequest, match="the stored document is not a JSON object"):
        decision(doc(b"[1, 2]", "e1"))


async def test_a_large_merge_is_made_in_a_thread_with_a_write_in_between_merged_into() -> None:
    """Merging a large document is Python work a member at a time: under the store lock on the
    event loop, three merges of 7 MB into a 7 MB document held every other request 11.5 s (a
    memory audit). The decision hands the store an awaitable whose work runs in threads of its
    own (not behind other requests' splits, with the lock held); a small merge is decided at
    once."""
    big = {f"k{i}": i for i in range(40_000)}
    content = orjson.dumps(big)
    assert len(content) > SPLIT_IN_THREAD_BYTES
    decision = MergeDecision(Preconditions(), b'{"b": 2}', "application/json", None)
    await decision.prepare(doc(content, "e1"))
    threads: list[str] = []
    merged = decision._merged

    def spy(split: dict[str, str] | None, stored: bytes, content_type: str) -> bytes:
        threads.append(threading.current_thread().name)
        return merged(split, stored, content_type)

    decision._merged = spy  # type: ignore[method-assign]
    for etag, stored in (("e1", big), ("e2", {**big, "c": 3})):  # the split made ahead; a write in between
        pending = decision(doc(orjson.dumps(stored), etag))
        assert inspect.isawaitable(pending)
        write = await pending
        assert (write.kind, orjson.loads(write.content or b"")) == (MERGE, {**stored, "b": 2})
    assert len(threads) == 2 and all(t.startswith("spor-json-merge") for t in threads), threads
    small_decision = MergeDecision(Preconditions(), b'{"b": 2}', "application/json", None)
    await small_decision.prepare(None)  # (the posted document is split, nothing stored is large)
    small = small_decision(doc(b'{"a": 1}', "e1"))
    assert isinstance(small, Write) and orjson.loads(small.content or b"") == {"a": 1, "b": 2}


async def test_a_post_its_preconditions_refuse_splits_nothing_ahead() -> None:
    """A stale If-Match split the whole stored document, holding room in the write buffer every
    statement write waits for, only to answer 412 (a review). The check under the lock decides;
    ahead of it, a refused POST splits nothing."""
    content = orjson.dumps({f"k{i}": i for i in range(40_000)})
    stale = MergeDecision(Preconditions(if_match=["other"]), b'{"b": 2}', "application/json", None)
    await stale.prepare(doc(content, "e1"))
    assert stale.posted is not None and stale._split is None  # (the posted one is split: its 400 comes first)
    with pytest.raises(PreconditionFailed):
        stale(doc(content, "e1"))
    fresh = MergeDecision(Preconditions(if_match=["e1"]), b'{"b": 2}', "application/json", None)
    await fresh.prepare(doc(content, "e1"))
    assert fresh._split is not None and fresh._split[0] == "e1"
