"""Unit tests for lrs.ops.documents.MergeDecision: the split made before the store lock is used
only for the document it was made of."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from lrs.errors import BadRequest, PreconditionFailed
from lrs.ops.documents import MERGE, Document, MergeDecision, Preconditions, decide_post

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def doc(content: bytes, etag: str, content_type: str = "application/json") -> Document:
    return Document(content_type, etag, NOW, content)


async def test_the_split_made_ahead_is_used_for_the_same_document() -> None:
    decision = decide_post(Preconditions(), b'{"b": 2}', "application/json")
    await decision.prepare(doc(b'{"a": 1}', "e1"))
    # the document under the lock has that ETag: the split made ahead stands for it (the content
    # given here differs only to show which split was used; one ETag is one content)
    write = decision(doc(b'{"other": 0}', "e1"))
    assert (write.kind, orjson.loads(write.content or b"")) == (MERGE, {"a": 1, "b": 2})


async def test_a_write_between_the_split_and_the_lock_is_merged_into_not_lost() -> None:
    decision = decide_post(Preconditions(), b'{"b": 2}', "application/json")
    await decision.prepare(doc(b'{"a": 1}', "e1"))
    write = decision(doc(b'{"a": 1, "c": 3}', "e2"))  # another write came in between
    assert orjson.loads(write.content or b"") == {"a": 1, "c": 3, "b": 2}


async def test_a_stored_document_that_is_no_object_is_said_after_the_preconditions() -> None:
    decision = MergeDecision(Preconditions(if_match=['"other"']), b'{"b": 2}', "application/json", None, {"b": "2"})
    await decision.prepare(doc(b"[1, 2]", "e1"))  # not an object: nothing split, nothing raised yet
    with pytest.raises(PreconditionFailed):
        decision(doc(b"[1, 2]", "e1"))
    decision = decide_post(Preconditions(), b'{"b": 2}', "application/json")
    await decision.prepare(doc(b"[1, 2]", "e1"))
    with pytest.raises(BadRequest, match="the stored document is not a JSON object"):
        decision(doc(b"[1, 2]", "e1"))
