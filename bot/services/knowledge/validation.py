"""The rules of ``lawbot kb check`` applied to a change of the township's layer, said in plain Chinese.

Nothing here re-implements a rule: the layer with the change is merged onto the shipped pack
and the loader's own checks run over it (bot/knowledge/loader.py: citations that resolve in the
shipped statutes, ≤ 300 characters, placeholders, topic, ≥ 5 variants, who to go to, phrasings
shared with another entry). Their ``file:line: message`` lines are for authors of YAML; staff
read :func:`chinese` of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from bot.knowledge import KnowledgeBase
from bot.knowledge.loader import content_problems
from bot.services.knowledge.layer import SITE_KEYS, SITE_NAMES, Layer, LayerError, merge

FIELD_NAMES = {
    "answer": "答案",
    "next_step": "下一步",
    "details": "详细说明",
    "question": "问题",
    "variants": "问法",
    "keywords": "关键词",
    "basis": "依据",
    "topic": "类别",
    "id": "编号",
    "reviewed": "复核日期",
    "urgent": "紧急",
}
SITE_VALUE_MAX = 100


def _field(name: str) -> str:
    return FIELD_NAMES.get(name, name)


_CITATION: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(p), f)
    for p, f in (
        (r"^empty or non-text citation$", lambda m: "依据是空的"),
        (r"^not a citation", lambda m: "不是法条的写法（应写成“法律名称第N条”，或只写法律名称）"),
        (r"^write the article number in Arabic numerals", lambda m: "条号请用阿拉伯数字，如“民法典第1079条”"),
        (r"^(?P<n>.+) is not shipped in laws/: cite it by name only$",
         lambda m: f"条文库里没有《{m['n']}》的全文，只能写法律名称，不能写第几条"),
        (r"^unknown law '(?P<n>.+)': not in laws/$", lambda m: f"条文库里没有《{m['n']}》这部法律"),
        (r"^write the law's name as in laws/: (?P<n>.+)$", lambda m: f"法律名称请写成“{m['n']}”"),
        (r"^(?P<n>.+) has no article (?P<a>\d+)(?P<s>\S*) in laws/",
         lambda m: f"《{m['n']}》没有第{m['a']}条{m['s']}（按条文库里的现行文本），这条依据不存在"),
    )
)


def _citation(problem: str) -> str:
    for pattern, say in _CITATION:
        m = pattern.search(problem)
        if m:
            return say(m)
    return problem


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(p), f)
    for p, f in (
        (r"^(?P<n>\d+) variants, at least (?P<min>\d+) needed$",
         lambda m: f"问法只有 {m['n']} 个，一条问答至少要 {m['min']} 个（问题本身不算）"),
        (r"^answer is (?P<n>\d+) characters after filling \(max (?P<max>\d+)\)$",
         lambda m: f"答案填入本乡信息后有 {m['n']} 个字，最多 {m['max']} 个字"),
        (r"^answer must not contain the disclaimer or the next step",
         lambda m: "答案里不要写“以上为普法解答……”或“下一步”，机器人会自己加上"),
        (r"^next_step does not say who to go to",
         lambda m: "“下一步”没有说去找谁（村调委会、司法所、12348、法院……）"),
        (r"^basis '(?P<c>.*?)': (?P<p>.*)$", lambda m: f"依据“{m['c']}”：{_citation(m['p'])}"),
        (r"^phrasing '(?P<t>.*)' is empty after normalisation$", lambda m: f"问法“{m['t']}”去掉语气词后是空的"),
        (r"^phrasing '(?P<t>.*)' repeats another one of this entry$",
         lambda m: f"问法“{m['t']}”和这条问答的另一个问法重复"),
        (r"^phrasing '(?P<t>.*)' is also in (?P<o>[a-z0-9-]+) ",
         lambda m: f"问法“{m['t']}”已经是另一条问答的问法（{{{m['o']}}}），同一个问法只能属于一条问答"),
        (r"^unknown topic '(?P<t>.*)'", lambda m: f"没有这个类别：{m['t']}"),
        (r"^(?P<k>\w+): unknown placeholder \{(?P<p>\w+)\}",
         lambda m: f"{_field(m['k'])}里有不认识的占位符 {{{m['p']}}}（可以用的："
                   + "、".join("{" + SITE_NAMES[k] + "}" for k in SITE_KEYS) + "）"),
        (r"^(?P<k>\w+): placeholder \{(?P<p>\w+)\} has no value",
         lambda m: f"{_field(m['k'])}里的占位符 {{{SITE_NAMES.get(m['p'], m['p'])}}} 还没有填本乡的值"),
        (r"^(?P<k>\w+): stray brace",
         lambda m: f"{_field(m['k'])}里有多余的大括号（只能用 {{司法所电话}} 这样的占位符）"),
        (r"^`(?P<k>\w+)` is required and must be text$", lambda m: f"{_field(m['k'])}必须填写"),
        (r"^`(?P<k>\w+)` is missing$", lambda m: f"缺少{_field(m['k'])}"),
        (r"^`(?P<k>\w+)` must be", lambda m: f"{_field(m['k'])}的格式不对"),
        (r"^`reviewed`", lambda m: "复核日期不对"),
        (r"^id '(?P<i>.*)' must match", lambda m: f"编号“{m['i']}”只能用小写字母、数字和短横线"),
        (r"^unknown key '(?P<k>.*)'", lambda m: f"不认识的字段：{m['k']}"),
    )
)


def chinese(message: str, titles: dict[str, str] | None = None) -> str:
    """A loader message (without its ``file:line:``) in plain Chinese; entry ids become titles."""
    body = re.sub(r"^[a-z0-9-]+: ", "", message)
    for pattern, say in _RULES:
        m = pattern.search(message) or pattern.search(body)  # "question: …" is a field, "land-x: …" an entry
        if m:
            text = say(m)
            for entry_id, title in (titles or {}).items():
                text = text.replace("{" + entry_id + "}", f"“{title}”")
            return re.sub(r"\{[a-z0-9-]+\}", "另一条问答", text) if "{" in text and "占位符" not in text else text
    return f"没有通过检查：{body}"


def _concerns(message: str, entry_ids: Collection[str]) -> bool:
    head = message.split(": ", 1)[0]
    if head in entry_ids:
        return True
    m = re.search(r" is also in ([a-z0-9-]+) ", message)
    return bool(m and m.group(1) in entry_ids)


def site_problems(values: dict[str, str]) -> list[str]:
    found = []
    for key, value in values.items():
        if key not in SITE_KEYS:
            found.append(f"“{key}”不是可以设置的本乡信息")
        elif len(value) > SITE_VALUE_MAX:
            found.append(f"{key} 太长（最多 {SITE_VALUE_MAX} 个字）")
        elif "{" in value or "}" in value:
            found.append("本乡信息里不能有大括号")
    return found


def problems_for(shipped: KnowledgeBase, layer: Layer, entry_ids: Collection[str] | None) -> list[str]:
    """Every ``kb check`` problem of the merged knowledge that concerns ``entry_ids`` (None: all entries).

    An empty list means the change may be published.
    """
    found = site_problems(layer.site)
    try:
        merged = merge(shipped, layer).kb
    except LayerError as exc:
        return found + exc.messages
    ids = set(merged.by_id) if entry_ids is None else set(entry_ids)
    titles = {e.id: merged.fill(e.question) for e in merged.entries}
    for problem in content_problems(merged):
        body = problem.message
        if _concerns(body, ids):
            title = titles.get(body.split(": ", 1)[0], "")
            text = chinese(body, titles)
            found.append(f"“{title}”：{text}" if entry_ids is None and title else text)
    return found
