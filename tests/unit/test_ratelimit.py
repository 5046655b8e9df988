from __future__ import annotations

import pytest

from lrs.errors import TooManyRequests
from lrs.ops.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("cred-1")
    with pytest.raises(TooManyRequests) as info:
        limiter.check("cred-1")
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "1"


def test_tokens_come_back_at_the_configured_rate_and_callers_are_separate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=1, clock=clock)
    limiter.check("a")
    limiter.check("b")  # another credential has its own bucket
    with pytest.raises(TooManyRequests):
        limiter.check("a")
    clock.now += 0.5
    limiter.check("a")


def test_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    for _ in range(10_000):
        limiter.check("a")
