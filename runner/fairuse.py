"""Fair use: who a client is, its rate limit (a token bucket), its concurrent runs, and its credits.

The counters live in Django's cache: local memory for one process, Redis (REDIS_URL)
for several, where every count is one atomic script or command in Redis itself.
`runner.submit` calls `admit()` before a run and `Pass.release()` after it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from . import conf
from .errors import Refused
from .models import ApiKey
from .rates import BUCKET_SCRIPT, Decision, Rate, refill

CONCURRENCY_POLL_SECONDS = 0.05
STORE_RETRY_SECONDS = 5  # what a client is told to wait when Redis does not answer
log = logging.getLogger(__name__)
_local_lock = threading.Lock()


def _redis_client():
    """The redis-py client behind Django's Redis cache, or None for another backend."""
    backend = cache
    if backend.__class__.__name__ != "RedisCache":
        return None
    return backend._cache.get_client(write=True)


def take(bucket: str, rate: Rate, count: int = 1) -> Decision:
    """Take `count` tokens from a client's bucket, all or none."""
    name = f"rate:{bucket}"
    client = _redis_client()
    if client is not None:
        allowed, tokens = client.eval(
            BUCKET_SCRIPT, 1, cache.make_key(name), rate.count, rate.per_second, count
        )
        allowed, tokens = bool(allowed), float(tokens)
    else:
        with _local_lock:  # local memory: one process, so a lock makes it atomic
            now = time.monotonic()
            tokens, at = cache.get(name) or (float(rate.count), now)
            allowed, tokens = refill(rate, tokens, at, now, count)
            cache.set(name, (tokens, now), timeout=rate.seconds + 1)
    return Decision.of(rate, allowed, tokens, count)


@dataclass
class Client:
    """Who is asking: an API key's owner, or an anonymous address."""

    address: str
    key: ApiKey | None = None

    @property
    def bucket(self) -> str:
        return f"key:{self.key.pk}" if self.key else f"ip:{self.address}"

    @property
    def rate(self) -> Rate | None:
        if self.key:
            return self.key.rate_limit(conf.get().key_rate_limit)
        return conf.get().rate_limit

    @property
    def concurrency(self) -> int:
        return self.key.concurrency if self.key else conf.get().client_concurrency


def client_address(remote: str, forwarded_for: str | None) -> str:
    """The client's address; X-Forwarded-For counts only when the peer is a trusted proxy."""
    trusted = conf.get().trusted_proxies
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


def find_key(secret: str | None) -> ApiKey | None:
    """The active ApiKey for a presented secret; Refused (unauthorized) for an unknown or revoked one."""
    if secret is None:
        if conf.get().require_api_key:
            raise Refused(
                "unauthorized", "an API key is required: send Authorization: Bearer <key> or X-API-Key"
            )
        return None
    key = ApiKey.objects.for_secret(secret)
    if key is None:
        raise Refused("unauthorized", "unknown or revoked API key")
    return key


async def identify(headers: dict[str, str], peer: str, query: dict[str, str] | None = None) -> Client:
    """Who is calling: the API key presented (unauthorized if unknown or revoked), and the address.

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
    """An admitted run: holds its concurrency places until released (one; a graded run may widen)."""

    def __init__(self, client: Client, decision: Decision | None, slot_key: str, runs: int = 1):
        self.client = client
        self.decision = decision
        self.runs = runs  # what it was charged as
        self.places = 1
        self._slot_key = slot_key
        self._released = False

    def headers(self) -> dict[str, str]:
        return self.decision.headers() if self.decision else {}

    async def widen(self, most: int) -> int:
        """Take more of the client's places, up to `most` in all, as far as they are free now (it
        never waits for one); how many it holds."""
        while self.places < most and await _in_cache(_enter, self._slot_key, self.client.concurrency):
            self.places += 1
        return self.places

    async def release(self) -> None:
        """Give the places back; a run that ran is answered even when the store is down (its count expires)."""
        if not self._released:
            self._released = True
            try:
                for _ in range(self.places):
                    await _in_cache(_leave, self._slot_key)
            except Refused:
                log.warning("could not release a run's place in the fair-use store; it expires by itself")

    async def refund(self, runs: int | None = None) -> None:
        """Give the credits back for runs that never started (every slot was busy, nothing can
        run, or a test case was skipped); all of them by default."""
        runs = self.runs if runs is None else runs
        if self.client.key is not None and runs > 0:
            await sync_to_async(ApiKey.objects.refund)(self.client.key, runs)


def _enter(slot_key: str, limit: int) -> bool:
    timeout = conf.get().max_timeout_ms // 1000 + 120  # a crashed process's count expires
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


def _charge(client: Client, runs: int) -> None:
    """One credit per run, counted in the database in one statement; no_credits when too few are left."""
    if client.key is not None and not ApiKey.objects.charge(client.key, runs):
        if runs == 1:
            raise Refused("no_credits", "credits exhausted")
        raise Refused("no_credits", f"this request is {runs} runs, and fewer credits are left")


async def admit(client: Client, runs: int = 1) -> Pass:
    """Let a run in, or raise Refused: rate_limited for the rate or concurrency, no_credits for
    credits, unavailable when the fair-use store (Redis) does not answer. A graded run is `runs`
    runs (each test case, and the compile) to the rate and the credits, taken all or none."""
    rate = client.rate
    if rate is not None and runs > rate.count:
        raise Refused(
            "invalid", f"this request is {runs} runs (its test cases and its compile), more than the rate"
            f" limit of {rate} ever allows at once", field="tests",
        )  # fmt: skip
    slot_key = f"running:{client.bucket}"
    deadline = time.monotonic() + conf.get().client_wait_seconds
    decision, entered = await _in_cache(_rate_and_enter, client, slot_key, runs)
    while not entered:
        if time.monotonic() >= deadline:
            raise Refused(
                "rate_limited", f"too many runs at once: at most {client.concurrency} per client",
                retry_after=1, headers={"Retry-After": "1"},
            )  # fmt: skip
        await asyncio.sleep(CONCURRENCY_POLL_SECONDS)
        entered = await _in_cache(_enter, slot_key, client.concurrency)
    if client.key is not None:
        try:
            await sync_to_async(_charge)(client, runs)  # the database, on its one thread
        except BaseException:
            await _in_cache(_leave, slot_key)
            raise
    return Pass(client, decision, slot_key, runs)


def _local_cache() -> bool:
    return isinstance(caches["default"], LocMemCache)


async def _in_cache(fn, *args):
    """Call fn, which uses the cache: at once when the cache is this process's memory (microseconds;
    a hand-off would cost more), else in a worker thread of its own, never the database's one, so
    that a slow Redis holds up nothing else. A Redis that does not answer is Refused (503)."""
    if _local_cache():
        return fn(*args)
    from redis.exceptions import RedisError  # here only: a server without Redis never loads it

    try:
        return await sync_to_async(fn, thread_sensitive=False)(*args)
    except RedisError as e:
        log.error("the fair-use store (Redis) does not answer: %s", e)
        raise Refused(
            "unavailable", "the fair-use store (Redis) does not answer; runs resume when it does",
            retry_after=STORE_RETRY_SECONDS, headers={"Retry-After": str(STORE_RETRY_SECONDS)},
        ) from None  # fmt: skip


def _rate_and_enter(client: Client, slot_key: str, runs: int) -> tuple[Decision | None, bool]:
    """The rate, then a place among the client's runs at once (False: none free yet): one hand-off."""
    return _rate(client, runs), _enter(slot_key, client.concurrency)


def _rate(client: Client, runs: int) -> Decision | None:
    """Take a token a run from the client's bucket; rate_limited when there are too few."""
    rate = client.rate
    if rate is None:
        return None
    decision = take(client.bucket, rate, runs)
    if not decision.allowed:
        raise Refused(
            "rate_limited", f"rate limit of {rate} exceeded; retry in {decision.retry_after} s",
            retry_after=decision.retry_after,
            headers={**decision.headers(), "Retry-After": str(decision.retry_after)},
        )  # fmt: skip
    return decision
