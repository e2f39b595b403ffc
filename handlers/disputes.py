"""月排查 from WeChat: a mediator who bound their WeChat sends "本月排查：无" (a 零报告) or
"本月排查：…" (the month's report, once its disputes are registered), or just "本月排查" to see
where their villages stand. Anyone else's "本月排查" goes on to the other handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, squash, text_prefix
from bot.services.disputes import access, notices, report
from bot.services.disputes.cases import DisputeError
from bot.services.disputes.deadlines import chinese_date, report_due_on
from bot.storage.models import Village
from bot.storage.staff import StaffUser

router = Router("disputes")

WORDS = ("本月排查", "月排查")


@dataclass(frozen=True)
class _Actor:
    id: int
    role: str
    village_ids: tuple[int, ...]
    position: str


def _actor(staff: StaffUser) -> _Actor:
    return _Actor(staff.id, staff.role, tuple(v.id for v in staff.villages), staff.position)


def _pick_village(text: str, villages: list[Village]) -> tuple[Village | None, str]:
    """A village named in the text (longest name first), and the text without it."""
    for village in sorted(villages, key=lambda v: -len(v.name)):
        for name in (village.name, village.name.removesuffix("村")):
            if name and name in text:
                return village, text.replace(name, "", 1)
    return None, text


@router.on(text_prefix(*WORDS))
async def monthly_screening(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    staff = await notices.staff_by_openid(ctx.session, ctx.msg.openid)
    if staff is None or staff.role not in ("admin", "mediator"):
        return CONTINUE
    actor = _actor(staff)
    all_villages = list((await ctx.session.execute(select(Village).where(Village.active.is_(True)))).scalars())
    mine = [v for v in all_villages if access.can_report_for(v.id, actor)]
    named, rest = _pick_village(str(data.get("arg", "")), all_villages)
    month = report.current_month(ctx.now)
    due = chinese_date(report_due_on(month, ctx.services.settings.dispute_report_day))
    if named is not None and named not in mine:
        return TextReply(f"您不负责{named.name}，不能替它报月排查。")
    village = named or (mine[0] if len(mine) == 1 else None)
    words = squash(rest)
    if village is None:
        names = "、".join(v.name for v in mine[:11]) or "（没有）"
        return TextReply(f"您负责的村：{names}。请写明村名，如：本月排查：{mine[0].name if mine else '某村'} 无")
    if not words:
        found = await report.found_in_month(ctx.session, village.id, month)
        status = await _status(ctx, village, month)
        return TextReply(
            f"{village.name}{month}：已登记纠纷 {found} 件，月报告{status}，截止 {due}。\n"
            "没有发现纠纷请回复：本月排查：无\n有纠纷请先在后台登记，再回复：本月排查：已报"
        )
    zero = words in {squash(w) for w in report.ZERO_WORDS}
    try:
        _report, created = await report.submit(
            ctx.session,
            village,
            month,
            zero=zero,
            now=ctx.now,
            staff=staff,
            via="微信",
            note="" if zero else rest.strip(" ：:"),
        )
    except DisputeError as exc:
        return TextReply(f"{exc}\n后台：{ctx.services.settings.base_url}/admin/disputes/monthly")
    again = "" if created else "（已更新上次的报告）"
    if zero:
        return TextReply(f"收到：{village.name}{month}月排查零报告（本月未发现矛盾纠纷）已提交{again}。谢谢！")
    found = await report.found_in_month(ctx.session, village.id, month)
    return TextReply(f"收到：{village.name}{month}月排查报告已提交{again}，本月登记纠纷 {found} 件。谢谢！")


async def _status(ctx: Ctx, village: Village, month: str) -> str:
    from bot.storage.disputes import DisputeReport

    row = (
        await ctx.session.execute(
            select(DisputeReport).where(DisputeReport.village_id == village.id, DisputeReport.month == month)
        )
    ).scalar_one_or_none()
    if row is None:
        return "还没报"
    return "已报（零报告）" if row.zero else "已报"
