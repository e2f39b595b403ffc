"""How strong a back-office password must be (security review #16).

- admins: at least 12 characters, not a common password, not containing the user name (or the
  display name), and rated at least "safely unguessable" (3 of 4) by zxcvbn, which knows 30,000
  common passwords, names, keyboard patterns, dates and repeats;
- mediators and volunteers: at least 8 characters, not a common password, not the user name.

Common passwords: zxcvbn's list plus ``common_passwords_zh.txt`` (what Chinese users pick most:
5201314, woaini1314, qq123456 …). Checked by ``lawbot admin create-user / set-password`` and every
back-office password form.
"""

from __future__ import annotations

import functools
from pathlib import Path

MIN_LENGTH = 8
MIN_LENGTH_ADMIN = 12
MAX_LENGTH = 128
MIN_SCORE_ADMIN = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline slow-hash scenario"
ZH_LIST = Path(__file__).resolve().parent / "common_passwords_zh.txt"


@functools.cache
def _zh_words() -> tuple[str, ...]:
    lines = ZH_LIST.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.matching import RANKED_DICTIONARIES

    return frozenset(RANKED_DICTIONARIES["passwords"]) | frozenset(_zh_words())


def is_common(password: str) -> bool:
    return password.casefold() in _common()


def password_problem(
    password: str,
    confirm: str | None = None,
    *,
    role: str = "volunteer",
    username: str = "",
    display_name: str = "",
) -> str | None:
    """What is wrong with ``password`` for an account of ``role``, in plain Chinese; None when it will do."""
    admin = role == "admin"
    minimum = MIN_LENGTH_ADMIN if admin else MIN_LENGTH
    if len(password) < minimum:
        return f"密码至少{minimum}位" + ("（管理员账号）。" if admin else "。")
    if len(password) > MAX_LENGTH:
        return f"密码最多{MAX_LENGTH}位。"
    folded = password.casefold()
    if username and folded == username.casefold():
        return "密码不能和用户名一样。"
    if is_common(password):
        return "这是很常见的密码，一猜就中，请换一个。"
    if admin:
        for name in (username, display_name):
            if len(name) >= 3 and name.casefold() in folded:
                return "管理员的密码里不能有用户名或姓名。"
        from zxcvbn import zxcvbn

        rating = zxcvbn(password[:100], user_inputs=[username, display_name, *_zh_words()])
        if rating["score"] < MIN_SCORE_ADMIN:
            return "管理员的密码太容易猜了：请用更长的、不成词的组合，比如几个不相关的词加数字和符号。"
    if confirm is not None and password != confirm:
        return "两次输入的密码不一样。"
    return None
