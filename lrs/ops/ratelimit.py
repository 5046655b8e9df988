"""Per-credential request rate limit: a token bucket per caller, in this process.

Each ``spor serve`` process keeps its own buckets, so with N processes behind a balancer the
effective limit is up to N times the setting (documented in docs/security.md). A flood gets
429 with Retry-After instead of starving other tenants of the pool.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from lrs.errors import TooManyRequests


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``; rate <= 0 turns it off."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: dict[object, tuple[float, float]] = {}

    def check(self, caller: object) -> None:
        """Take one token for ``caller`` or raise TooManyRequests with Retry-After."""
        wait = self.take(caller)
        if wait:
            raise TooManyRequests(
                f"rate limit of {self.rate:g} requests per second exceeded for this credential",
                headers={"Retry-After": str(wait)},
            )

    def take(self, caller: object) -> int:
        """Take one token for ``caller``: 0 when taken, else whole seconds until one is there."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return max(math.ceil((1.0 - tokens) / self.rate), 1)
        self._buckets[caller] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            # Forget callers idle long enough to have a full bucket again.
            horizon = now - self.burst / self.rate
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > horizon}
        return 0

    def give_back(self, caller: object) -> None:
        """Return a token taken for ``caller`` (for work that turned out not to count)."""
        if caller in self._buckets:
            tokens, last = self._buckets[caller]
            self._buckets[caller] = (min(float(self.burst), tokens + 1.0), last)
