"""Statement comparison normal form (xAPI Data 2.3.1; IEEE 9274.1.1 4.2.7 for durations)."""

from __future__ import annotations

from typing import Any

import pytest

from lrs.ops.comparison import truncate_duration
from lrs.ops.statements import same_statement
from lrs.settings import Settings
from tests.statements import statement


@pytest.mark.parametrize(("a", "b"), [("PT1.2S", "PT1.20S"), ("PT1.2S", "PT1.201S"), ("PT5S", "PT5.00S"),
                                      ("P1DT12H36M0.1237S", "P1DT12H36M0.12S")])
def test_durations_equal_to_a_hundredth_compare_equal(a: str, b: str) -> None:
    assert truncate_duration(a) == truncate_duration(b)


@pytest.mark.parametrize(("a", "b"), [("PT1.2S", "PT1.21S"), ("PT1M", "PT2M"), ("PT0.13S", "PT0.12S")])
def test_different_durations_stay_different(a: str, b: str) -> None:
    assert truncate_duration(a) != truncate_duration(b)


def test_a_timestamp_the_lrs_filled_in_is_ignored_but_a_sent_one_is_compared() -> None:
    sent = statement()
    stored = {**sent, "id": "x", "stored": "2026-01-01T00:00:00.000Z", "timestamp": "2026-01-01T00:00:00.000Z",
              "authority": {"mbox": "mailto:a@example.org"}, "version": "1.0.0"}
    assert same_statement(sent, stored, "1.0.3")
    assert not same_statement({**sent, "timestamp": "2025-01-01T00:00:00Z"}, stored, "1.0.3")
    assert same_statement({**sent, "timestamp": "2026-01-01T01:00:00+01:00"}, stored, "1.0.3")


def test_a_duration_is_compared_to_the_hundredth_in_2_0_and_as_a_string_in_1_0_3() -> None:
    """IEEE 9274.1.1 4.2.7 against 1.0.3 Data 2.3.1.b8 ("considered a string")."""
    a = {**statement(), "result": {"duration": "PT1.2S"}}
    b = {**statement(), "result": {"duration": "PT1.20S"}}
    assert same_statement(a, b, "2.0.0")
    assert not same_statement(a, b, "1.0.3")
    assert same_statement(a, dict(a), "1.0.3")


ATTACHMENT = {"usageType": "http://example.org/usage/certificate", "display": {"en-US": "Certificate"},
              "description": {"nb-NO": "Kursbevis"}, "contentType": "application/pdf", "length": 10,
              "sha2": "ab" * 32}


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
@pytest.mark.parametrize(("what", "change"), [
    ("context.language", lambda s: s["context"].update(language="EN-us")),
    ("an attachment's display tag", lambda s: s["attachments"][0].update(display={"EN-US": "Certificate"})),
    ("an attachment's description tag", lambda s: s["attachments"][0].update(description={"NB-no": "Kursbevis"})),
    ("an attachment's sha2 digits", lambda s: s["attachments"][0].update(sha2="AB" * 32)),
    ("mbox_sha1sum digits", lambda s: s.update(actor={"mbox_sha1sum": "C0FFEE" + "0" * 34})),
])
def test_case_insensitive_values_in_another_case_are_the_same_statement(version: str, what: str, change: Any) -> None:
    """Data 2.3.1.b7: a change of case in a case-insensitive value does not change the statement:
    language tags (RFC 5646 2.1.1) and hex digits."""
    def sent() -> dict[str, Any]:
        return {**statement(), "actor": {"mbox_sha1sum": "c0ffee" + "0" * 34}, "context": {"language": "en-US"},
                "attachments": [dict(ATTACHMENT)]}
    again = sent()
    change(again)
    assert again != sent(), what
    assert same_statement(again, sent(), version), what


def test_an_unknown_default_version_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="SPOR_XAPI_DEFAULT_VERSION"):
        Settings.from_env({"SPOR_XAPI_DEFAULT_VERSION": "banana"})


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_a_leap_second_is_one_instant_in_any_notation(version: str) -> None:
    """Data 2.3.1: timestamp serialization differences MUST be ignored; second 60 was compared as
    text, so the same statement re-sent with +00:00 for Z (or across versions) was a 409."""
    base = {"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"id": "http://example.org/a"}}
    stored = {**base, "timestamp": "2016-12-31T23:59:60Z"}
    for same in ("2016-12-31T23:59:60+00:00", "2016-12-31T23:59:60.000Z", "2017-01-01T00:59:60+01:00"):
        assert same_statement({**base, "timestamp": same}, stored, version), same
    assert not same_statement({**base, "timestamp": "2016-12-31T23:59:59Z"}, stored, version)


def test_a_timestamp_without_offset_is_the_utc_instant_as_since_and_until_read_it() -> None:
    base = {"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"id": "http://example.org/a"}}
    assert same_statement({**base, "timestamp": "2020-01-01T00:00:00Z"}, {**base, "timestamp": "2020-01-01T00:00:00"},
                          "1.0.3")
