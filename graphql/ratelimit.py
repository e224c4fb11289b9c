"""A token-bucket rate limiter per key (a partner, a subject, a client address), safe across threads.

Each key has a bucket of ``burst`` tokens that refills at ``rate_per_second``; a request takes one
token, or is refused with the seconds until one is there (the ``Retry-After``). At most ``max_keys``
buckets are kept: the least recently used is dropped first, and a dropped key starts again full.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from c360.graph.errors import InvalidInputError


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per key: ``rate_per_second`` sustained, up to ``burst`` at once."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 10_000,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise InvalidInputError("rate_per_second must be a positive number")
        if burst < 1:
            raise InvalidInputError("burst must be at least 1")
        if max_keys < 1:
            raise InvalidInputError("max_keys must be at least 1")
        self.rate = float(rate_per_second)
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket: 0.0 if allowed, else the seconds to wait."""
        if cost > self.burst:
            raise InvalidInputError(f"a request cannot cost more than the burst ({self.burst})")
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)  # the least recently used
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)  # a clock that steps back refills nothing
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket (it starts full again)."""
        with self._lock:
            self._buckets.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


def retry_after(wait: float) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1) for a wait from :meth:`acquire`."""
    return str(max(1, math.ceil(wait)))
