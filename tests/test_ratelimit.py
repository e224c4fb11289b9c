"""Token buckets per key, with an injected clock: bursts, refills, Retry-After, eviction, threads."""

from __future__ import annotations

import threading

import pytest
from c360.graph.errors import InvalidInputError
from c360.graphql.ratelimit import RateLimiter, retry_after


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_burst_is_allowed_then_the_wait_is_until_the_next_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, 3, clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.advance(0.2)
    assert limiter.acquire("a") == pytest.approx(0.3)  # a refusal takes nothing
    clock.advance(0.3)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, 5, clock)
    for _ in range(5):
        limiter.acquire("a")
    clock.advance(0.25)  # 2.5 tokens
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.05)]
    clock.advance(3600)
    assert sum(limiter.acquire("a") == 0.0 for _ in range(10)) == 5


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(1.0, 1, FakeClock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 1, clock)
    limiter.acquire("a")
    clock.advance(-10)
    assert limiter.acquire("a") == pytest.approx(1.0)


def test_a_request_may_cost_several_tokens() -> None:
    limiter = RateLimiter(1.0, 10, FakeClock())
    assert limiter.acquire("a", cost=8) == 0.0
    assert limiter.acquire("a", cost=4) == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="burst"):
        limiter.acquire("a", cost=11)


def test_memory_is_bounded_by_dropping_the_least_recently_used_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 1, clock, max_keys=2)
    limiter.acquire("a")
    limiter.acquire("b")
    assert limiter.acquire("a") > 0  # a is now the most recently used
    limiter.acquire("c")  # b goes
    assert len(limiter) == 2
    assert limiter.acquire("a") > 0  # a was kept, still empty
    assert limiter.acquire("b") == 0.0  # b starts full again
    for i in range(1000):
        limiter.acquire(f"k{i}")
    assert len(limiter) == 2


def test_reset_forgets_a_key() -> None:
    limiter = RateLimiter(1.0, 1, FakeClock())
    limiter.acquire("a")
    limiter.reset("a")
    limiter.reset("never-seen")
    assert limiter.acquire("a") == 0.0


def test_threads_together_get_exactly_the_burst() -> None:
    limiter = RateLimiter(1.0, 50, FakeClock())  # the clock stands still: no refills
    allowed: list[int] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        allowed.append(sum(limiter.acquire("shared") == 0.0 for _ in range(100)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50


@pytest.mark.parametrize(
    ("rate", "burst", "max_keys"), [(0, 1, 1), (-1, 1, 1), (float("inf"), 1, 1), (1, 0, 1), (1, 1, 0)]
)
def test_bad_settings_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(InvalidInputError):
        RateLimiter(rate, burst, max_keys=max_keys)


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (59.2, "60")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after(wait) == header


def test_the_default_clock_is_monotonic_time() -> None:
    limiter = RateLimiter(1.0, 1)
    assert limiter.acquire("a") == 0.0
    assert 0.5 < limiter.acquire("a") <= 1.0
