"""WeChat API errors: ``errcode`` → a typed exception with a reason staff can read.

* :class:`RetryableError` — try again later (system busy, quota, HTTP 5xx, timeouts, connection errors).
* :class:`PermanentError` — the same call will fail again (bad openid, unsubscribed, outside the
  48-hour window, bad template, no mass quota …).
* :class:`TokenInvalidError` — the access token was rejected; refresh it and retry once.

Any other ``errcode`` becomes a plain :class:`WeChatError`; the outbox retries those a limited number
of times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# errcode -> (中文说明, English description)
_DESCRIPTIONS: dict[int, tuple[str, str]] = {
    -1: ("微信系统繁忙或网络异常", "WeChat is busy or the network failed"),
    40001: ("access_token 无效（或 AppSecret 错误）", "access token invalid (or wrong AppSecret)"),
    40003: ("OpenID 不合法", "invalid openid"),
    40007: ("媒体文件 id 不合法", "invalid media_id"),
    40008: ("消息类型不合法", "invalid message type"),
    40013: ("AppID 不合法", "invalid AppID"),
    40014: ("access_token 不合法", "invalid access token"),
    40016: ("菜单按钮个数不合法", "invalid number of menu buttons"),
    40017: ("菜单按钮类型不合法", "invalid menu button type"),
    40018: ("菜单按钮名字长度不合法", "invalid menu button name length"),
    40019: ("菜单按钮 KEY 长度不合法", "invalid menu button key length"),
    40023: ("子菜单按钮个数不合法", "invalid number of sub-buttons"),
    40032: ("一次传入的 openid 过多", "too many openids in one call"),
    40037: ("模板 id 不合法", "invalid template_id"),
    40050: ("分组 id 不合法（已停用的 group_id）", "invalid group id (group_id is obsolete)"),
    40054: ("子菜单按钮 URL 不合法", "invalid sub-button URL"),
    40055: ("菜单按钮 URL 不合法", "invalid button URL"),
    40125: ("AppSecret 不合法", "invalid AppSecret"),
    40130: ("openid 列表个数不合法（至少 2 个，最多 10000 个）", "invalid openid list size (2 to 10,000)"),
    40164: ("调用接口的 IP 不在白名单中", "caller IP is not in the account's IP whitelist"),
    41001: ("缺少 access_token 参数", "access_token missing"),
    41002: ("缺少 AppID 参数", "appid missing"),
    41004: ("缺少 AppSecret 参数", "secret missing"),
    42001: ("access_token 已过期", "access token expired"),
    43004: ("村民已取消关注，无法发送", "the user has unsubscribed"),
    43101: ("用户拒绝接受该订阅消息", "the user refused this subscribe message"),
    44002: ("请求内容为空", "empty request body"),
    45009: ("接口调用次数超过限制（今日额度用完）", "API call quota reached"),
    45011: ("接口调用太频繁", "API called too often"),
    45015: ("超出 48 小时客服消息窗口（村民 48 小时内没有发消息）", "outside the 48-hour customer-service window"),
    45028: ("群发次数已用完", "no mass-send quota left"),
    45047: ("客服消息条数超过上限（村民回复前最多 20 条）", "too many CS messages before the user replies"),
    45056: ("标签数量过多", "too many tags"),
    45058: ("不能修改系统默认标签", "system tags cannot be changed"),
    45059: ("粉丝身上的标签数超过上限", "a user has too many tags"),
    45065: ("相同 clientmsgid 已有群发记录（已经群发过）", "a mass send with this clientmsgid already exists"),
    45066: ("相同 clientmsgid 重试太快，请 1 分钟后重试", "same clientmsgid retried too fast; retry after a minute"),
    45067: ("clientmsgid 长度超过 64", "clientmsgid longer than 64"),
    45157: ("标签名不合法或重名", "invalid or duplicate tag name"),
    45158: ("标签名超过 30 字节", "tag name longer than 30 bytes"),
    45159: ("标签不存在", "invalid tag id"),
    46003: ("菜单不存在", "no menu"),
    47001: ("请求 JSON 格式错误", "malformed JSON"),
    47003: ("模板参数不正确", "invalid template data"),
    48001: ("公众号没有该接口权限", "the account is not authorised for this API"),
    49003: ("openid 不属于本公众号", "openid does not belong to this AppID"),
    50001: ("用户未授权该接口", "the user has not authorised this API"),
}

TOKEN_INVALID_CODES = frozenset({40001, 40014, 42001})
RETRYABLE_CODES = frozenset({-1, 45009, 45011, 45066})
PERMANENT_CODES = frozenset(
    {
        40003, 40007, 40008, 40013, 40016, 40017, 40018, 40019, 40023, 40032, 40037, 40050, 40054, 40055,
        40125, 40130, 40164, 41001, 41002, 41004, 43004, 43101, 44002, 45015, 45028, 45047, 45056, 45058,
        45059, 45065, 45067, 45157, 45158, 45159, 46003, 47001, 47003, 48001, 49003, 50001,
    }
)  # fmt: skip

#: errcode used for failures that never reached WeChat's JSON (HTTP 5xx, timeouts, connection errors)
TRANSPORT_ERRCODE = -1


class WeChatError(Exception):
    """A WeChat API call failed. ``errcode``/``errmsg`` are WeChat's (or -1 for transport failures)."""

    def __init__(
        self,
        errcode: int,
        errmsg: str = "",
        *,
        path: str = "",
        http_status: int | None = None,
        response: Mapping[str, Any] | None = None,
        may_have_reached: bool = False,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        self.http_status = http_status
        self.response: dict[str, Any] = dict(response or {})
        #: the request may have been carried out although no answer came (a timeout, a dropped
        #: connection, an HTTP 5xx): a retry might repeat it
        self.may_have_reached = may_have_reached
        super().__init__(f"{path or 'WeChat API'}: errcode={errcode} errmsg={errmsg!r}")

    @property
    def retryable(self) -> bool:
        return isinstance(self, RetryableError | TokenInvalidError)

    @property
    def reason(self) -> str:
        """One line for staff, Chinese then English.

        e.g. ``村民已取消关注，无法发送 / the user has unsubscribed (43004)``.
        """
        if self.http_status is not None and self.http_status >= 400:
            return f"微信接口 HTTP 错误 / WeChat API HTTP error {self.http_status}"
        zh, en = _DESCRIPTIONS.get(self.errcode, ("微信接口返回错误", "WeChat API error"))
        detail = ""
        transport = self.errcode == TRANSPORT_ERRCODE and not self.response
        if self.errmsg and (transport or self.errcode not in _DESCRIPTIONS):
            detail = self.errmsg
        text = f"{zh} / {en} ({self.errcode})"
        return f"{text}: {detail}" if detail else text


class RetryableError(WeChatError):
    """Temporary: -1 system busy, 45009/45011 quota, 45066, HTTP 5xx, timeouts, connection errors."""


class PermanentError(WeChatError):
    """The same request will fail again; do not retry."""


class TokenInvalidError(WeChatError):
    """40001/40014/42001: the access token was rejected."""


def error_for(
    errcode: int,
    errmsg: str = "",
    *,
    path: str = "",
    http_status: int | None = None,
    response: Mapping[str, Any] | None = None,
) -> WeChatError:
    """The typed exception for an ``errcode`` returned by ``path``."""
    cls: type[WeChatError]
    if errcode in TOKEN_INVALID_CODES:
        cls = TokenInvalidError
    elif errcode in RETRYABLE_CODES:
        cls = RetryableError
    elif errcode in PERMANENT_CODES:
        cls = PermanentError
    else:
        cls = WeChatError
    return cls(errcode, errmsg, path=path, http_status=http_status, response=response)


def transport_error(
    message: str, *, path: str = "", http_status: int | None = None, may_have_reached: bool = True
) -> RetryableError:
    """A failure below WeChat's JSON: timeout, connection error, HTTP 5xx.

    ``may_have_reached=False`` only when the request surely never reached WeChat (the connection
    could not be opened) or was refused unprocessed (HTTP 429)."""
    return RetryableError(
        TRANSPORT_ERRCODE, message, path=path, http_status=http_status, may_have_reached=may_have_reached
    )


def describe(errcode: int) -> str:
    zh, en = _DESCRIPTIONS.get(errcode, ("微信接口返回错误", "WeChat API error"))
    return f"{zh} / {en} ({errcode})"
