"""``lawbot serve --dev``: the fake WeChat API inside the bot's own process, playing WeChat's side.

* The fake is mounted at ``/_fake`` (its own views: ``/_fake/calls``, ``/_fake/faults``, ``/_fake/reset``)
  and the bot's API base points at it (:func:`dev_settings`).
* At start it is given what WeChat remembers across a restart and the in-memory fake forgot: the
  followers (villagers subscribed), the village tags and their members (:func:`restore`).
* After a mass send it pushes WeChat's MASSSENDJOBFINISH report (the audience's counts) to this server's
  ``/wechat`` a few seconds later, signed — and encrypted — as WeChat does in the configured mode
  (:class:`JobReporter`), so a campaign's reach fills in.

Everything here targets this server as its settings name it (:func:`local_base_url`), never a request's
Host header. Never mounted in production.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from sqlalchemy import select

from bot.devtools.fake_delivery import MassJob
from bot.devtools.fake_wechat import FakeWeChat, create_fake_wechat_app
from bot.keys import SERVICES
from bot.settings import Settings
from bot.storage.db import SessionFactory
from bot.wechat.pusher import Push, PushSigner, post_push

log = logging.getLogger(__name__)

DEV_WECHAT: web.AppKey[FakeWeChat] = web.AppKey("dev_wechat", FakeWeChat)
#: seconds between a mass send and its report (WeChat takes minutes to hours)
REPORT_DELAY = 2.0
#: WeChat retries a push that got no answer; so does the reporter
REPORT_ATTEMPTS = 3
#: FromUserName of WeChat's mass-send reports (the account's 群发助手)
MASS_HELPER = "mphelper"


def local_base_url(settings: Settings) -> str:
    """This server as it reaches itself: ``http://LAWBOT_HOST:LAWBOT_PORT`` (loopback for a wildcard bind)."""
    host = settings.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - a bind address, not one we listen on here
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def webhook_url(settings: Settings) -> str:
    return f"{local_base_url(settings)}/wechat"


def dev_settings(settings: Settings) -> Settings:
    """The settings of a ``--dev`` server: the WeChat API is the fake mounted in the same process."""
    return settings.with_(wechat_api_base=f"{local_base_url(settings)}/_fake")


def push_signer(settings: Settings) -> PushSigner:
    """Signs pushes as WeChat does for a bot with these settings (bot.wechat.pusher)."""
    return PushSigner.for_settings(settings)


def sign_as_wechat(signer: PushSigner, settings: Settings, fields: dict[str, str | int], *, safe: bool) -> Push:
    """A signed push as the webhook requires it in LAWBOT_WECHAT_MODE: always encrypted in safe mode, never in
    plain mode; in compatible mode (both accepted) encrypted when ``safe`` (the simulator's choice) is set."""
    mode = settings.mode
    return signer.sign(fields, encrypted=mode == "safe" or (mode == "compatible" and safe))


class JobReporter:
    """Pushes a MASSSENDJOBFINISH for every mass send the fake accepted (``FakeWeChat.on_mass_job``)."""

    def __init__(self, settings: Settings, *, delay: float = REPORT_DELAY, retry_after: float = 5.0) -> None:
        self.settings = settings
        self.delay = delay
        self.retry_after = retry_after
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, job: MassJob) -> None:
        task = asyncio.get_running_loop().create_task(self.report(job), name=f"masssendjobfinish-{job.msg_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def report(self, job: MassJob) -> None:
        await asyncio.sleep(self.delay)
        signer = push_signer(self.settings)
        fields = signer.event(MASS_HELPER, "MASSSENDJOBFINISH")
        fields.update(job.report())
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            push = sign_as_wechat(signer, self.settings, fields, safe=True)  # a fresh nonce each time
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                    reply = await post_push(session, webhook_url(self.settings), signer, push)
                if reply.status == 200:
                    return
                log.warning("MASSSENDJOBFINISH %s: the webhook answered HTTP %s", job.msg_id, reply.status)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("MASSSENDJOBFINISH %s: attempt %s failed: %s", job.msg_id, attempt, exc)
            await asyncio.sleep(self.retry_after)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def restore(fake: FakeWeChat, session_factory: SessionFactory) -> None:
    """What WeChat remembers and the fake forgot at a restart: followers, village tags and their members."""
    from bot.services.campaigns.tags import tag_name
    from bot.storage.campaigns import VillageTagMember
    from bot.storage.models import Village, Villager

    async with session_factory() as session:
        followers = (await session.execute(select(Villager.openid).where(Villager.subscribed.is_(True)))).scalars()
        fake.followers.update(followers)
        villages = (await session.execute(select(Village).where(Village.wechat_tag_id.is_not(None)))).scalars()
        for village in villages:
            assert village.wechat_tag_id is not None
            fake.tags[village.wechat_tag_id] = tag_name(village)
            fake._next_tag = max(fake._next_tag, village.wechat_tag_id)
        for openid, tag_id in (await session.execute(select(VillageTagMember.openid, VillageTagMember.tag_id))).all():
            fake.user_tags[openid].add(tag_id)


def mount_dev_wechat(app: web.Application, settings: Settings, *, report_delay: float = REPORT_DELAY) -> FakeWeChat:
    """Mount the fake WeChat API at ``/_fake`` of ``app`` (built with :func:`dev_settings`); returns its state."""
    if settings.production:
        raise RuntimeError("the fake WeChat API is never mounted in production")
    fake = FakeWeChat(settings.wechat_appid, settings.wechat_secret)
    reporter = JobReporter(settings, delay=report_delay)
    fake.on_mass_job = reporter
    app.add_subapp("/_fake", create_fake_wechat_app(state=fake, views_prefix=""))
    app[DEV_WECHAT] = fake

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        try:
            await restore(fake, app[SERVICES].session_factory)
        except Exception as exc:  # a database not migrated yet: the fake starts empty
            log.warning("fake WeChat API: could not restore followers and tags: %s", exc)
        yield
        await reporter.close()

    app.cleanup_ctx.append(ctx)
    return fake
