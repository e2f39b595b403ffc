"""Campaigns under ``make run``: a staff member previews to their own (simulated) WeChat, the campaign goes to
every follower's chat, and the fake WeChat API's MASSSENDJOBFINISH report fills in the reach."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.devtools.dev_wechat import JobReporter
from bot.devtools.fake_delivery import MassJob
from bot.services import campaigns as svc
from bot.services import staff as staff_svc
from bot.services.campaigns import Actor, CampaignInput
from bot.services.jobs import JobContext
from bot.settings import Settings
from bot.storage.campaigns import Campaign, CampaignReport
from bot.storage.models import utcnow
from tests.sim_support import SimPage, dev_client, dev_settings, fake, make_dev_client, run_worker, sessions, until
from tests.test_tickets_support import add_staff, cheap_hashing

__all__ = ["cheap_hashing", "dev_client", "dev_settings", "fake", "make_dev_client"]

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ZHANG, LI, WANG = "o_sim_zhang_dama", "o_sim_li_shu", "o_sim_wang_xiaomei"


async def campaign(client: Any, campaign_id: int) -> Campaign:
    async with sessions(client)() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        return c


async def test_preview_to_a_simulated_staff_wechat_then_mass_send_and_reach(
    dev_client: Any, dev_settings: Settings
) -> None:
    admin_id = await add_staff(dev_client, "wang", "admin", name="王所长")
    mediator_id = await add_staff(dev_client, "li", "mediator", (1,), name="李调解员")
    page = SimPage(dev_client, dev_settings)
    await page.open()
    # three villagers follow; one of them leaves again
    await page.subscribe(ZHANG, "village_1")
    await page.subscribe(LI, "village_2")
    await page.subscribe(WANG)
    await page.send(WANG, "unsubscribe")
    # the mediator's own WeChat is a villager made in the simulator, bound with the back-office's code
    made = await page.post("/simulator/api/villagers", {"name": "李调解员"})
    staff_openid = (await made.json())["openid"]
    await page.subscribe(staff_openid)
    async with sessions(dev_client)() as s, s.begin():
        code = await staff_svc.binding_code(s, mediator_id)
    assert "绑定好了" in await page.say(staff_openid, f"{staff_svc.BIND_WORD} {code}")

    mediator = Actor(mediator_id, "李调解员", "mediator", openid=staff_openid)
    data = CampaignInput(title="宪法宣传周", text="12月4日是国家宪法日。有法律问题，直接在这里问我。")
    async with sessions(dev_client)() as s, s.begin():
        campaign_id = (await svc.create_campaign(s, mediator, data, settings=dev_settings)).id
        await svc.request_preview(s, mediator, campaign_id)
    for openid in (ZHANG, LI, WANG, staff_openid):
        await page.arrived(openid)
    await run_worker(dev_client, dev_settings)
    [preview] = await page.arrived(staff_openid)
    assert preview["label"] == "群发预览" and "国家宪法日" in preview["text"]
    assert [await page.arrived(o) for o in (ZHANG, LI, WANG)] == [[], [], []]  # only the staff member sees it
    async with sessions(dev_client)() as s, s.begin():
        assert [p.status for p in await svc.previews(s, campaign_id)] == ["sent"]
        await svc.submit(s, mediator, campaign_id)
        await svc.approve(s, Actor(admin_id, "王所长", "admin"), campaign_id, settings=dev_settings)

    ctx = JobContext(dev_settings, sessions(dev_client), now=utcnow)
    await svc.tick(ctx)  # the campaign job (every 30 s under make run): due → outbox
    await run_worker(dev_client, dev_settings)
    for openid in (ZHANG, LI, staff_openid):
        [mass] = await page.arrived(openid)
        assert mass["label"] == "群发消息" and "国家宪法日" in mass["text"]
    assert await page.arrived(WANG) == []  # no longer a follower

    async def reported() -> Campaign | None:
        await svc.tick(ctx)  # matches the report to the campaign's part
        c = await campaign(dev_client, campaign_id)
        return c if c.reports else None

    c = await until(reported)
    assert c is not None, "WeChat's MASSSENDJOBFINISH never arrived"
    assert (c.status, c.total_count, c.filter_count, c.sent_count, c.error_count) == ("sent", 3, 3, 3, 0)


async def test_a_mass_send_to_a_list_counts_who_could_not_get_it(dev_client: Any, dev_settings: Settings) -> None:
    """``mass/send`` to listed openids: TotalCount is the list, FilterCount leaves out those who unfollowed."""
    page = SimPage(dev_client, dev_settings)
    await page.open()
    for openid in (ZHANG, LI, WANG):
        await page.subscribe(openid)
    await page.send(WANG, "unsubscribe")
    admin = Actor(await add_staff(dev_client, "wang", "admin", name="王所长"), "王所长", "admin")
    data = CampaignInput(title="通知", text="本周五法律咨询日。", audience="openids", openids=[ZHANG, LI, WANG])
    reason = "内容已在会上核对"
    async with sessions(dev_client)() as s, s.begin():
        campaign_id = (await svc.create_campaign(s, admin, data, settings=dev_settings)).id
        await svc.approve(s, admin, campaign_id, settings=dev_settings, without_preview_reason=reason)
    ctx = JobContext(dev_settings, sessions(dev_client), now=utcnow)
    await svc.tick(ctx)
    await run_worker(dev_client, dev_settings)

    async def reported() -> Campaign | None:
        await svc.tick(ctx)
        c = await campaign(dev_client, campaign_id)
        return c if c.reports else None

    c = await until(reported)
    assert c is not None and (c.total_count, c.filter_count, c.sent_count, c.error_count) == (3, 2, 2, 0)
    assert [e["text"] for e in await page.chat(WANG) if e["side"] == "bot" and e["label"]] == []


async def test_the_report_is_signed_and_encrypted_as_the_webhook_requires(
    make_dev_client: Any, dev_settings: Settings
) -> None:
    settings = dev_settings.with_(wechat_aes_key=AES_KEY)
    client = await make_dev_client(settings)
    reporter = JobReporter(settings, delay=0)
    await reporter.report(MassJob(4242, ["o_sim_a", "o_sim_b"], ["o_sim_a"], errors=1))

    async with sessions(client)() as s:
        report = (await s.execute(select(CampaignReport).where(CampaignReport.msg_id == 4242))).scalar_one_or_none()
    assert report is not None
    assert (report.msg_id, report.status, report.total_count, report.filter_count) == (4242, "send success", 2, 2)
    assert (report.sent_count, report.error_count) == (1, 1)
