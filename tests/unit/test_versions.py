"""Version negotiation (lrs/http/versions.py, Communication 3.3)."""

from __future__ import annotations

import pytest

from lrs.http.versions import negotiate


@pytest.mark.parametrize(("header", "served"), [
    ("1.0", "1.0.3"), ("1.0.0", "1.0.3"), ("1.0.3", "1.0.3"), ("1.0.4", "1.0.3"), (" 1.0.17 ", "1.0.3"),
    ("2.0", "2.0.0"), ("2.0.0", "2.0.0"), ("2.0.9", "2.0.0"),
])
def test_1_0_and_2_0_with_any_patch_are_served(header: str, served: str) -> None:
    assert negotiate(header) == served


@pytest.mark.parametrize("header", [
    None, "", "1", "1.0.", "1.0.x", "1.0.3.1", "1.1.0", "0.95", "2.1", "3.0.0", "2.0.0-rc1",
    "1.0.\u0664",  # an Arabic-Indic digit is a digit to Python's \d, not a patch number
])
def test_anything_else_is_not(header: str | None) -> None:
    assert negotiate(header) is None
