"""Fair use: who a client is, its rate limit (a token bucket), its concurrent runs, and its credits.

The counters live in Django's cache: local memory for one process, Redis (REDIS_URL)
for several, where every count is one atomic script or command in Redis itself.
Doors call `admit()` before a run and `Pass.release()` after it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import re
import threading
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone

from .schemas import RequestError

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
CONCURRENCY_POLL_SECONDS = 0.05


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

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset)}  # fmt: skip


# A token bucket in Redis: one script, so two processes never read-modify-write past each other.
# Redis's own clock is used, so the servers' clocks don't matter.
BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_second)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / per_second) + 1)
return {allowed, tostring(tokens)}
"""
_local_lock = threading.Lock()


def _redis_client():
    """The redis-py client behind Django's Redis cache, or None for another backend."""
    backend = cache
    if backend.__class__.__name__ != "RedisCache":
        return None
    return backend._cache.get_client(write=True)


def take(bucket: str, rate: Rate) -> Decision:
    """Take one token from a client's bucket."""
    per_second = rate.count / rate.seconds
    name = f"rate:{bucket}"
    client = _redis_client()
    if client is not None:
        allowed, tokens = client.eval(BUCKET_SCRIPT, 1, cache.make_key(name), rate.count, per_second)
        allowed, tokens = bool(allowed), float(tokens)
    else:
        with _local_lock:  # local memory: one process, so a lock makes it atomic
            now = time.monotonic()
            tokens, at = cache.get(name) or (float(rate.count), now)
            tokens = min(rate.count, tokens + max(0.0, now - at) * per_second)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            cache.set(name, (tokens, now), timeout=rate.seconds + 1)
    remaining = math.floor(tokens)
    reset = math.ceil((rate.count - tokens) / per_second)
    retry = 0 if allowed else max(1, math.ceil((1 - tokens) / per_second))
    return Decision(allowed, rate.count, remaining, reset, retry)


@dataclass
class Client:
    """Who is asking: an API key's owner, or an anonymous address."""

    address: str
    key: object | None = None  # an ApiKey

    @property
    def bucket(self) -> str:
        return f"key:{self.key.pk}" if self.key else f"ip:{self.address}"

    @property
    def rate(self) -> Rate | None:
        if self.key:
            return self.key.rate_limit()
        return setting_rate("RUNNER_RATE_LIMIT", settings.RUNNER_RATE_LIMIT)

    @property
    def concurrency(self) -> int:
        return self.key.concurrency if self.key else settings.RUNNER_CLIENT_CONCURRENCY


@functools.cache
def _networks(text: str) -> tuple:
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in text.split(",") if n.strip())


def client_address(remote: str, forwarded_for: str | None) -> str:
    """The client's address; X-Forwarded-For counts only when the peer is a trusted proxy."""
    trusted = _networks(settings.RUNNER_TRUSTED_PROXIES)
    if not forwarded_for or not trusted:
        return remote
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if not any(peer in net for net in trusted):
        return remote
    # Walk from the nearest hop back, past our own proxies, to the first address we don't trust.
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return remote
        if not any(address in net for net in trusted):
            return str(address)
    return hops[0] if hops else remote


def find_key(secret: str | None):
    """The active ApiKey for a presented secret; RequestError 401 for an unknown or revoked one."""
    from .models import ApiKey

    if secret is None:
        if settings.RUNNER_REQUIRE_API_KEY:
            raise RequestError(401, "an API key is required: send Authorization: Bearer <key> or X-API-Key")
        return None
    key = ApiKey.objects.active().filter(key_hash=ApiKey.hash(secret)).first()
    if key is None:
        raise RequestError(401, "unknown or revoked API key")
    return key


async def identify(headers: dict[str, str], peer: str, query: dict[str, str] | None = None) -> Client:
    """Who is calling: the API key presented (401 if unknown or revoked), and the address.

    headers: lower-cased names. Without a key there is nothing to look up, so no hand-off
    to a database thread.
    """
    secret = presented_key(headers, query)
    key = find_key(None) if secret is None else await sync_to_async(find_key)(secret)
    return Client(client_address(peer, headers.get("x-forwarded-for")), key)


def presented_key(headers: dict[str, str], query: dict[str, str] | None = None) -> str | None:
    """The key from Authorization: Bearer, X-API-Key, or (for browsers' websockets) ?api_key=."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    if query and query.get("api_key"):
        return query["api_key"]
    return None


class Pass:
    """An admitted run: holds a concurrency place until released."""

    def __init__(self, client: Client, decision: Decision | None, slot_key: str):
        self.client = client
        self.decision = decision
        self._slot_key = slot_key
        self._released = False

    def headers(self) -> dict[str, str]:
        return self.decision.headers() if self.decision else {}

    async def release(self) -> None:
        if not self._released:
            self._released = True
            if _local_cache():
                _leave(self._slot_key)
            else:
                await sync_to_async(_leave)(self._slot_key)


def _enter(slot_key: str, limit: int) -> bool:
    timeout = settings.RUNNER_MAX_TIMEOUT // 1000 + 120  # a crashed process's count expires
    cache.add(slot_key, 0, timeout)
    if cache.incr(slot_key) <= limit:
        cache.touch(slot_key, timeout)
        return True
    cache.decr(slot_key)
    return False


def _leave(slot_key: str) -> None:
    try:
        cache.decr(slot_key)
    except ValueError:
        pass  # expired meanwhile


def _charge(client: Client) -> None:
    """One credit per run, counted in the database in one statement; 402 when none are left."""
    from .models import ApiKey

    if client.key is None:
        return
    found = ApiKey.objects.filter(pk=client.key.pk)
    if client.key.credits is not None:
        found = found.filter(credits__gt=0)
    changes = {"runs": F("runs") + 1, "last_used_at": timezone.now()}
    if client.key.credits is not None:
        changes["credits"] = F("credits") - 1
    if not found.update(**changes):
        raise RequestError(402, "credits exhausted")


def _refund(client: Client) -> None:
    from .models import ApiKey

    if client.key is not None:
        changes = {"runs": F("runs") - 1}
        if client.key.credits is not None:
            changes["credits"] = F("credits") + 1
        ApiKey.objects.filter(pk=client.key.pk).update(**changes)


async def admit(client: Client) -> Pass:
    """Let a run in, or raise RequestError: 429 for the rate or concurrency, 402 for credits."""
    slot_key = f"running:{client.bucket}"
    deadline = time.monotonic() + settings.RUNNER_CLIENT_WAIT
    decision, entered = await _blocking(client, _admit, client, slot_key)
    while not entered:
        if time.monotonic() >= deadline:
            raise RequestError(
                429, f"too many runs at once: at most {client.concurrency} per client",
                retryAfter=1, headers={"Retry-After": "1"},
            )  # fmt: skip
        await asyncio.sleep(CONCURRENCY_POLL_SECONDS)
        entered = await _blocking(client, _enter_and_charge, client, slot_key)
    return Pass(client, decision, slot_key)


def _local_cache() -> bool:
    return isinstance(caches["default"], LocMemCache)


async def _blocking(client: Client, fn, *args):
    """Call fn, which uses the cache and, for a key, the database.

    Both block, so the call goes to a worker thread; but with no key to charge and the
    cache in this process's memory, it takes microseconds: the hand-off would cost more.
    """
    if client.key is None and _local_cache():
        return fn(*args)
    return await sync_to_async(fn)(*args)


def _admit(client: Client, slot_key: str) -> tuple[Decision | None, bool]:
    """The rate, then a place among the client's concurrent runs and its credit (False: no place yet)."""
    decision = None
    rate = client.rate
    if rate is not None:
        decision = take(client.bucket, rate)
        if not decision.allowed:
            raise RequestError(
                429, f"rate limit of {rate} exceeded; retry in {decision.retry_after} s",
                retryAfter=decision.retry_after, headers={**decision.headers(), "Retry-After": str(decision.retry_after)},
            )  # fmt: skip
    return decision, _enter_and_charge(client, slot_key)


def _enter_and_charge(client: Client, slot_key: str) -> bool:
    if not _enter(slot_key, client.concurrency):
        return False
    try:
        _charge(client)
    except BaseException:
        _leave(slot_key)
        raise
    return True


async def refund(admitted: Pass) -> None:
    """Give the credit back when the run never started (every slot was busy)."""
    await sync_to_async(_refund)(admitted.client)
