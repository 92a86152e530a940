"""Leader election over a Redis lease, with a fencing token.

Owns the lease protocol that keeps exactly one instance of a singleton
(scheduler, workload-controller) doing work:

- `podbus:lease:<name>` holds `<identity>|<token>` with a TTL. Acquiring is
  SET NX PX in a Lua script that also INCRs `podbus:lease:<name>:token`, so
  every term has a larger fencing token than the one before; writers that
  must not act for a stale leader can compare tokens.
- The leader renews every `renew_every_s` (default ttl/3) with a script that
  extends the TTL only if the value is still its own.
- The leader's own deadline is the send time of its last successful renewal
  plus the TTL, less a safety margin. At the deadline, renewed or not, it
  cancels its work and waits for it to stop. Redis cannot expire the lease
  before that send time plus the TTL, so the old leader has stopped before a
  standby can acquire.
- Standbys try to acquire every `poll_every_s` (default ttl/5), so a lease
  left by a crashed leader is taken within one poll after it expires; a
  leader that stops cleanly deletes its lease, and a standby takes over at
  its next poll.

Timeouts use `asyncio.timeout`, not `wait_for`, which on Python 3.11 can
swallow a cancellation that races with completion.

The work is a coroutine started with the token when leadership begins; if
it returns or raises, the elector steps down and competes again after one
poll interval. Nothing here knows what the work is.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(name: str) -> str:
    return f"podbus:lease:{name}"


def token_key(name: str) -> str:
    return f"podbus:lease:{name}:token"


class LeaderElection:
    """Compete for the lease `name` as `identity` (unique per process)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        identity: str,
        ttl_s: float = 15.0,
        renew_every_s: float | None = None,
        *,
        poll_every_s: float | None = None,
        safety_margin_s: float | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.redis = redis
        self.name = name
        self.identity = identity
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else ttl_s / 3
        self.poll_every_s = poll_every_s if poll_every_s is not None else ttl_s / 5
        self.safety_margin_s = (
            safety_margin_s if safety_margin_s is not None else min(ttl_s * 0.2, 2.0)
        )
        if self.renew_every_s >= ttl_s - self.safety_margin_s:
            raise ValueError("renew_every_s must leave time to renew before the lease ends")
        self.token: int | None = None
        self._deadline = 0.0
        self._value = ""
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._redis_down = False

    @property
    def key(self) -> str:
        return lease_key(self.name)

    @property
    def is_leader(self) -> bool:
        """True while this instance holds a lease it knows to be unexpired."""
        return self.token is not None and asyncio.get_running_loop().time() < self._deadline

    async def holder(self) -> str | None:
        """Who holds the lease now (`identity|token`), if anyone."""
        value = await self.redis.get(self.key)
        if isinstance(value, bytes):
            return value.decode()
        return value

    async def run(
        self,
        on_started_leading: Callable[[int], Awaitable[Any]],
        on_stopped_leading: Callable[[], Any] | None = None,
    ) -> None:
        """Compete, lead, and compete again, until cancelled. While leading,
        `on_started_leading(token)` runs as a task that is cancelled (and
        awaited) when the lease is lost or cannot be renewed in time; then
        `on_stopped_leading()` (sync or async) is called."""
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # redis-py can turn a cancellation that lands mid-command into
                # an error, which _try_acquire logs and survives: stop here.
                raise asyncio.CancelledError
            token = await self._try_acquire()
            if token is None:
                await asyncio.sleep(self.poll_every_s)
                continue
            log.info("%s: %s leads with token %d", self.name, self.identity, token)
            try:
                await self._lead(token, on_started_leading)
            finally:
                self.token = None
                self._deadline = 0.0
                if on_stopped_leading is not None:
                    with contextlib.suppress(Exception):
                        result = on_stopped_leading()
                        if inspect.isawaitable(result):
                            await result
                await self._release_quietly()
            log.info("%s: %s stopped leading", self.name, self.identity)
            await asyncio.sleep(self.poll_every_s)

    # -------------------------------------------------------------- internals

    async def _try_acquire(self) -> int | None:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            async with asyncio.timeout(self.poll_every_s + self.ttl_s):
                token = await self._acquire(
                    keys=[self.key, token_key(self.name)],
                    args=[self.identity, int(self.ttl_s * 1000)],
                )
        except Exception as exc:
            self._log_down(exc)
            return None
        self._log_up()
        if token is None:
            return None
        self.token = int(token)
        self._value = f"{self.identity}|{self.token}"
        self._deadline = sent + self.ttl_s - self.safety_margin_s
        return self.token

    async def _lead(self, token: int, work_fn: Callable[[int], Awaitable[Any]]) -> None:
        loop = asyncio.get_running_loop()

        async def work() -> None:
            await work_fn(token)

        task = asyncio.create_task(work(), name=f"leader:{self.name}")
        try:
            next_renew = loop.time() + self.renew_every_s
            while True:
                wake = min(next_renew, self._deadline)
                await asyncio.wait({task}, timeout=max(0.0, wake - loop.time()))
                if task.done():
                    if not task.cancelled() and task.exception() is not None:
                        log.error("%s: leading work failed", self.name, exc_info=task.exception())
                    return
                if loop.time() >= self._deadline:
                    log.warning("%s: lease not renewed in time; stepping down", self.name)
                    return
                if loop.time() < next_renew:
                    continue
                sent = loop.time()
                try:
                    async with asyncio.timeout(max(0.0, self._deadline - sent)):
                        renewed = await self._renew(
                            keys=[self.key], args=[self._value, int(self.ttl_s * 1000)]
                        )
                except Exception as exc:  # Redis unreachable or too slow: retry until the deadline
                    self._log_down(exc)
                    next_renew = loop.time() + min(self.renew_every_s, self.poll_every_s)
                    continue
                self._log_up()
                if not renewed:
                    log.warning("%s: lease lost to another instance; stepping down", self.name)
                    return
                self._deadline = sent + self.ttl_s - self.safety_margin_s
                next_renew = sent + self.renew_every_s
        finally:
            self._deadline = 0.0
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({task})
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: logged above when it mattered

    async def _release_quietly(self) -> None:
        if not self._value:
            return
        try:
            async with asyncio.timeout(1.0):
                await self._release(keys=[self.key], args=[self._value])
        except Exception as exc:
            log.debug("%s: releasing the lease failed: %s", self.name, exc)
        self._value = ""

    def _log_down(self, exc: BaseException) -> None:
        if not self._redis_down:
            log.warning("%s: Redis unreachable for the lease (%s); retrying", self.name, exc)
            self._redis_down = True

    def _log_up(self) -> None:
        if self._redis_down:
            log.info("%s: Redis reachable again", self.name)
            self._redis_down = False
