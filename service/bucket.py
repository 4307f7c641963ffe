"""A channel's send rate, in SMS segments per second, shared by every process (Redis).

A token bucket per channel: it fills at `rate` tokens a second up to `burst`, and a
send of n segments takes n tokens. The arithmetic runs inside Redis (one Lua script, on
Redis's clock), so workers on several hosts share one limit without trusting their own
clocks. Replies to reporters take their tokens without waiting (`force`: the bucket may
go into debt) and broadcasts wait for the rest: a reply never queues behind a broadcast
and the provider still sees the configured rate. A provider's own throttling (HTTP 429,
SMPP throttled) pauses the whole channel for every sender (`pause`).
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)
BURST_SECONDS = 1.0  # a full bucket holds one second of sending

# KEYS: bucket hash, pause key. ARGV: rate, burst, cost, force (1/0).
# Returns the seconds to wait ("0": taken), as a string (Lua numbers become integers).
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local force = ARGV[4] == "1"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if not force and paused > now then return tostring(paused - now) end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if force or tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""
# KEYS: pause key. ARGV: seconds. The pause only ever gets longer.
_PAUSE = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000) end
return tostring(math.max(until_, current))
"""
# KEYS: bucket hash. ARGV: tokens to give back (taken for a send that did not happen).
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 'tokens', ARGV[1]) end
return 1
"""


class Bucket:
    """One channel's limit; `rate` None or 0: no limit (nothing asked of Redis)."""

    def __init__(self, connection: redis.Redis | None, channel: str, rate: float | None,
                 burst: float | None = None):
        self.connection, self.channel = connection, channel
        self.rate = float(rate) if rate else None
        self.burst = float(burst) if burst else (self.rate * BURST_SECONDS if self.rate else None)
        self._keys = [f"alerte:bucket:{channel}", f"alerte:bucket:{channel}:paused"]
        if self.rate and connection is not None:
            self._take = connection.register_script(_TAKE)
            self._pause = connection.register_script(_PAUSE)
            self._refund = connection.register_script(_REFUND)

    @property
    def limited(self) -> bool:
        return self.rate is not None and self.connection is not None

    def capacity(self, cost_each: int) -> int:
        """How many sends of `cost_each` segments fit in a full bucket (at least one)."""
        if not self.limited:
            return 1 << 30
        return max(1, int(self.burst // max(1, cost_each)))

    def take(self, cost: float, *, force: bool = False) -> float:
        """Take `cost` tokens now, or return the seconds to wait before asking again."""
        if not self.limited or cost <= 0:
            return 0.0
        burst = max(self.burst, cost)  # a send bigger than the bucket still goes, alone
        return float(self._take(keys=self._keys, args=[self.rate, burst, cost, 1 if force else 0]))

    def wait_for(self, cost: float, until: float) -> bool:
        """Take `cost` tokens, sleeping as needed, unless time.monotonic() passes `until`."""
        while True:
            wait = self.take(cost)
            if wait <= 0:
                return True
            if time.monotonic() + wait > until:
                return False
            time.sleep(wait)

    def refund(self, tokens: float) -> None:
        if self.limited and tokens > 0:
            self._refund(keys=self._keys[:1], args=[tokens])

    def pause(self, seconds: float) -> None:
        """The provider asked us to slow down: no sender of this channel takes tokens for a while."""
        if self.connection is None or seconds <= 0:
            return
        script = self._pause if self.limited else self.connection.register_script(_PAUSE)
        script(keys=self._keys[1:], args=[seconds])
        log.info("channel %s paused for %.1f s (provider throttling)", self.channel, seconds)

    def paused_for(self) -> float:
        """Seconds left of a pause (0: none)."""
        if self.connection is None:
            return 0.0
        raw = self.connection.get(self._keys[1])
        if not raw:
            return 0.0
        seconds, micros = self.connection.time()
        return max(0.0, float(raw) - (seconds + micros / 1e6))


def for_channel(connection: redis.Redis | None, channel) -> Bucket:
    """The bucket of a configured channel (its `send_rate`, segments per second)."""
    return Bucket(connection, channel.name, channel.send_rate)
