"""The monthly report on a year of data: every number counted again here from the rows written, on SQLite
and PostgreSQL; the page with its charts, printable; the CSV and XLSX with the same sections, safe from
formulas; a mediator sees only their villages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
import time
from collections import Counter
from typing import Any

from openpyxl import load_workbook

from bot.keys import SERVICES
from bot.services import reports
from bot.services.tickets import ESCALATION_TARGETS, SATISFACTION_NAMES, visible_to
from bot.storage.models import utcnow
from bot.storage.tickets import CLOSED, OPEN_STATUSES, RESOLVED
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_report_support import VILLAGES, Year, fill_year
from tests.test_tickets_support import Staffer, add_staff

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

LAST = reports.month_bounds("2026-11", dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
NOW = dt.datetime(2026, 12, 6, 4, 0, tzinfo=dt.UTC)


def _in(moment: dt.datetime | None, month: reports.Month) -> bool:
    return moment is not None and month.start <= moment < month.end


def _hours(t: dict[str, Any]) -> float | None:
    if t["first_response_at"] is None:
        return None
    return (t["first_response_at"] - t["created_at"]).total_seconds() / 3600


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


async def _report(factory: Any, kb: Any, village_ids: tuple[int, ...] | None = None) -> reports.MonthlyReport:
    scope = reports.Scope(
        visible_to("admin" if village_ids is None else "mediator", 999, village_ids or ()), village_ids
    )
    async with factory() as session:
        return await reports.build(session, scope, LAST.label, kb, NOW)


async def test_a_year_of_data_gives_the_right_numbers(session_factory: Any, knowledge_holder: Any) -> None:
    kb = knowledge_holder.current.kb
    year: Year = await fill_year(session_factory, kb, LAST)
    started = time.perf_counter()
    r = await _report(session_factory, kb)
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"the report took {elapsed:.1f} s"  # aggregated in SQL: well under a second here

    month = [t for t in year.tickets if _in(t["created_at"], LAST)]
    assert 150 < len(month) < 250  # the month's share of the year, the rows after it left out
    t = r.tickets
    assert t.total.total == len(month)
    assert t.total.open == sum(x["status"] in OPEN_STATUSES for x in month)
    assert t.total.done == sum(x["status"] in (RESOLVED, CLOSED) for x in month)
    assert t.total.urgent == sum(x["urgent"] for x in month)
    assert t.total.escalated == sum(x["escalated_at"] is not None for x in month)
    assert t.responded == sum(x["first_response_at"] is not None for x in month)
    assert t.within_deadline == sum(_hours(x) is not None and (_hours(x) or 0) <= 24 for x in month)
    assert t.overdue == sum(_hours(x) is None or (_hours(x) or 0) > 24 for x in month)
    hours = [h for x in month if (h := _hours(x)) is not None]
    assert t.total.median_hours == _median(hours)
    assert t.mean_hours == round(statistics.fmean(hours), 1)
    assert t.from_chat == sum(x["source"] in ("wechat", "urgent") for x in month)
    # per village: every village listed, in order, with its median
    assert [g.name for g in t.villages][:11] == list(VILLAGES.values())
    for vid, name in VILLAGES.items():
        mine = [x for x in month if x["village_id"] == vid]
        row = next(g for g in t.villages if g.name == name)
        assert (row.total, row.open, row.urgent) == (
            len(mine),
            sum(x["status"] in OPEN_STATUSES for x in mine),
            sum(x["urgent"] for x in mine),
        )
        mine_hours = [h for h in map(_hours, mine) if h is not None]
        assert row.median_hours == _median(mine_hours)
        assert (row.rated, row.helpful) == (
            sum(x["satisfaction"] is not None for x in mine),
            sum(x["satisfaction"] == 1 for x in mine),
        )
    no_village = next(g for g in t.villages if g.name == "未选村")
    assert no_village.total == sum(x["village_id"] is None for x in month)
    # topics, statuses, satisfaction, response times, escalations
    topics = Counter(
        kb.topic_name(x["topic"]) if x["topic"] else ("涉及人身安全" if x["urgent"] else "未判断") for x in month
    )
    assert dict(t.topics) == dict(topics) and [n for _, n in t.topics] == sorted(topics.values(), reverse=True)
    assert dict(t.statuses) == dict(Counter(x["status"] for x in month))
    assert dict(t.satisfaction) == {
        name: sum(x["satisfaction"] == score for x in month) for score, name in SATISFACTION_NAMES.items()
    }
    buckets = dict(t.response_times)
    assert buckets["1小时内"] == sum(h < 1 for h in hours) and buckets["4–24小时"] == sum(4 <= h < 24 for h in hours)
    assert buckets["3天以上"] == sum(h >= 72 for h in hours)
    assert buckets[reports.NO_RESPONSE] == len(month) - len(hours) and sum(buckets.values()) == len(month)
    escalated = Counter(x["escalated_to"] for x in year.tickets if _in(x["escalated_at"], LAST))
    assert t.escalations == [(name, escalated[key]) for key, name in ESCALATION_TARGETS.items()]  # every target
    # twelve months of trend, oldest first, ending with the report's month
    assert t.trend_months[-1] == "2026-11" and t.trend_months[0] == "2025-12"
    for i, m in enumerate(r.trend_months):
        assert t.trend["新工单"][i] == sum(_in(x["created_at"], m) for x in year.tickets)
        assert t.trend["已解决"][i] == sum(_in(x["resolved_at"], m) for x in year.tickets)
        assert t.trend["紧急"][i] == sum(_in(x["created_at"], m) and x["urgent"] for x in year.tickets)

    # the bot's own work
    asked = [q for q in year.inbound if _in(q["received_at"], LAST)]
    outcomes = Counter(q["outcome"] for q in asked)
    b = r.bot
    assert (b.answered, b.picked, b.clarified, b.unanswered, b.smalltalk) == (
        outcomes["answer"],
        outcomes["picked"],
        outcomes["clarify"],
        outcomes["handoff"],
        outcomes["smalltalk"],
    )
    assert b.questions == outcomes["answer"] + outcomes["clarify"] + outcomes["handoff"] > 300
    asked_topics = Counter(
        kb.topic_name(q["topic"])
        for q in asked
        if q["outcome"] in ("answer", "picked", "clarify", "handoff") and q["topic"]
    )
    assert len(b.top_topics) == 10 and all(asked_topics[name] == n for name, n in b.top_topics)
    assert min(n for _, n in b.top_topics) >= sorted(asked_topics.values(), reverse=True)[10]
    answered = Counter(q["entry_id"] for q in asked if q["outcome"] in ("answer", "picked"))
    assert b.top_questions[0][1] == max(answered.values())
    assert b.top_questions[0][0] in {
        kb.fill(kb.by_id[e].question) for e, n in answered.items() if n == max(answered.values())
    }
    gaps = [g for g in year.gaps if _in(g["created_at"], LAST)]
    assert b.gaps == len(gaps) and dict(b.top_gaps) == dict(Counter(g["text"] for g in gaps))
    for i, m in enumerate(r.trend_months):
        in_month = Counter(q["outcome"] for q in year.inbound if _in(q["received_at"], m))
        assert b.trend["已回答"][i] == in_month["answer"] + in_month["picked"]
        assert b.trend["答不上"][i] == in_month["handoff"]

    # bookings and no-shows, campaign reach
    booked = [x for x in year.bookings if _in(x["starts_at"], LAST)]
    kept = [x for x in booked if x["status"] in ("confirmed", "checked_in", "no_show")]
    k = r.bookings
    assert (k.booked, k.came, k.no_show) == (
        len(kept),
        sum(x["status"] == "checked_in" for x in kept),
        sum(x["status"] == "no_show" for x in kept),
    )
    assert dict(k.by_status)["已取消"] == sum(x["status"] == "cancelled" for x in booked)
    assert {row[0] for row in k.by_service} <= set(year.services.values())
    assert [(c.title, c.sent, c.target) for c in r.campaigns] == [
        ("宪法宣传周", 400, 420),
        ("@SUM(1+1) 防诈骗", 58, 60),
        ("秋收用工提醒", 30, 30),
    ]
    assert r.campaigns[1].audience == "观音寺村、西竹园村"


async def test_a_mediator_s_report_covers_their_villages_only(session_factory: Any, knowledge_holder: Any) -> None:
    kb = knowledge_holder.current.kb
    year = await fill_year(session_factory, kb, LAST, tickets=600, questions=1500, bookings=200)
    r = await _report(session_factory, kb, (1, 2))
    mine = [x for x in year.tickets if _in(x["created_at"], LAST) and x["village_id"] in (1, 2)]
    assert [g.name for g in r.tickets.villages] == ["观音寺村", "西竹园村"]
    assert r.tickets.total.total == len(mine) and r.villages == {1: "观音寺村", 2: "西竹园村"}
    asked = [q for q in year.inbound if _in(q["received_at"], LAST) and year.openid_village[q["openid"]] in (1, 2)]
    assert r.bot.answered == sum(q["outcome"] == "answer" for q in asked)
    assert r.bot.gaps == sum(
        _in(g["created_at"], LAST) and year.openid_village[g["openid"]] in (1, 2) for g in year.gaps
    )
    here = {p for p, v in year.places.items() if v in (1, 2)}
    assert r.bookings.booked == sum(
        _in(x["starts_at"], LAST) and x["place_id"] in here and x["status"] in ("confirmed", "checked_in", "no_show")
        for x in year.bookings
    )
    # campaigns sent to everyone or to their villages; not the one for 柳树岭村
    assert [c.title for c in r.campaigns] == ["宪法宣传周", "@SUM(1+1) 防诈骗"]


@support.sqlite_only
async def test_the_page_charts_print_and_exports(client: Any, browsers: Any) -> None:
    factory = client.app[SERVICES].session_factory
    kb = client.app[SERVICES].knowledge.kb
    await fill_year(factory, kb, LAST, tickets=1200, questions=3000, bookings=300)
    await add_staff(client, "chief", "admin", name="乡司法所张三")
    await add_staff(client, "m1", "mediator", (1,), name="王调解员")
    chief: Staffer = await browsers("chief")
    for outside in ("1999-12", "9999-12"):  # a month outside the calendar staff use: a plain 400
        status, page = await chief.get("/admin/report", params={"month": outside})
        assert status == 400 and "日期超出范围" in page
    status, page = await chief.get("/admin/report", params={"month": LAST.label})
    assert status == 200 and "月报告 2026-11" in page
    # charts, server-side SVG inline, with alt text naming the numbers; one printed page per section
    assert page.count('<img class="chart" src="data:image/svg+xml;base64,') == 10
    assert 'alt="2026-11 各村工单。已办结：观音寺村' in page
    assert page.count('<section class="card page">') == 5 and "data-print" in page
    for heading in ("一、总体", "二、工单", "三、近12个月", "四、机器人的工作", "五、预约和普法活动"):
        assert heading in page
    assert "宪法宣传周" in page and "=HYPERLINK(&#34;http://x&#34;,&#34;点我&#34;)" in page  # villager text, escaped
    # CSV: the old layout first, then the new sections; text that looks like a formula stays text
    resp = await chief.get_raw(f"/admin/report.csv?month={LAST.label}")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8").lstrip("\ufeff"))))
    headers = [r[0] for i, r in enumerate(rows) if i and r and not rows[i - 1]]
    assert headers == [s.header[0] for s in reports.sections(await _report(factory, kb))]
    assert headers[:6] == ["总体", "按村", "升级去向（三长联动）", "按问题类别", "按状态", "满意度"]  # as before
    assert "'@SUM(1+1) 防诈骗" in [r[0] for r in rows if r]
    assert any(r and r[0].startswith("'=HYPERLINK") for r in rows)
    assert not any(r and r[0].startswith(("=", "@", "+")) for r in rows)
    # XLSX: one sheet per section, the same numbers; formulas stay text
    resp = await chief.get_raw(f"/admin/report.xlsx?month={LAST.label}")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(await resp.read()))
    assert book.sheetnames[:3] == ["总体", "按村", "升级去向（三长联动）"] and "机器人的工作" in book.sheetnames
    overall = {r[0]: r[1] for r in book["总体"].iter_rows(min_row=3, values_only=True)}
    csv_overall = {r[0]: r[1] for r in rows[2:12]}
    assert str(overall["工单数"]) == csv_overall["工单数"]
    gap_cells = [c for c in book["答不上的问题"]["A"] if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert gap_cells and all(c.data_type == "s" for c in gap_cells)
    # a mediator: their village only
    m1: Staffer = await browsers("m1")
    _, page = await m1.get("/admin/report", params={"month": LAST.label})
    assert "我负责的村" in page and "<td>观音寺村</td>" in page and "<td>西竹园村</td>" not in page
    assert "秋收用工提醒" not in page  # a campaign for another village


@support.sqlite_only
async def test_what_villagers_ask_is_counted_as_the_bot_answers_it(client: Any, settings: Any, browsers: Any) -> None:
    """From the phone: an answer, a short list and a pick from it, a question it cannot answer — each push
    keeps what the bot made of it, and the month's report counts them."""
    knowledge = client.app[SERVICES].knowledge
    answered, vague, unknown = "俺家宅基地被邻居占了咋整", "打工的事", "明天天气咋样"
    expected = {q: knowledge.match(q) for q in (answered, vague, unknown)}
    assert [expected[q].outcome for q in (answered, vague, unknown)] == ["answer", "clarify", "handoff"]
    phone = Phone(client, settings, "o_asks")
    await phone.subscribe("village_1")
    await dialog(phone, [(answered, "宅基地"), (vague, "1."), ("1", "。"), (unknown, "答不好"), ("你好", "")])
    await add_staff(client, "chief", "admin")
    chief: Staffer = await browsers("chief")
    _, page = await chief.get("/admin/report")
    assert "村民提问 <b>3</b> 次：直接回答 1 次；列出几条让村民选 1 次（选后回答 1 次）；答不上 1 次" in page
    kb = knowledge.kb
    r = await _report_now(client, kb)
    assert (r.bot.answered, r.bot.clarified, r.bot.picked, r.bot.unanswered) == (1, 1, 1, 1)
    assert r.bot.questions == 3  # the greeting is not a question
    assert r.bot.gaps == 2 and (unknown, 1) in r.bot.top_gaps
    picked = expected[vague].candidates[0].entry  # "1" picks the first of the list
    topics = Counter(
        [expected[answered].entry.topic, expected[vague].candidates[0].entry.topic, picked.topic]
        + [c.entry.topic for c in expected[unknown].candidates[:1]]
    )
    assert dict(r.bot.top_topics) == {kb.topic_name(t): n for t, n in topics.items()}
    assert dict(r.bot.top_questions) == Counter(
        kb.fill(e.question)
        for e in (expected[answered].entry, picked)
    )


async def _report_now(client: Any, kb: Any) -> reports.MonthlyReport:
    async with client.app[SERVICES].session_factory() as session:
        return await reports.build(session, reports.Scope(visible_to("admin", 1, ()), None), "", kb, utcnow())
