"""An e-mail address and its mbox_sha1sum form name one person (migration 0036)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from lrs.ops.terms import mbox_sha1_key
from projections.facts import PERSON_LINKED, PERSON_UNLINKED, Batch, Event

OLA = "account:https://id.example.org|emp-ola"


def test_an_address_is_also_found_in_its_sha1_form() -> None:
    assert mbox_sha1_key("mbox:mailto:ola@example.org") == "sha1:" + hashlib.sha1(b"mailto:ola@example.org").hexdigest()
    assert mbox_sha1_key(OLA) is None


def test_linking_and_unlinking_an_address_does_the_same_to_its_sha1_form() -> None:
    """Migration 0036: the reference-data fold links the mbox_sha1sum form with the address."""
    address = "mbox:mailto:ola@example.org"
    sha1 = mbox_sha1_key(address)
    batch = Batch(1)
    now = datetime.now(UTC)
    batch.add(Event(1, 1, PERSON_LINKED, now, None, {"ifi": address, "person_id": "P-1"}), frozenset({"links"}))
    batch.add(Event(1, 2, PERSON_LINKED, now, None, {"ifi": OLA, "person_id": "P-1"}), frozenset({"links"}))
    assert batch.links == {address: "P-1", sha1: "P-1", OLA: "P-1"}
    batch.add(Event(1, 3, PERSON_UNLINKED, now, None, {"ifi": address, "person_id": "P-1"}), frozenset({"links"}))
    assert batch.links == {address: None, sha1: None, OLA: "P-1"}
