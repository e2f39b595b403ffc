"""Every audit action the code writes has a Chinese name (操作记录 shows words, never `ticket.reply`).

The action codes are collected from the source: every call of ``audit(...)`` (the back-office's
``adm.audit``) and ``audit_row(...)`` (services) in bot/ and handlers/. An action written as a literal
is taken as is; one written ``f"ticket.{action}"`` is expanded with the literals ``action`` is compared
with in the same function (``if action == "reply"``, ``status in (…)``); one passed in as a parameter
is looked up at the function's call sites. Anything else fails: write the code so it can be read here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from bot.services.audit import ACTION_NAMES, GROUPS, action_name, group_of

ROOT = Path(__file__).resolve().parents[1]
AUDIT_CALLS = {"audit", "audit_row"}


def _name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _action_arg(call: ast.Call) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == "action":
            return kw.value
    index = 0 if _name(call) == "audit_row" else 2  # audit(session, request, action, …)
    return call.args[index] if len(call.args) > index else None


def _compared_literals(function: ast.AST, variable: str) -> set[str]:
    """The string literals ``variable`` is compared with (==, !=, in, not in) inside ``function``."""
    found: set[str] = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(isinstance(s, ast.Name) and s.id == variable for s in sides):
            continue
        for side in sides:
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                found.add(side.value)
            elif isinstance(side, ast.Tuple | ast.List | ast.Set):
                found.update(e.value for e in side.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return found


def _argument_values(tree: ast.Module, function: ast.FunctionDef | ast.AsyncFunctionDef, param: str) -> set[str]:
    """The literals passed for ``param`` at the call sites of ``function`` in the same module."""
    names = [a.arg for a in function.args.args]
    position = names.index(param)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node) == function.name:
            values = [kw.value for kw in node.keywords if kw.arg == param]
            if not values and len(node.args) > position:
                values = [node.args[position]]
            found.update(v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return found


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def collect_action_codes() -> tuple[set[str], list[str]]:
    """(every action code written, the calls whose code could not be read)."""
    codes: set[str] = set()
    unreadable: list[str] = []
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in _functions(tree):
            params = {a.arg for a in function.args.args}
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and _name(node) in AUDIT_CALLS):
                    continue
                arg = _action_arg(node)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if function.name == "audit" and isinstance(arg, ast.Name) and arg.id in params:
                    continue  # the back-office's wrapper passing its own argument on
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    codes.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in params:
                    values = _argument_values(tree, function, arg.id)
                    codes.update(values) if values else unreadable.append(where)
                elif isinstance(arg, ast.JoinedStr):
                    parts = arg.values
                    holes = [p for p in parts if isinstance(p, ast.FormattedValue)]
                    if len(holes) != 1 or not isinstance(holes[0].value, ast.Name):
                        unreadable.append(where)
                        continue
                    values = _compared_literals(function, holes[0].value.id)
                    if not values:
                        unreadable.append(where)
                    for value in values:
                        codes.add(
                            "".join(
                                value if isinstance(p, ast.FormattedValue) else str(getattr(p, "value", ""))
                                for p in parts
                            )
                        )
                else:
                    unreadable.append(where)
    return codes, unreadable


def test_every_audit_action_in_the_code_has_a_chinese_name() -> None:
    codes, unreadable = collect_action_codes()
    assert not unreadable, f"write these audit actions so the test can read them: {unreadable}"
    # the collector does find them all: the views, the services, the dynamic ones
    assert {"ticket.reply", "ticket.escalate", "campaign.approve_refused", "booking.no_show"} <= codes
    assert {"booking.schedule.delete", "dispute.visit", "villager.forget", "disputes.import"} <= codes
    assert len(codes) >= 80, sorted(codes)
    missing = sorted(code for code in codes if code not in ACTION_NAMES)
    assert not missing, f"give these audit actions a Chinese name in bot/services/audit/names.py: {missing}"
    unused = sorted(set(ACTION_NAMES) - codes)
    assert not unused, f"no code writes these any more; remove them from bot/services/audit/names.py: {unused}"


def test_names_are_chinese_and_every_action_has_a_filter_group() -> None:
    for code, name in ACTION_NAMES.items():
        assert name and not any("a" <= ch.lower() <= "z" for ch in name), (code, name)
        assert group_of(code) in dict(GROUPS).values(), code
    assert action_name("ticket.reply") == "回复村民"
    assert action_name("something.old") == "其他操作"
