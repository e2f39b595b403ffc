"""A tiny knowledge directory the knowledge, matcher and CLI tests build in tmp_path.

The tests never depend on the shipped FAQ content (it changes as authors work); only
tests/test_knowledge_shipped.py reads the real knowledge/.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.knowledge import load_knowledge

TOPICS = """\
version: 1
topics:
  - id: marriage.divorce_procedure
    name: 离婚程序
    scope: 怎么离婚；协议离婚和起诉离婚
  - id: land.homestead
    name: 宅基地
    scope: 怎么申请宅基地；宅基地能不能买卖
  - id: labor.wage_arrears
    name: 欠薪讨薪
    scope: 打工的钱老板不给
  - id: social.assistance
    name: 低保与社会救助
    scope: 怎么申请低保
  - id: service.mediation
    name: 人民调解
    scope: 怎么申请调解
"""

SITE = """\
example: true
township: 观音寺乡
office_name: 观音寺乡司法所
office_phone: 0375-0000000
office_address: 乡政府院内
office_hours: 工作日
mediation_center_phone: 0375-0000001
"""

ENTRY = """\
- id: {id}
  topic: {topic}
  question: {question}
  variants: [{variants}]
  keywords: [{keywords}]
  answer: {answer}
  basis: [{basis}]
  next_step: 可以找村调委会，或到{{office_name}}咨询（电话{{office_phone}}）。
  reviewed: 2026-11-01
"""

ENTRIES = [
    ("divorce-by-agreement", "marriage.divorce_procedure", "两口子都同意离婚，协议离婚咋办？",
     "俺俩都同意离了去哪办手续, 协议离婚要带啥, 离婚冷静期是啥意思, 去民政局离婚要多长时间, 商量好了离婚咋弄",
     "协议离婚, 冷静期", "双方都愿意离婚的，可以一起到婚姻登记机关申请协议离婚。", "民法典第1076条"),
    ("divorce-spouse-refuses", "marriage.divorce_procedure", "对方不同意离婚咋办？",
     "他不同意离婚咋弄, 起诉离婚去哪个法院, 男人不签字不离, 一方不同意能离成不, 法院判不离多久能再告",
     "起诉离婚", "一方不同意的，可以向法院起诉离婚。", "民法典第1079条"),
    ("homestead-application", "land.homestead", "农村宅基地怎么申请？",
     "宅基地去哪批, 想申请宅基地盖房, 批宅子要啥手续, 庄基地咋批, 儿子结婚想分户要块宅基地",
     "申请宅基地", "农村村民一户只能拥有一处宅基地，向乡政府申请。", "土地管理法第62条"),
    ("homestead-sale", "land.homestead", "宅基地能买卖吗？",
     "宅基地能卖不能, 老宅子卖给外村人, 私下买卖宅基地算数不, 买了邻居的宅子能办证不, 城里人能买村里房子不",
     "宅基地买卖", "宅基地归集体所有，不能私下买卖。", "土地管理法"),
    ("wage-arrears-complain", "labor.wage_arrears", "打工的工钱老板不给，去哪里投诉？",
     "老板欠俺工钱不给, 欠薪去哪告, 工资要不回来咋办, 干了半年活一分钱没见, 讨工钱打啥电话",
     "欠薪, 12333", "可以向劳动保障监察投诉，也可以申请劳动仲裁。", "刑法第276条之一"),
    ("dibao-apply", "social.assistance", "怎么申请低保？",
     "家里困难咋申请低保, 吃低保得啥条件, 低保去哪申请, 申请低保要带啥材料, 办低保",
     "低保", "家庭人均收入低于当地低保标准的，可以向乡政府申请低保。", ""),
    ("mediation-apply", "service.mediation", "怎么申请人民调解？",
     "跟邻居闹矛盾找谁说和, 调解咋申请, 村里有管调解的没有, 想找人评理, 申请调解要写啥",
     "人民调解, 说和", "可以向村调委会申请调解，调解不收费。", "治安管理处罚法"),
]

SYNONYMS = """\
synonyms:
  我: [俺]
  怎么办: [咋办, 咋弄, 咋整]
  怎么: [咋]
  什么: [啥]
  宅基地: [庄基地]
  工资: [工钱]
  调解: [说和]
fillers: [请问, 我想问一下, 你好, 嗯, 那个]
smalltalk:
  greeting: [你好, 在吗]
  thanks: [谢谢, 多谢]
  help: [菜单, 帮助]
  bye: [再见]
topic_gates:
  social.assistance: [低保, 救助, 特困]
"""

URGENT = """\
suicide:
  any: [不想活, 喝农药]
violence_now:
  all: ["正在|现在 + 打我|动手"]
"""

LAWS = {
    "民法典-婚姻家庭编.md": "# 中华人民共和国民法典\n\n# 婚姻家庭编\n\n<!-- INFO END -->\n\n## 第四章  离婚\n\n"
    "第一千零七十六条 夫妻双方自愿离婚的，应当签订书面离婚协议。\n\n"
    "第一千零七十九条 夫妻一方要求离婚的，可以直接向人民法院提起离婚诉讼。\n\n"
    "有下列情形之一，调解无效的，应当准予离婚。\n",
    "土地管理法(2019-08-26).md": "# 中华人民共和国土地管理法\n\n<!-- INFO END -->\n\n## 第五章\n\n"
    "第六十二条 农村村民一户只能拥有一处宅基地。\n",
    "刑法.md": "# 中华人民共和国刑法\n\n<!-- INFO END -->\n\n"
    "第二百七十六条 由于泄愤报复……\n\n第二百七十六条之一 以转移财产、逃匿等方法逃避支付劳动者的劳动报酬……\n",
}


def entry_yaml(id: str, topic: str, question: str, variants: str, keywords: str, answer: str, basis: str) -> str:
    return ENTRY.format(id=id, topic=topic, question=question, variants=variants, keywords=keywords, answer=answer,
                        basis=basis)


def write_tiny_kb(root: Path, *, faq: dict[str, str] | None = None, synonyms: str | None = SYNONYMS,
                  urgent: str | None = URGENT) -> Path:
    """Write the tiny knowledge directory under ``root`` and return it.

    ``faq`` replaces the FAQ files (name → YAML text); by default the seven entries above
    are split over two files.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "topics.yaml").write_text(TOPICS, encoding="utf-8")
    (root / "site.yaml").write_text(SITE, encoding="utf-8")
    if synonyms is not None:
        (root / "synonyms.yaml").write_text(synonyms, encoding="utf-8")
    if urgent is not None:
        (root / "urgent.yaml").write_text(urgent, encoding="utf-8")
    (root / "faq").mkdir(exist_ok=True)
    if faq is None:
        faq = {
            "family.yaml": "".join(entry_yaml(*e) for e in ENTRIES[:2]),
            "other.yaml": "# more entries\n" + "".join(entry_yaml(*e) for e in ENTRIES[2:]),
        }
    for name, text in faq.items():
        (root / "faq" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "laws").mkdir(exist_ok=True)
    for name, text in LAWS.items():
        (root / "laws" / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_tiny_kb(tmp_path / "knowledge")


def test_the_tiny_knowledge_loads(tiny_dir: Path) -> None:
    kb = load_knowledge(tiny_dir)
    assert [e.id for e in kb.entries] == [e[0] for e in ENTRIES]
    assert kb.by_id["homestead-sale"].source_file == "faq/other.yaml"
