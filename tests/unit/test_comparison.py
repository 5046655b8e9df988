"""Statement comparison normal form (xAPI Data 2.3.1; IEEE 9274.1.1 4.2.7 for durations)."""

from __future__ import annotations

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
    assert same_statement(sent, stored)
    assert not same_statement({**sent, "timestamp": "2025-01-01T00:00:00Z"}, stored)
    assert same_statement({**sent, "timestamp": "2026-01-01T01:00:00+01:00"}, stored)


def test_an_unknown_default_version_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="SPOR_XAPI_DEFAULT_VERSION"):
        Settings.from_env({"SPOR_XAPI_DEFAULT_VERSION": "banana"})
