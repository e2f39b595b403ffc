"""Per-endpoint rate limits for WeChat API calls: GCRA pacing, never dropping.

:meth:`RateLimiter.acquire` reserves the next slot for an endpoint group and sleeps until it is due,
so callers are spread out evenly instead of being refused. Limits are in-process by default; with a
Redis URL the schedule is shared by every process (one Lua script reserves the slot atomically, using
Redis' clock). If Redis cannot be reached the limiter falls back to its in-process schedule.

Endpoint groups (the ``key`` argument) used by :mod:`bot.wechat.api`: ``cs`` (customer-service
messages), ``template``, ``subscribe``, ``mass`` (sendall/send/preview), ``tags``, ``menu``,
``user``, ``media``, ``token``. A group without a configured rate is not limited.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    """``count`` calls per ``period`` seconds, of which up to ``burst`` may go back to back."""

    count: int
    period: float = 60.0
    burst: int = 1

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0 or self.burst < 1:
            raise ValueError(f"invalid rate: {self.count}/{self.period}s burst {self.burst}")

    @property
    def interval(self) -> float:
        """Seconds between two calls at the steady rate."""
        return self.period / self.count

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


#: Conservative defaults: well under WeChat's documented limits, pacing rather than failing.
DEFAULT_RATES: dict[str, Rate] = {
    "cs": Rate(600, 60.0, burst=20),
    "template": Rate(600, 60.0, burst=20),
    "subscribe": Rate(600, 60.0, burst=20),
    "mass": Rate(60, 60.0, burst=1),
    "tags": Rate(300, 60.0, burst=10),
}

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_SPEC = re.compile(r"^\s*([a-z_]+)\s*=\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]*)\s*(?:burst\s*(\d+))?\s*$")


def parse_rates(spec: str) -> dict[str, Rate]:
    """Parse ``"cs=600/min burst 20, mass=60/60s, template=10/1s"`` (units s, min, h; bare number = seconds)."""
    rates: dict[str, Rate] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = _SPEC.match(part.lower())
        if not m:
            raise ValueError(f"rate limit {part!r}: expected key=COUNT/PERIOD[unit] [burst N], e.g. mass=60/min")
        key, count, number, unit, burst = m.groups()
        if unit and unit not in _UNITS:
            raise ValueError(f"rate limit {part!r}: unknown unit {unit!r} (s, min, h)")
        period = (float(number) if number else 1.0) * _UNITS.get(unit or "s", 1.0)
        rates[key] = Rate(int(count), period, int(burst) if burst else 1)
    return rates


_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return math.floor(wait)
"""


class RateLimiter:
    """Paces calls per endpoint group. ``enabled=False`` (or no rate for a key) lets calls through."""

    def __init__(
        self,
        rates: Mapping[str, Rate] | None = None,
        *,
        enabled: bool = True,
        redis_url: str | None = None,
        prefix: str = "lawbot:ratelimit:",
    ) -> None:
        self.rates: dict[str, Rate] = dict(DEFAULT_RATES if rates is None else rates)
        self.enabled = enabled
        self._tat: dict[str, float] = {}
        self._prefix = prefix
        self._redis: Redis | None = None
        self._script: Any = None
        if redis_url and enabled:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(redis_url)
            self._script = self._redis.register_script(_GCRA_LUA)

    @classmethod
    def disabled(cls) -> RateLimiter:
        return cls({}, enabled=False)

    async def acquire(self, key: str) -> float:
        """Wait for the next slot of ``key``; return the seconds waited."""
        rate = self.rates.get(key) if self.enabled else None
        if rate is None:
            return 0.0
        wait = await self._reserve_shared(key, rate) if self._redis is not None else None
        if wait is None:
            wait = self._reserve_local(key, rate)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    def _reserve_local(self, key: str, rate: Rate) -> float:
        now = time.monotonic()
        tat = max(self._tat.get(key, now), now)
        self._tat[key] = tat + rate.interval
        return max(0.0, tat - rate.tolerance - now)

    async def _reserve_shared(self, key: str, rate: Rate) -> float | None:
        try:
            micros = await self._script(
                keys=[self._prefix + key],
                args=[math.ceil(rate.interval * 1_000_000), math.ceil(rate.tolerance * 1_000_000)],
            )
        except Exception as exc:  # Redis down: pace locally rather than stop sending
            log.warning("rate limiter: Redis unavailable (%s); pacing in-process", exc)
            return None
        return int(micros) / 1_000_000

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
