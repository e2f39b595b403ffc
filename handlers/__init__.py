"""Conversation features, in the one order they are tried (the FAQ is the catch-all, last).

Handlers bound to a wizard state are tried before all of these (see bot.routing.Dispatcher).
"""

from __future__ import annotations

from bot.routing import Router
from handlers import booking, campaigns, disputes, faq, handoff, help, media, staff, system

ROUTERS: tuple[Router, ...] = (
    staff.router,  # 绑定微信 (staff members' own WeChat, for alerts and previews)
    campaigns.router,  # 退订/订阅, 往期普法, MASSSENDJOBFINISH reach
    disputes.router,  # 本月排查 from staff who bound their WeChat (月报告, 零报告); others pass on
    system.router,  # subscribe, unsubscribe, scans, WeChat's own notices
    media.router,  # voice without recognition, pictures, video, locations, links
    handoff.router,  # 转人工 intake, 我的咨询, follow-ups, 删除我的信息
    booking.router,  # 预约, 我的预约, 取消预约, 改约
    help.router,  # 帮助/菜单/你好, menu buttons, numbered picks
    faq.router,  # 更多, 法条, the matcher, and the fallback that never leaves silence
)
