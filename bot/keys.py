"""Typed application keys, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from bot.services.context import Services
    from bot.services.inbound import Pipeline
    from bot.storage.sqlite_checkpoint import WalCheckpointer
    from bot.wechat.crypto import MessageCrypto
    from bot.wechat.nonces import RedisNonces

SERVICES: web.AppKey[Services] = web.AppKey("services")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
CRYPTO: web.AppKey[MessageCrypto | None] = web.AppKey("crypto")
#: the Redis nonce store when LAWBOT_REDIS_URL is set (else the pipeline keeps nonces in the database)
NONCES: web.AppKey[RedisNonces | None] = web.AppKey("nonces")
#: present when the database is a SQLite file
CHECKPOINTER: web.AppKey[WalCheckpointer] = web.AppKey("checkpointer")
