"""人民调解 documents, filled in from a case: what each one says, as a list of blocks that
``word.to_docx`` writes as an editable DOCX (WPS/Word) and the back-office prints as an A4 page.

* 人民调解申请书, 受理登记表, 调解记录, 口头协议登记表, 回访记录 — the forms the committee keeps
  (人民调解法第二十七条: 调解登记、调解工作记录、调解协议书等材料立卷归档);
* 人民调解协议书 — what 人民调解法第二十九条 lists: the parties' basic details; the main facts, the
  points in dispute and each party's responsibility; the agreed terms and how and by when they are
  performed; signature blocks for the parties, the mediator and the committee's seal; and the
  30-day 司法确认 period (第三十三条, 民事诉讼法第二百零五条);
* 司法确认申请书 — the parties' joint application to the basic-level court, with what 最高人民法院
  《关于人民调解协议司法确认程序的若干规定》第三条 asks to be attached;
* 卷宗 — a cover, the list of contents, then every document above.

A value the case does not have yet is a blank line to fill in by hand, never invented.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.services.disputes.deadlines import chinese_date, confirmation_deadline
from bot.storage.disputes import ORAL, SIDES, DisputeCase, DisputeParty

BLANK = "＿＿＿＿＿＿"
DATE_BLANK = "＿＿＿＿年＿＿月＿＿日"


@dataclass(frozen=True)
class Para:
    text: str
    bold: bool = False
    align: str = "left"  # left | center | right
    indent: bool = True  # first line indented two characters


@dataclass(frozen=True)
class Grid:
    """A two-column form: label, value."""

    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Signatures:
    lines: tuple[str, ...]


Block = Para | Grid | Table | Signatures


@dataclass(frozen=True)
class Document:
    key: str
    title: str
    number: str
    blocks: tuple[Block, ...]


@dataclass
class CaseFile:
    """Everything the documents read: the case, its village, parties, mediator and the township."""

    case: DisputeCase
    village: str
    parties: Sequence[DisputeParty]
    mediator: str
    recorder: str
    site: Mapping[str, Any]
    notes: Sequence[tuple[dt.datetime, str, str]] = field(default_factory=list)  # (at, author, text)

    def side(self, side: str) -> list[DisputeParty]:
        return [p for p in self.parties if p.side == side]

    @property
    def court(self) -> str:
        return str(self.site.get("court_name") or f"{self.site.get('county') or ''}人民法院")


def _or_blank(value: str | None) -> str:
    return value.strip() if value and value.strip() else BLANK


def party_line(p: DisputeParty, village: str, township: str) -> str:
    """姓名，性别，民族，年龄，住址，联系电话 — blanks where unknown."""
    bits = [p.name, p.gender or "性别＿＿", f"{p.ethnicity}族" if p.ethnicity else "＿＿族"]
    bits.append(f"{p.age}岁" if p.age else "＿＿岁")
    bits.append(f"住{p.address}" if p.address else f"住{township}{village}{BLANK}")
    bits.append(f"联系电话{p.phone}" if p.phone else f"联系电话{BLANK}")
    return "，".join(bits)


def _parties(f: CaseFile, labels: Sequence[str] = SIDES) -> list[Block]:
    township = str(f.site.get("township") or "")
    blocks: list[Block] = []
    for side, label in zip(SIDES, labels, strict=True):
        for p in f.side(side):
            blocks.append(Para(f"{label}：{party_line(p, f.village, township)}", indent=False))
        if not f.side(side):
            blocks.append(Para(f"{label}：{BLANK}", indent=False))
    return blocks


def _names(f: CaseFile, side: str) -> str:
    return "、".join(p.name for p in f.side(side)) or BLANK


def _facts(case: DisputeCase) -> list[Block]:
    blocks: list[Block] = [Para(_or_blank(case.summary))]
    blocks.append(Para(f"争议事项：{_or_blank(case.points)}"))
    blocks.append(Para(f"各方责任：{_or_blank(case.responsibility)}"))
    return blocks


def confirmation_sentence(case: DisputeCase) -> str:
    text = (
        "双方当事人认为有必要的，可以自本协议生效之日起三十日内，共同向人民法院申请司法确认"
        "（《中华人民共和国人民调解法》第三十三条、《中华人民共和国民事诉讼法》第二百零五条）"
    )
    if case.agreement_on is not None:
        deadline = confirmation_deadline(case.agreement_on)
        text += f"；本协议于{chinese_date(case.agreement_on)}生效，申请应在{chinese_date(deadline)}前提出（30日）"
    return text + "。"


def _party_signatures(f: CaseFile) -> list[str]:
    return [f"{side}（签名、盖章或按指印）：＿＿＿＿＿＿" for side in SIDES for _ in range(max(1, len(f.side(side))))]


def application(f: CaseFile) -> Document:
    case = f.case
    return Document(
        "application",
        "人民调解申请书",
        case.case_no,
        (
            *_parties(f, ("申请人", "被申请人")),
            Para("纠纷简要情况：", bold=True, indent=False),
            Para(_or_blank(case.summary)),
            Para("申请事项：", bold=True, indent=False),
            Para(f"请求{case.committee or BLANK}依法调解上述纠纷。{case.points.strip()}"),
            Para(
                "人民调解委员会已告知我人民调解的性质、原则和效力，以及当事人在调解活动中享有的权利和承担的义务"
                "（《中华人民共和国人民调解法》第二十三条、第二十四条）；调解不收取任何费用（第四条）。我自愿申请调解。"
            ),
            Signatures(("申请人（签名、盖章或按指印）：＿＿＿＿＿＿", DATE_BLANK)),
        ),
    )


def registration(f: CaseFile) -> Document:
    case = f.case
    return Document(
        "registration",
        "人民调解受理登记表",
        case.case_no,
        (
            Grid(
                (
                    ("编号", case.case_no),
                    ("受理日期", chinese_date(case.found_on)),
                    ("纠纷来源", case.source),
                    ("纠纷类型", case.type),
                    ("风险等级", case.risk),
                    ("当事人", _names(f, SIDES[0])),
                    ("对方当事人", _names(f, SIDES[1])),
                    ("纠纷简要情况", _or_blank(case.summary)),
                    ("调解组织", case.committee or BLANK),
                    ("调解员", _or_blank(f.mediator)),
                    ("登记人", _or_blank(f.recorder)),
                    ("备注", case.notes.strip()),
                )
            ),
        ),
    )


def record(f: CaseFile) -> Document:
    case = f.case
    sessions = tuple((chinese_date(at.date()), author, text) for at, author, text in f.notes)
    result = case.status + (f"，达成{case.agreement_kind}调解协议" if case.agreement_kind else "")
    return Document(
        "record",
        "人民调解记录",
        case.case_no,
        (
            Grid(
                (
                    ("编号", case.case_no),
                    ("调解时间", DATE_BLANK),
                    ("调解地点", BLANK),
                    ("当事人", _names(f, SIDES[0])),
                    ("对方当事人", _names(f, SIDES[1])),
                    ("人民调解员", _or_blank(f.mediator)),
                    ("记录人", BLANK),
                )
            ),
            Para("纠纷事实和争议事项：", bold=True, indent=False),
            *_facts(case),
            Para("调解情况：", bold=True, indent=False),
            Table(("日期", "记录人", "内容"), sessions) if sessions else Para(BLANK),
            Para(f"调解结果：{result}", indent=False),
            Signatures(
                (
                    "当事人（签名或按指印）：＿＿＿＿＿＿",
                    "人民调解员（签名）：＿＿＿＿＿＿",
                    "记录人（签名）：＿＿＿＿＿＿",
                )
            ),
        ),
    )


def agreement(f: CaseFile) -> Document:
    case = f.case
    copies = len(f.parties) + 1
    deadline = case.performance_deadline.strip()
    return Document(
        "agreement",
        "人民调解协议书",
        case.case_no,
        (
            *_parties(f),
            Para("纠纷的主要事实、争议事项以及各方当事人的责任：", bold=True, indent=False),
            *_facts(case),
            Para(
                f"经{case.committee or '本人民调解委员会'}调解，双方当事人在平等协商、互谅互让的基础上，"
                "自愿达成如下协议：",
                bold=True,
                indent=False,
            ),
            *(Para(line) for line in (case.agreement_terms.strip() or BLANK).splitlines() if line.strip()),
            Para("履行方式、期限：", bold=True, indent=False),
            Para(f"履行方式：{_or_blank(case.performance_method)}"),
            Para(f"履行期限：{deadline or BLANK}"),
            Para(
                "本协议自各方当事人签名、盖章或者按指印，人民调解员签名并加盖人民调解委员会印章之日起生效"
                "（《中华人民共和国人民调解法》第二十九条）。经人民调解委员会调解达成的调解协议，具有法律约束力，"
                "当事人应当按照约定履行（第三十一条）。"
            ),
            Para(confirmation_sentence(case)),
            Para(f"本协议一式{copies}份，当事人各执一份，人民调解委员会留存一份。"),
            Signatures(
                (
                    *_party_signatures(f),
                    "人民调解员（签名）：＿＿＿＿＿＿",
                    "记录人（签名）：＿＿＿＿＿＿",
                    f"{case.committee or '人民调解委员会'}（印章）",
                    chinese_date(case.agreement_on) or DATE_BLANK,
                )
            ),
        ),
    )


def oral(f: CaseFile) -> Document:
    case = f.case
    reached = chinese_date(case.agreement_on) if case.agreement_kind == ORAL and case.agreement_on else DATE_BLANK
    return Document(
        "oral",
        "人民调解口头协议登记表",
        case.case_no,
        (
            Grid(
                (
                    ("编号", case.case_no),
                    ("当事人", _names(f, SIDES[0])),
                    ("对方当事人", _names(f, SIDES[1])),
                    ("纠纷简要情况", _or_blank(case.summary)),
                    ("协议内容", _or_blank(case.agreement_terms)),
                    ("履行方式、期限", f"{_or_blank(case.performance_method)}；{_or_blank(case.performance_deadline)}"),
                    ("协议达成日期", reached),
                    ("人民调解员", _or_blank(f.mediator)),
                    ("登记人", BLANK),
                )
            ),
            Para("口头调解协议自各方当事人达成协议之日起生效（《中华人民共和国人民调解法》第三十条）。"),
        ),
    )


def visit(f: CaseFile) -> Document:
    case = f.case
    outcome = case.visit_result or BLANK
    return Document(
        "visit",
        "人民调解回访记录",
        case.case_no,
        (
            Grid(
                (
                    ("编号", case.case_no),
                    ("回访时间", chinese_date(case.visited_on) or DATE_BLANK),
                    ("回访对象", "、".join(p.name for p in f.parties) or BLANK),
                    ("回访事由", "了解调解协议履行情况（《中华人民共和国人民调解法》第三十一条）"),
                    ("协议履行情况", outcome),
                    ("回访情况", _or_blank(case.visit_notes)),
                    ("回访人", _or_blank(f.mediator)),
                    ("记录人", BLANK),
                )
            ),
        ),
    )


def confirmation(f: CaseFile) -> Document:
    """The joint application for 司法确认 to the basic-level court (民事诉讼法第二百零五条)."""
    case = f.case
    on = chinese_date(case.agreement_on) or DATE_BLANK
    deadline = chinese_date(confirmation_deadline(case.agreement_on)) if case.agreement_on else DATE_BLANK
    return Document(
        "confirmation",
        "司法确认申请书",
        case.case_no,
        (
            *_parties(f, ("申请人", "申请人")),
            Para("请求事项：", bold=True, indent=False),
            Para(
                f"请求确认申请人于{on}经{case.committee or BLANK}主持调解达成的人民调解协议（编号{case.case_no}）有效。"
            ),
            Para("事实与理由：", bold=True, indent=False),
            Para(f"申请人之间因{case.type}，经{case.committee or BLANK}调解，于{on}自愿达成调解协议，协议内容如下："),
            *(Para(line) for line in (case.agreement_terms.strip() or BLANK).splitlines() if line.strip()),
            Para(f"履行方式：{_or_blank(case.performance_method)}；履行期限：{_or_blank(case.performance_deadline)}。"),
            Para(
                "申请人认为，上述调解协议是双方真实意思表示，内容不违反法律、行政法规的强制性规定，不侵害国家利益、"
                "社会公共利益和他人合法权益，不违背公序良俗。根据《中华人民共和国民事诉讼法》第二百零五条、"
                "《中华人民共和国人民调解法》第三十三条的规定，现共同申请司法确认。"
            ),
            Para("申请人保证提交的材料真实、合法，知悉虚假调解应承担的法律责任。"),
            Para(f"本申请应当由双方当事人自调解协议生效之日起三十日内，即{deadline}前，共同提出。"),
            Para("此致", indent=False),
            Para(f.court, indent=False),
            Signatures((*("申请人（签名或按指印）：＿＿＿＿＿＿" for _ in f.parties), DATE_BLANK)),
            Para(
                "附：1. 人民调解协议书；2. 申请人身份证明；3. 与调解协议相关的财产权利证明等材料；"
                "4. 双方当事人的送达地址、电话号码等联系方式。",
                indent=False,
            ),
        ),
    )


BUILDERS = {
    "application": application,
    "registration": registration,
    "record": record,
    "agreement": agreement,
    "oral": oral,
    "visit": visit,
    "confirmation": confirmation,
}
TITLES: dict[str, str] = {
    "application": "人民调解申请书",
    "registration": "受理登记表",
    "record": "调解记录",
    "agreement": "人民调解协议书",
    "oral": "口头协议登记表",
    "visit": "回访记录",
    "confirmation": "司法确认申请书",
    "dossier": "卷宗（全部文书）",
}


def dossier(f: CaseFile) -> list[Document]:
    """The 卷宗: a cover with the list of contents, then every document."""
    case = f.case
    documents = [build(key, f) for key in BUILDERS]
    result = case.status + (f"，{case.agreement_kind}调解协议" if case.agreement_kind else "")
    cover = Document(
        "cover",
        "人民调解卷宗",
        case.case_no,
        (
            Para(case.committee or "人民调解委员会", align="center", indent=False),
            Grid(
                (
                    ("卷宗编号", case.case_no),
                    ("案由", case.type),
                    ("当事人", f"{_names(f, SIDES[0])}；{_names(f, SIDES[1])}"),
                    ("人民调解员", _or_blank(f.mediator)),
                    ("受理日期", chinese_date(case.found_on)),
                    ("结案日期", chinese_date(case.resolved_on) or BLANK),
                    ("调解结果", result),
                    ("立卷人", BLANK),
                    ("立卷日期", DATE_BLANK),
                    ("保管期限", BLANK),
                )
            ),
            Table(("序号", "文书名称", "页数"), tuple((str(i), d.title, "") for i, d in enumerate(documents, 1))),
        ),
    )
    return [cover, *documents]


def build(key: str, f: CaseFile) -> Document:
    return BUILDERS[key](f)


def documents_for(key: str, f: CaseFile) -> list[Document]:
    """One document, or the whole 卷宗 for ``dossier``."""
    if key == "dossier":
        return dossier(f)
    if key not in BUILDERS:
        raise KeyError(key)
    return [build(key, f)]


async def case_file(session: Any, case: DisputeCase, site: Mapping[str, Any]) -> CaseFile:
    """Gather what the documents need from the database (``session``: an AsyncSession)."""
    from sqlalchemy import select

    from bot.services.disputes.cases import parties_of
    from bot.storage.disputes import DisputeEvent
    from bot.storage.models import Village
    from bot.storage.staff import StaffUser

    village = await session.get(Village, case.village_id)
    mediator = await session.get(StaffUser, case.mediator_id) if case.mediator_id else None
    recorder = await session.get(StaffUser, case.recorded_by_id) if case.recorded_by_id else None
    rows = await session.execute(
        select(DisputeEvent, StaffUser)
        .outerjoin(StaffUser, StaffUser.id == DisputeEvent.staff_id)
        .where(DisputeEvent.case_id == case.id, DisputeEvent.kind == "note")
        .order_by(DisputeEvent.at, DisputeEvent.id)
    )
    notes = [(event.at, staff.label if staff else "系统", event.body) for event, staff in rows.all()]
    return CaseFile(
        case=case,
        village=village.name if village is not None else "",
        parties=await parties_of(session, case.id),
        mediator=mediator.label if mediator is not None else case.mediator_name,
        recorder=recorder.label if recorder is not None else "",
        site=site,
        notes=notes,
    )
