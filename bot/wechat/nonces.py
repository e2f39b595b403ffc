"""Replay protection for pushes: each (timestamp, nonce) WeChat signed is used once.

WeChat's URL signature covers only Token+timestamp+nonce, so whoever reads one push URL (an access
log, a proxy) holds a valid signature for the rest of the timestamp window. Every push's
(timestamp, nonce) is therefore remembered for the window, with a digest of what WeChat signed:
the ``Encrypt`` payload in safe mode (covered by ``msg_signature``), the raw body otherwise.

A second push with the same pair is
- the same push again (same digest): WeChat's own retry. It goes on to the inbound store, whose
  dedup key finds the first copy: the retry gets the stored reply, or ``success`` while the first
  copy is still being handled — never a second ticket and never a 403;
- anything else (another body, another sender): forged with a captured URL → 403.

WeChat retries with the same push; when it signs a retry afresh (a new timestamp and nonce) the
pair is new and the dedup key alone recognises the retry.

Where the pairs live: the ``push_nonces`` table, written in the same transaction as the push itself
(``services.inbound``, so the check costs one indexed INSERT per push and no extra commit), or Redis
(``SET NX GET`` with the window as expiry) when LAWBOT_REDIS_URL is set. Both are shared by every
``lawbot serve`` process.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

MAX_NONCE_LENGTH = 64
#: kept this long when the timestamp window is switched off (LAWBOT_TIMESTAMP_WINDOW=0)
RETENTION_WITHOUT_WINDOW = 24 * 3600


class NonceReused(Exception):
    """A (timestamp, nonce) pair came back with another push: a captured URL, replayed."""


@dataclass(frozen=True, slots=True)
class Seal:
    """What one push was signed with: its (timestamp, nonce) and a digest of the signed content."""

    timestamp: int
    nonce: str
    digest: str


def digest(signed: bytes | str) -> str:
    data = signed.encode("utf-8") if isinstance(signed, str) else signed
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def retention(window: int) -> int:
    """Seconds a pair must be remembered: as long as its timestamp is accepted, plus a minute of clock skew."""
    return (window if window > 0 else RETENTION_WITHOUT_WINDOW) + 60


class RedisNonces:
    """The Redis store: one key per pair, expiring with the window."""

    def __init__(self, redis_url: str, *, window: int, timeout: float) -> None:
        from redis.asyncio import Redis

        self.redis: Redis = Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.ttl = retention(window)

    async def claim(self, seal: Seal) -> bool:
        """True when the pair is new, or came back with the same digest (a retry); False: reused."""
        key = f"lawbot:nonce:{seal.timestamp}:{seal.nonce}"
        earlier = await self.redis.set(key, seal.digest, ex=self.ttl, nx=True, get=True)
        if earlier is None:
            return True
        return (earlier.decode() if isinstance(earlier, bytes) else str(earlier)) == seal.digest

    async def close(self) -> None:
        await self.redis.aclose()
