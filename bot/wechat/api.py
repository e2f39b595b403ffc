"""Async WeChat Official Account API client on aiohttp (wechatpy 1.8 has no async client).

One :class:`WeChatClient` owns one ``aiohttp.ClientSession`` (``async with`` or :meth:`close`).
Every call has an explicit timeout, is paced by a :class:`~bot.wechat.ratelimit.RateLimiter`, and
raises a typed :mod:`bot.wechat.errors` exception on failure. The access token comes from a shared
:class:`~bot.wechat.token.TokenStore`; a rejected token (40001/40014/42001) is re-read or refreshed
once and the call retried once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.wechat.errors import PermanentError, TokenInvalidError, error_for, transport_error
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DEFAULT_MARGIN, AccessTokenManager, FetchedToken, MemoryTokenStore, TokenStore

if TYPE_CHECKING:
    from bot.settings import Settings

DEFAULT_API_BASE = "https://api.weixin.qq.com"
MASS_OPENIDS_MAX = 10_000
MASS_OPENIDS_MIN = 2
TAG_BATCH_MAX = 50
CLIENTMSGID_MAX = 64

# credential problems: falling back from stable_token to /cgi-bin/token would not help
_CREDENTIAL_ERRCODES = frozenset({40001, 40013, 40125, 40164, 41002, 41004})


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    filename: str | None = None


@dataclass(frozen=True)
class MassSendResult:
    msg_id: int
    msg_data_id: int | None = None


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    count: int = 0


def text_message(content: str) -> dict[str, Any]:
    """A mass/preview message body: ``{"msgtype": "text", "text": {"content": …}}``."""
    return {"msgtype": "text", "text": {"content": content}}


def mpnews_message(media_id: str) -> dict[str, Any]:
    return {"msgtype": "mpnews", "mpnews": {"media_id": media_id}}


def image_message(media_id: str) -> dict[str, Any]:
    return {"msgtype": "image", "image": {"media_id": media_id}}


def _check_message(message: Mapping[str, Any]) -> dict[str, Any]:
    msgtype = message.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in message:
        raise ValueError('a message needs "msgtype" and a body under that key, e.g. text_message("…")')
    return dict(message)


def template_data(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"k": "v"}`` or ``{"k": {"value": "v", "color": …}}`` → WeChat's ``{"k": {"value": "v", …}}``."""
    return {k: dict(v) if isinstance(v, Mapping) else {"value": str(v)} for k, v in data.items()}


class WeChatClient:
    """The WeChat API for one AppID."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        media_timeout: float = 30.0,
        token_margin: dt.timedelta = DEFAULT_MARGIN,
        max_connections: int = 100,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.api_base = api_base.rstrip("/")
        self.token_store: TokenStore = token_store if token_store is not None else MemoryTokenStore()
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout, sock_connect=connect_timeout)
        self.media_timeout = aiohttp.ClientTimeout(total=media_timeout, connect=connect_timeout)
        self.tokens = AccessTokenManager(appid, self.token_store, self.fetch_access_token, margin=token_margin)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        **kwargs: Any,
    ) -> WeChatClient:
        return cls(
            settings.wechat_appid,
            settings.wechat_secret,
            api_base=settings.wechat_api_base,
            token_store=token_store,
            rate_limiter=rate_limiter,
            **kwargs,
        )

    # ------------------------------------------------------------ lifecycle
    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, headers={"User-Agent": "lawbot"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WeChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ transport
    def _url(self, path: str) -> str:
        return f"{self.api_base}{path}"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        binary: bool = False,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any] | Media:
        data: bytes | aiohttp.FormData | None
        headers: dict[str, str] | None
        if form is not None:  # multipart: aiohttp sets the Content-Type (with the boundary)
            data, headers = form(), None
        else:
            data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
            headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            async with self.session.request(
                method,
                self._url(path),
                params=params,
                data=data,
                headers=headers,
                timeout=client_timeout or self.timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                content_type = resp.content_type
                disposition = resp.headers.get("Content-Disposition", "")
        except aiohttp.ConnectionTimeoutError as exc:  # never connected: the request was not sent
            raise transport_error(f"connect timeout: {exc}", path=path, may_have_reached=False) from exc
        except TimeoutError as exc:
            raise transport_error(f"timeout after {(client_timeout or self.timeout).total}s", path=path) from exc
        except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS handshake: not sent
            raise transport_error(f"{type(exc).__name__}: {exc}", path=path, may_have_reached=False) from exc
        except aiohttp.ClientError as exc:
            raise transport_error(f"{type(exc).__name__}: {exc}", path=path) from exc
        if status >= 500 or status == 429:
            raise transport_error(f"HTTP {status}", path=path, http_status=status, may_have_reached=status != 429)
        if status >= 400:
            raise PermanentError(-1, f"HTTP {status}", path=path, http_status=status)
        if binary and content_type not in ("application/json", "text/plain"):
            match = re.search(r'filename="?([^";]+)"?', disposition)
            return Media(raw, content_type, match.group(1) if match else None)
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise transport_error(f"not JSON (HTTP {status}, {len(raw)} bytes)", path=path) from exc
        if not isinstance(payload, dict):
            raise transport_error("unexpected JSON shape", path=path)
        errcode = int(payload.get("errcode") or 0)
        if errcode != 0:
            raise error_for(errcode, str(payload.get("errmsg", "")), path=path, response=payload)
        return payload

    async def _call(
        self,
        method: str,
        path: str,
        *,
        rate_key: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        binary: bool = False,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any] | Media:
        """``form``: a multipart body, built afresh for each attempt (a FormData is consumed once)."""
        await self.rate_limiter.acquire(rate_key)
        token = await self.tokens.get()
        for attempt in (1, 2):
            query = {**(params or {}), "access_token": token}
            try:
                return await self._send(
                    method, path, params=query, body=body, client_timeout=client_timeout, binary=binary, form=form
                )
            except TokenInvalidError:
                if attempt == 2:
                    raise
                token = await self.tokens.invalidate(token)
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str, *, rate_key: str, **kwargs: Any) -> dict[str, Any]:
        result = await self._call(method, path, rate_key=rate_key, **kwargs)
        assert isinstance(result, dict)
        return result

    async def post(self, path: str, body: Mapping[str, Any], *, rate_key: str = "other") -> dict[str, Any]:
        """Any other JSON API: ``POST {api_base}{path}?access_token=…``."""
        return await self._json("POST", path, rate_key=rate_key, body=body)

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, rate_key: str = "other"
    ) -> dict[str, Any]:
        return await self._json("GET", path, rate_key=rate_key, params=params)

    # ------------------------------------------------------------ access token
    async def fetch_access_token(self, force_refresh: bool = False) -> FetchedToken:
        """Fetch a token from WeChat (no store): ``/cgi-bin/stable_token``, falling back to ``/cgi-bin/token``."""
        await self.rate_limiter.acquire("token")
        body = {
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret,
            "force_refresh": force_refresh,
        }
        try:
            result = await self._send("POST", "/cgi-bin/stable_token", body=body)
        except PermanentError as exc:
            if exc.errcode in _CREDENTIAL_ERRCODES:
                raise
            params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
            result = await self._send("GET", "/cgi-bin/token", params=params)
        except TokenInvalidError as exc:  # 40001 from the token endpoint = wrong AppSecret
            raise PermanentError(exc.errcode, exc.errmsg, path=exc.path, response=exc.response) from exc
        assert isinstance(result, dict)
        return FetchedToken(str(result["access_token"]), int(result.get("expires_in", 7200)))

    async def get_access_token(self) -> str:
        """The shared token (fetched at most once across processes, refreshed before expiry)."""
        return await self.tokens.get()

    # ------------------------------------------------------------ customer-service messages
    async def send_custom(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """``/cgi-bin/message/custom/send`` with a full body (``touser``, ``msgtype``, …)."""
        return await self._json("POST", "/cgi-bin/message/custom/send", rate_key="cs", body=message)

    async def send_text(self, openid: str, content: str) -> dict[str, Any]:
        return await self.send_custom({"touser": openid, "msgtype": "text", "text": {"content": content}})

    async def send_news(self, openid: str, articles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One link card (WeChat allows a single article): ``title``, ``description``, ``url``, ``picurl``."""
        if len(articles) != 1:
            raise ValueError("a customer-service news message has exactly one article")
        items = [{k: str(v) for k, v in a.items() if k in ("title", "description", "url", "picurl")} for a in articles]
        return await self.send_custom({"touser": openid, "msgtype": "news", "news": {"articles": items}})

    async def send_image(self, openid: str, media_id: str) -> dict[str, Any]:
        return await self.send_custom({"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})

    # ------------------------------------------------------------ template / subscribe
    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> int:
        """``/cgi-bin/message/template/send``; returns WeChat's ``msgid``."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": template_data(data)}
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        result = await self._json("POST", "/cgi-bin/message/template/send", rate_key="template", body=body)
        return int(result.get("msgid", 0))

    async def send_subscribe(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        page: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``/cgi-bin/message/subscribe/bizsend`` (one-time subscribe message)."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": template_data(data)}
        if page:
            body["page"] = page
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        return await self._json("POST", "/cgi-bin/message/subscribe/bizsend", rate_key="subscribe", body=body)

    # ------------------------------------------------------------ mass send
    @staticmethod
    def _mass_extras(clientmsgid: str | None, send_ignore_reprint: bool) -> dict[str, Any]:
        extras: dict[str, Any] = {"send_ignore_reprint": int(send_ignore_reprint)}
        if clientmsgid:
            if len(clientmsgid) > CLIENTMSGID_MAX:
                raise ValueError(f"clientmsgid longer than {CLIENTMSGID_MAX} characters")
            extras["clientmsgid"] = clientmsgid
        return extras

    @staticmethod
    def _mass_result(result: Mapping[str, Any]) -> MassSendResult:
        data_id = result.get("msg_data_id")
        return MassSendResult(int(result.get("msg_id", 0)), int(data_id) if data_id is not None else None)

    async def mass_send_by_tag(
        self,
        message: Mapping[str, Any],
        *,
        tag_id: int | None = None,
        is_to_all: bool = False,
        clientmsgid: str | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassSendResult:
        """``/cgi-bin/message/mass/sendall`` to a tag (``tag_id``) or to every follower (``is_to_all``)."""
        if (tag_id is None) != is_to_all:
            raise ValueError("give either tag_id or is_to_all=True")
        filter_: dict[str, Any] = {"is_to_all": is_to_all}
        if tag_id is not None:
            filter_["tag_id"] = tag_id
        body = {"filter": filter_, **_check_message(message), **self._mass_extras(clientmsgid, send_ignore_reprint)}
        return self._mass_result(await self._json("POST", "/cgi-bin/message/mass/sendall", rate_key="mass", body=body))

    async def mass_send_to_openids(
        self,
        openids: Sequence[str],
        message: Mapping[str, Any],
        *,
        clientmsgid: str | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassSendResult:
        """``/cgi-bin/message/mass/send`` to 2 … 10,000 openids."""
        if not MASS_OPENIDS_MIN <= len(openids) <= MASS_OPENIDS_MAX:
            raise ValueError(
                f"mass send by openid takes {MASS_OPENIDS_MIN} to {MASS_OPENIDS_MAX} openids, not {len(openids)}"
            )
        body = {
            "touser": list(openids),
            **_check_message(message),
            **self._mass_extras(clientmsgid, send_ignore_reprint),
        }
        return self._mass_result(await self._json("POST", "/cgi-bin/message/mass/send", rate_key="mass", body=body))

    async def mass_preview(self, openid: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """``/cgi-bin/message/mass/preview``: show a mass message to one follower first."""
        body = {"touser": openid, **_check_message(message)}
        return await self._json("POST", "/cgi-bin/message/mass/preview", rate_key="mass", body=body)

    # ------------------------------------------------------------ tags
    async def create_tag(self, name: str) -> Tag:
        result = await self._json("POST", "/cgi-bin/tags/create", rate_key="tags", body={"tag": {"name": name}})
        tag = result["tag"]
        return Tag(int(tag["id"]), str(tag["name"]))

    async def get_tags(self) -> list[Tag]:
        result = await self._json("GET", "/cgi-bin/tags/get", rate_key="tags")
        return [Tag(int(t["id"]), str(t["name"]), int(t.get("count", 0))) for t in result.get("tags", [])]

    async def _batch_tags(self, path: str, tag_id: int, openids: Iterable[str]) -> None:
        ids = list(openids)
        for start in range(0, len(ids), TAG_BATCH_MAX):
            body = {"openid_list": ids[start : start + TAG_BATCH_MAX], "tagid": tag_id}
            await self._json("POST", path, rate_key="tags", body=body)

    async def tag_users(self, tag_id: int, openids: Iterable[str]) -> None:
        """``/cgi-bin/tags/members/batchtagging`` in chunks of 50."""
        await self._batch_tags("/cgi-bin/tags/members/batchtagging", tag_id, openids)

    async def untag_users(self, tag_id: int, openids: Iterable[str]) -> None:
        await self._batch_tags("/cgi-bin/tags/members/batchuntagging", tag_id, openids)

    # ------------------------------------------------------------ menu
    async def create_menu(self, menu: Mapping[str, Any]) -> None:
        """``/cgi-bin/menu/create`` with ``{"button": [...]}``."""
        await self._json("POST", "/cgi-bin/menu/create", rate_key="menu", body=menu)

    async def get_current_menu(self) -> dict[str, Any]:
        """``/cgi-bin/get_current_selfmenu_info`` (what followers see, whichever way it was set)."""
        return await self._json("GET", "/cgi-bin/get_current_selfmenu_info", rate_key="menu")

    async def get_menu(self) -> dict[str, Any]:
        """``/cgi-bin/menu/get`` (the menu as created through the API)."""
        return await self._json("GET", "/cgi-bin/menu/get", rate_key="menu")

    # ------------------------------------------------------------ users, media
    async def get_user_info(self, openid: str, lang: str = "zh_CN") -> dict[str, Any]:
        return await self._json("GET", "/cgi-bin/user/info", rate_key="user", params={"openid": openid, "lang": lang})

    async def get_media(self, media_id: str) -> Media:
        """``/cgi-bin/media/get``: a temporary media file (image, voice …) as bytes and content type."""
        result = await self._call(
            "GET",
            "/cgi-bin/media/get",
            rate_key="media",
            params={"media_id": media_id},
            client_timeout=self.media_timeout,
            binary=True,
        )
        if isinstance(result, dict):  # JSON without errcode: e.g. a video's {"video_url": …}
            return Media(json.dumps(result, ensure_ascii=False).encode(), "application/json")
        return result

    # ------------------------------------------------------------ permanent material, drafts (for mpnews)
    async def add_image_material(self, content: bytes, filename: str, content_type: str) -> str:
        """``/cgi-bin/material/add_material?type=image`` (multipart field ``media``): a permanent image,
        e.g. an article's cover (``thumb_media_id``). Returns its ``media_id``."""
        if not content:
            raise ValueError("an image material needs content")

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("media", content, filename=filename, content_type=content_type)
            return data

        result = await self._json(
            "POST",
            "/cgi-bin/material/add_material",
            rate_key="material",
            params={"type": "image"},
            client_timeout=self.media_timeout,
            form=form,
        )
        return str(result["media_id"])

    async def add_draft(self, articles: Sequence[Mapping[str, Any]]) -> str:
        """``/cgi-bin/draft/add`` with ``{"articles": [...]}`` (``title``, ``content`` HTML,
        ``thumb_media_id``, …). Returns the draft's ``media_id``, usable in ``mpnews_message``.
        (The old ``/cgi-bin/material/add_news`` is retired: errcode 45103.)"""
        if not articles:
            raise ValueError("a draft needs at least one article")
        body = {"articles": [dict(a) for a in articles]}
        result = await self._json("POST", "/cgi-bin/draft/add", rate_key="material", body=body)
        return str(result["media_id"])
