"""An e-mail address and its mbox_sha1sum form name one person (migration 0036)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from lrs.ops.terms import mbox_sha1_keys
from projections.facts import PERSON_LINKED, PERSON_UNLINKED, Batch, Event

OLA = "account:https://id.example.org|emp-ola"


def test_an_address_is_also_found_in_its_sha1_forms() -> None:
    assert mbox_sha1_keys("mbox:mailto:ola@example.org") == [
        "sha1:" + hashlib.sha1(b"mailto:ola@example.org").hexdigest()]
    # the key's form (its domain lowered) and the address in lower case, as many clients hash it
    assert mbox_sha1_keys("mbox:mailto:Ola@example.org") == [
        "sha1:" + hashlib.sha1(b"mailto:Ola@example.org").hexdigest(),
        "sha1:" + hashlib.sha1(b"mailto:ola@example.org").hexdigest()]
    assert mbox_sha1_keys(OLA) == []


def test_linking_and_unlinking_an_address_does_the_same_to_its_sha1_form() -> None:
    """Migration 0036: the reference-data fold links the mbox_sha1sum form with the address."""
    address = "mbox:mailto:ola@example.org"
    [sha1] = mbox_sha1_keys(address)
    batch = Batch(1)
    now = datetime.now(UTC)
    batch.add(Event(1, 1, PERSON_LINKED, now, None, {"ifi": address, "person_id": "P-1"}), frozenset({"links"}))
    batch.add(Event(1, 2, PERSON_LINKED, now, None, {"ifi": OLA, "person_id": "P-1"}), frozenset({"links"}))
    assert batch.links == {address: "P-1", sha1: "P-1", OLA: "P-1"}
    batch.add(Event(1, 3, PERSON_UNLINKED, now, None, {"ifi": address, "person_id": "P-1"}), frozenset({"links"}))
    assert batch.links == {address: None, sha1: None, OLA: "P-1"}
