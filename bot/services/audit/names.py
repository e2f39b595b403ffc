"""Every audit action in words: the code the software writes (``ticket.reply``) → what staff read (回复村民).

Every action written anywhere — ``adm.audit(...)`` in a view, ``audit_row(...)`` in a service — must
have a name here: ``tests/test_audit_names.py`` collects the action codes from the code base and fails
on any without one. The groups are the 操作记录 page's filter.
"""

from __future__ import annotations

#: (code prefix, group name) in the order the filter lists them
GROUPS: tuple[tuple[str, str], ...] = (
    ("ticket", "工单"),
    ("booking", "预约"),
    ("campaign", "普法活动"),
    ("dispute", "纠纷台账"),
    ("villager", "村民信息"),
    ("staff", "人员"),
    ("auth", "登录"),
    ("village", "村"),
    ("duty", "值班"),
    ("knowledge", "知识库"),
    ("report", "月报告"),
)

ACTION_NAMES: dict[str, str] = {
    # sign-in
    "auth.sign_in": "登录",
    "auth.sign_in_failed": "登录失败（密码不对）",
    "auth.sign_in_blocked": "登录被暂停（失败次数太多）",
    "auth.sign_out": "退出登录",
    # tickets
    "tickets.list": "查看工单列表",
    "ticket.view": "查看工单",
    "ticket.phone_view": "查看村民完整手机号",
    "ticket.media_view": "查看村民发的图片或语音",
    "ticket.create": "村民提交工单",
    "ticket.reply": "回复村民",
    "ticket.note": "写内部备注",
    "ticket.assign": "分派工单",
    "ticket.status": "改工单状态",
    "ticket.escalate": "升级（三长联动）",
    "ticket.agreement": "登记调解协议日期",
    "ticket.overdue_escalate": "超期未答复，自动升级到乡里",
    "ticket.urgent_unseen_escalate": "紧急工单无人查看，自动报乡管理员",
    # bookings
    "booking.day": "查看一天的预约",
    "booking.view": "查看预约详情",
    "booking.create": "代村民预约",
    "booking.cancel": "取消预约",
    "booking.checked_in": "登记村民已到",
    "booking.no_show": "登记村民没来",
    "booking.confirmed": "撤销到没到的登记",
    "booking.export": "导出一天的预约",
    "booking.service.save": "保存预约事项",
    "booking.place.save": "保存预约地点",
    "booking.schedule.save": "保存时间表",
    "booking.schedule.delete": "删除时间表",
    "booking.special.create": "添加特殊日期",
    "booking.special.delete": "删除特殊日期",
    # campaigns
    "campaign.create": "起草普法活动",
    "campaign.update": "修改普法活动",
    "campaign.view_openids": "查看活动的指定村民名单",
    "campaign.submit": "提交审批",
    "campaign.submit_refused": "提交审批未成功",
    "campaign.preview": "预览到自己的微信",
    "campaign.preview_refused": "预览未成功",
    "campaign.approve": "审批并排期",
    "campaign.approve_refused": "审批未成功",
    "campaign.return": "退回草稿",
    "campaign.return_refused": "退回未成功",
    "campaign.cancel": "取消活动",
    "campaign.cancel_refused": "取消活动未成功",
    "campaign.wechat_bind_code": "获取微信绑定码",
    "campaign.wechat_unbind": "解除微信绑定",
    "campaign.tags_sync": "同步各村微信标签",
    # disputes
    "disputes.list": "查看纠纷台账",
    "disputes.monthly": "查看月排查",
    "disputes.queue": "查看三长联动队列",
    "disputes.export": "导出月排查",
    "disputes.import": "导入台账",
    "disputes.import_check": "检查要导入的台账",
    "dispute.create": "登记纠纷",
    "dispute.view": "查看纠纷",
    "dispute.phone_view": "查看当事人手机号",
    "dispute.document": "打印或下载调解文书",
    "dispute.from_ticket": "工单转为纠纷案件",
    "dispute.edit": "修改纠纷",
    "dispute.status": "改纠纷状态",
    "dispute.risk": "改风险等级",
    "dispute.note": "写跟进记录",
    "dispute.party": "添加当事人",
    "dispute.unparty": "删除当事人",
    "dispute.mediator": "改调解员",
    "dispute.agreement": "登记调解协议",
    "dispute.confirmation": "登记司法确认",
    "dispute.visit": "登记回访",
    "dispute_report.submit": "提交月排查报告",
    # villagers' personal data
    "villager.view": "查看村民信息",
    "villager.search": "查找村民",
    "villager.export": "导出村民的全部数据",
    "villager.forget_request": "删除村民的个人信息",
    "villager.forget": "村民的个人信息已删除",
    # staff and villages
    "staff.list": "查看人员名单",
    "staff.view": "查看人员",
    "staff.create": "新增人员",
    "staff.update": "修改人员",
    "staff.password_change": "修改自己的密码",
    "staff.password_reset": "重设密码",
    "staff.wechat_bind_code": "获取微信绑定码（我的账号）",
    "staff.wechat_unbind": "解除微信绑定（我的账号）",
    # the duty roster
    "duty.week": "设置每周值班",
    "duty.day": "安排某天值班",
    "duty.day_remove": "取消某天的值班安排",
    "village.create": "新增村",
    "village.update": "修改村",
    # knowledge and reports
    "knowledge.gaps_view": "查看答不上的问题",
    "knowledge.reload": "重新加载知识库",
    "knowledge.propose": "提问答建议",
    "knowledge.proposals_view": "查看问答建议",
    "knowledge.proposal_view": "查看一条问答建议",
    "knowledge.proposal_edit": "修改问答建议",
    "knowledge.approve": "发布问答建议（法律审核）",
    "knowledge.reject": "退回问答建议（法律审核）",
    "knowledge.withdraw": "撤回自己的问答建议",
    "knowledge.draft": "工单回复存为问答草稿",
    "knowledge.versions_view": "查看本乡问答的版本",
    "knowledge.restore": "恢复本乡问答的旧版本（法律审核）",
    "knowledge.review": "复核新版本改过的本乡问答（法律审核）",
    "report.view": "查看月报告",
    "report.export": "导出月报告",
}

OBJECT_TYPE_NAMES: dict[str, str] = {
    "ticket": "工单",
    "booking": "预约",
    "booking_place": "预约地点",
    "booking_service": "预约事项",
    "booking_schedule": "时间表",
    "booking_special_day": "特殊日期",
    "campaign": "普法活动",
    "dispute": "纠纷",
    "dispute_report": "月排查报告",
    "villager": "村民",
    "staff": "人员",
    "village": "村",
    "village_tags": "各村微信标签",
    "duty": "值班表",
    "knowledge": "知识库",
    "knowledge_proposal": "问答建议",
    "knowledge_version": "本乡问答版本",
    "report": "月报告",
}


def action_name(code: str) -> str:
    """The action in words; an action written by an older version that has no name is 其他操作."""
    return ACTION_NAMES.get(code, "其他操作")


def group_of(code: str) -> str:
    """The filter group of an action code ('dispute_report.submit' → 纠纷台账)."""
    for prefix, name in GROUPS:
        if code.split(".", 1)[0].startswith(prefix):
            return name
    return "其他"


__all__ = ["ACTION_NAMES", "GROUPS", "OBJECT_TYPE_NAMES", "action_name", "group_of"]
