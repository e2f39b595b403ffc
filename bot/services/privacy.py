"""Personal data shown to staff: one masking rule for every feature — a phone number given with consent, and
one a villager typed into any message (a ticket's story, 补充, a question).

* :func:`mask_phone` — a number on its own: '13800138000' → '138****8000'.
* :func:`find_phones` / :func:`mask_phones` — numbers inside free text (mobile numbers, also written with
  spaces or dashes, full-width digits or +86; landlines with an area code), masked the same way. Staff see
  a text masked unless they may see the consented number too (the ticket's assignee, or an admin's audited
  "显示完整号码"); pages without such a person (the queue, knowledge gaps) always mask.
* :func:`remove_phones` / :func:`remove_phones_deep` — the numbers taken out for good (180 days after the
  matter ends, and from the questions kept for knowledge review).
* :func:`strip_personal` — names, phone numbers, id numbers and addresses out of a text that becomes a draft
  FAQ answer (存为问答草稿, bot/services/knowledge/drafts.py).
"""

from __future__ import annotations

import re
from typing import Any

#: a mobile number (11 digits from 13–19, perhaps as 138 0013 8000 / 138-0013-8000, full-width, +86) or a
#: landline with its area code (0571-88888888, 010 12345678); never part of a longer run of digits
_D = "[0-9０-９]"
_SEP = r"[ \-－—]?"
PHONE_IN_TEXT = re.compile(
    rf"(?<![0-9０-９])(?:(?:\+|＋)?(?:86|８６){_SEP})?[1１][3-9３-９]"
    rf"(?:{_SEP}{_D}){{9}}(?![0-9０-９])"
    rf"|(?<![0-9０-９])0[1-9１-９]{_D}{{1,2}}{_SEP}[2-9２-９]{_D}{{6,7}}(?![0-9０-９])"
)
#: a number masked by :func:`mask_phone` (a stored reply that echoed it): still seven digits of it
MASKED_IN_TEXT = re.compile(r"(?<![0-9])[01][0-9]{2}\*{3,}[0-9]{4}(?![0-9])")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")
#: what a number taken out for good becomes
PHONE_REMOVED = "[电话已删除]"


def mask_phone(phone: str | None) -> str:
    """'13800138000' → '138****8000'; short numbers are masked whole, never shown."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]


def _digits(found: str) -> str:
    digits = re.sub(r"\D", "", found.translate(_FULL_WIDTH))
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def find_phones(text: str | None) -> list[str]:
    """The phone numbers in a text, as plain digits."""
    return [_digits(m.group(0)) for m in PHONE_IN_TEXT.finditer(text or "")]


def mask_phones(text: str | None) -> str:
    """The text with every phone number in it masked like :func:`mask_phone`."""
    return PHONE_IN_TEXT.sub(lambda m: mask_phone(_digits(m.group(0))), text or "")


def shown_to_staff(text: str | None, *, full: bool) -> str:
    """A villager's text on a staff page: as written when ``full`` (the person who may see the number),
    else with the numbers masked."""
    return (text or "") if full else mask_phones(text)


def remove_phones(text: str | None) -> str:
    """Every phone number in the text, and every masked one, replaced by :data:`PHONE_REMOVED`."""
    return MASKED_IN_TEXT.sub(PHONE_REMOVED, PHONE_IN_TEXT.sub(PHONE_REMOVED, text or ""))


def remove_phones_deep(value: Any) -> Any:
    """:func:`remove_phones` on every string inside a JSON value (a push, a stored reply, an outbox payload)."""
    if isinstance(value, str):
        return remove_phones(value)
    if isinstance(value, list):
        return [remove_phones_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: remove_phones_deep(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- personal details out of free text
# Used when a staff reply becomes a draft FAQ answer (bot/services/knowledge/drafts.py): what a
# villager or staff member wrote about one case must not reach every villager. The rules are
# deliberately eager (a reviewer edits every draft before it is published).

#: the most common surnames (about nine in ten people in rural China) and the compound ones
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫"
    "孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童"
    "凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连"
    "芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖"
    "巩明佘池查麻苑迟邝"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
                     "宇文", "司徒", "令狐")
#: words after a surname that make it a person: 王大爷, 李某某, 张老板 …
_TITLES = (
    "某某", "某", "先生", "女士", "小姐", "师傅", "大爷", "大娘", "大妈", "大婶", "大叔", "大哥",
    "大姐", "阿姨", "奶奶", "爷爷", "老师", "老板", "书记", "主任", "村长", "支书", "组长", "会计",
    "律师", "医生", "警官", "所长", "调解员", "婶", "嫂", "叔", "伯", "姐", "哥", "总",
    "工",
)
_CJK = "\u4e00-\u9fff"
_LEAD = "(?P<lead>住在|住|家在|在|到|去|是)?"  # kept before an address
_SURNAME_RE = "(?:" + "|".join(COMPOUND_SURNAMES) + f"|[{SURNAMES}])"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # id numbers (18 or 15 digits), then bank cards and other long numbers
    (re.compile(r"(?<![\dA-Za-z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])"),
     "（身份证号）"),
    (re.compile(r"(?<!\d)\d{15}(?!\d)"), "（身份证号）"),
    (re.compile(r"(?<!\d)\d{12,19}(?!\d)"), "（号码）"),
    # phone numbers: the one rule every feature uses (mobiles with spaces, dashes, +86; land lines)
    (PHONE_IN_TEXT, "（电话）"),
    # house numbers and addresses: 3组12号, 幸福路8号3栋2单元501室
    (re.compile(rf"{_LEAD}[{_CJK}]{{0,8}}(?:村|镇|乡|区|县)?[{_CJK}\d]{{0,6}}(?:\d+|[一二三四五六七八九十]+)"
                rf"(?:组|队|社)(?:\d+号)?(?:\d+(?:栋|幢|号楼|单元|室|户))*"), r"\g<lead>（地址）"),
    (re.compile(rf"{_LEAD}[{_CJK}]{{1,10}}(?:路|街|巷|道|大道|胡同)\d+号(?:\d+(?:栋|幢|号楼|单元|室))*"),
     r"\g<lead>（地址）"),
    (re.compile(r"(?<![\d.])\d+(?:栋|幢|号楼)(?:\d+单元)?(?:\d+室)?"), "（地址）"),
    # names said as names: 我叫张三, 名叫…, 姓名：…, 联系人…
    (re.compile(rf"(?P<lead>我叫|我是|名叫|叫做|名字叫|名字是|姓名[:：]?|联系人[:：]?|当事人[:：]?)"
                rf"(?P<name>{_SURNAME_RE}[{_CJK}]{{1,2}})"), r"\g<lead>某某"),
    # a surname with a title or 某: 王大爷 → 某大爷, 张某某 → 某某
    (re.compile(rf"(?:老|小)?{_SURNAME_RE}(?P<title>{'|'.join(_TITLES)})"), r"某\g<title>"),
)


def strip_personal(text: str, *, names: tuple[str, ...] = (), site: dict[str, str] | None = None) -> str:
    """``text`` without names, phone numbers, id numbers and addresses (for a draft FAQ answer).

    ``names``: people known to be in the case (the villager's name, staff names) — removed
    wherever they appear. ``site``: the township's own values (``office_phone`` …), turned
    back into their ``{placeholders}`` first so the office's phone number is kept.
    """
    out = text
    for key, value in sorted((site or {}).items(), key=lambda kv: -len(str(kv[1]))):
        if isinstance(value, str) and len(value) >= 3:
            out = out.replace(value, "{" + key + "}")
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        out = out.replace(name, "某某")
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    return out.replace("某某某", "某某").replace("某某某某", "某某")
