"""Rates and the token bucket: the arithmetic only, for one process (local memory) and for Redis.

A leaf: it imports nothing of the runner, so the models and fair use both use it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """'60/min', '5/s', '1000/h'; 'off' (or empty) is no limit."""
        if text.strip().lower() in ("off", ""):
            return None
        m = RATE.fullmatch(text.lower())
        if not m or m.group(2) not in UNITS or int(m.group(1)) < 1:
            raise ValueError(f"{text!r} is not a rate like 60/min, 5/s or 1000/h (or off)")
        return cls(int(m.group(1)), UNITS[m.group(2)])

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h", 86400: "d"}[self.seconds]
        return f"{self.count}/{unit}"


def setting_rate(name: str, value: str) -> Rate | None:
    try:
        return Rate.parse(value)
    except ValueError as e:
        raise ImproperlyConfigured(f"{name}: {e}") from None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one more run is allowed (0 when allowed)

    @classmethod
    def of(cls, rate: Rate, allowed: bool, tokens: float, count: int = 1) -> Decision:
        """What taking `count` tokens left: the bucket's tokens after the take."""
        reset = math.ceil((rate.count - tokens) / rate.per_second)
        retry = 0 if allowed else max(1, math.ceil((count - tokens) / rate.per_second))
        return cls(allowed, rate.count, math.floor(tokens), reset, retry)

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset)}  # fmt: skip


def refill(rate: Rate, tokens: float, at: float, now: float, count: int = 1) -> tuple[bool, float]:
    """Take `count` tokens (a run's test cases are a run each) from a bucket that held `tokens` at
    `at`, all or none: (allowed, tokens left)."""
    tokens = min(rate.count, tokens + max(0.0, now - at) * rate.per_second)
    if tokens >= count:
        return True, tokens - count
    return False, tokens


# The same bucket in Redis: one script, so two processes never read-modify-write past each
# other. Redis's own clock is used, so the servers' clocks don't matter.
BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_second)
local allowed = 0
if tokens >= count then
  tokens = tokens - count
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / per_second) + 1)
return {allowed, tostring(tokens)}
"""
