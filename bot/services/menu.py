"""The account's custom menu: ``knowledge/menu.yaml`` → checked → ``/cgi-bin/menu/create``.

:func:`load_menu` reads and validates the file against WeChat's limits (≤ 3 top-level buttons,
≤ 5 sub-buttons each, names ≤ 16 / ≤ 60 UTF-8 bytes, keys ≤ 128 bytes, view URLs http(s)) and fills
``{base_url}``; problems come back together as a :class:`MenuError` whose lines read
``menu.yaml:12: …中文 / English``. :func:`push_menu` is the ``lawbot menu push`` logic.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.settings import Settings
from bot.wechat.api import WeChatClient

TOP_MAX = 3
SUB_MAX = 5
TOP_NAME_BYTES = 16
SUB_NAME_BYTES = 60
KEY_BYTES = 128
URL_BYTES = 1024

#: button types that send a key to the bot (the bot answers by key)
KEY_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(KEY_TYPES, frozenset({"type", "name", "key"})),
    "view": frozenset({"type", "name", "url"}),
    "miniprogram": frozenset({"type", "name", "url", "appid", "pagepath"}),
}
PLACEHOLDERS = ("base_url",)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

Path_ = tuple[str | int, ...]


class MenuError(ValueError):
    """The menu file breaks a rule; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def menu_path(settings: Settings) -> Path:
    return Path(settings.knowledge_dir) / "menu.yaml"


def _lines(node: yaml.Node, path: Path_ = (), out: dict[Path_, int] | None = None) -> dict[Path_, int]:
    """YAML path → 1-based line, for error messages."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                out[(*path, key.value)] = key.start_mark.line + 1
                _lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)
    return out


def _label(path: Path_) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p + 1}]" if isinstance(p, int) else f".{p}")
    return "".join(parts).lstrip(".") or "(top)"


class _Checker:
    def __init__(self, source: str, lines: Mapping[Path_, int], base_url: str, production: bool) -> None:
        self.source = source
        self.lines = lines
        self.base_url = base_url
        self.production = production
        self.problems: list[str] = []
        self.keys: dict[str, Path_] = {}

    def add(self, path: Path_, zh: str, en: str) -> None:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        self.problems.append(f"{self.source}:{line}: {_label(path)}: {zh} / {en}")

    def name(self, button: Mapping[str, Any], path: Path_, limit: int, top: bool) -> None:
        name = button.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add((*path, "name"), "缺少菜单名称", "name is missing")
            return
        size = len(name.encode())
        if size > limit:
            what = "一级菜单" if top else "子菜单"
            hint = "（约 5 个汉字）" if top else "（约 20 个汉字）"
            self.add(
                (*path, "name"),
                f"{what}名称「{name}」有 {size} 字节，最多 {limit} 字节{hint}",
                f"{'top-level' if top else 'sub-button'} name is {size} bytes; WeChat allows {limit}",
            )

    def fill(self, value: str, path: Path_) -> str:
        for name in _PLACEHOLDER.findall(value):
            if name not in PLACEHOLDERS:
                self.add(
                    path,
                    f"未知占位符 {{{name}}}（只能用 {{base_url}}）",
                    f"unknown placeholder {{{name}}}; only {{base_url}}",
                )
        return value.replace("{base_url}", self.base_url)

    def leaf(self, button: Mapping[str, Any], path: Path_, top: bool) -> dict[str, Any]:
        self.name(button, path, TOP_NAME_BYTES if top else SUB_NAME_BYTES, top)
        kind = button.get("type")
        if kind not in ALLOWED_FIELDS:
            self.add(
                (*path, "type"),
                f"菜单类型「{kind}」不支持（可用 click、view 等）",
                f"unsupported button type {kind!r} (click, view, …)",
            )
            return dict(button)
        assert isinstance(kind, str)
        for extra in sorted(set(button) - ALLOWED_FIELDS[kind], key=str):
            self.add(
                (*path, str(extra)), f"{kind} 菜单不认识字段「{extra}」", f"unknown field {extra!r} for a {kind} button"
            )
        out: dict[str, Any] = {"type": kind, "name": button.get("name")}
        if kind in KEY_TYPES:
            key = button.get("key")
            if not isinstance(key, str) or not key:
                self.add((*path, "key"), "缺少 key", "key is missing")
            elif len(key.encode()) > KEY_BYTES:
                self.add((*path, "key"), f"key 超过 {KEY_BYTES} 字节", f"key longer than {KEY_BYTES} bytes")
            elif key in self.keys:
                self.add((*path, "key"), f"key「{key}」重复（另见 {_label(self.keys[key])}）", f"duplicate key {key!r}")
            else:
                self.keys[key] = path
            out["key"] = key
        if kind in ("view", "miniprogram"):
            raw = button.get("url")
            if not isinstance(raw, str) or not raw:
                self.add((*path, "url"), "缺少网址 url", "url is missing")
            else:
                out["url"] = url = self.fill(raw, (*path, "url"))
                self.url(url, (*path, "url"))
        if kind == "miniprogram":
            for field in ("appid", "pagepath"):
                if not button.get(field):
                    self.add((*path, field), f"小程序菜单缺少 {field}", f"a miniprogram button needs {field}")
                out[field] = button.get(field)
        return out

    def url(self, url: str, path: Path_) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add(path, f"网址「{url}」不是 http(s) 网址", f"{url!r} is not an http(s) URL")
            return
        if len(url.encode()) > URL_BYTES:
            self.add(path, f"网址超过 {URL_BYTES} 字节", f"URL longer than {URL_BYTES} bytes")
        if self.production and _local_host(parts.hostname):
            self.add(
                path,
                f"网址「{url}」是本机或内网地址，村民打不开；请设置 LAWBOT_PUBLIC_URL",
                "the URL is a loopback or private address villagers cannot open; set LAWBOT_PUBLIC_URL",
            )

    def menu(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping) or not isinstance(data.get("button"), list):
            self.add((), "文件里要有 button: 列表", "the file needs a `button:` list")
            return {}
        for extra in sorted(set(data) - {"button"}, key=str):
            self.add((str(extra),), f"不认识的字段「{extra}」", f"unknown field {extra!r}")
        buttons = data["button"]
        if not 1 <= len(buttons) <= TOP_MAX:
            self.add(
                ("button",),
                f"一级菜单要 1 到 {TOP_MAX} 个，现在 {len(buttons)} 个",
                f"1 to {TOP_MAX} top-level buttons, not {len(buttons)}",
            )
        out = []
        for i, button in enumerate(buttons):
            path: Path_ = ("button", i)
            if not isinstance(button, Mapping):
                self.add(path, "菜单项要写成 name: … 的形式", "a button must be a mapping")
                continue
            if "sub_button" in button:
                subs = button["sub_button"]
                self.name(button, path, TOP_NAME_BYTES, top=True)
                for extra in sorted(set(button) - {"name", "sub_button"}, key=str):
                    self.add(
                        (*path, str(extra)),
                        f"有子菜单的一级菜单只能有 name，不能有「{extra}」",
                        f"a button with sub-buttons has only a name, not {extra!r}",
                    )
                if not isinstance(subs, list) or not 1 <= len(subs) <= SUB_MAX:
                    count = len(subs) if isinstance(subs, list) else 0
                    self.add(
                        (*path, "sub_button"),
                        f"子菜单要 1 到 {SUB_MAX} 个，现在 {count} 个",
                        f"1 to {SUB_MAX} sub-buttons, not {count}",
                    )
                    subs = subs if isinstance(subs, list) else []
                items = []
                for j, sub in enumerate(subs):
                    sub_path: Path_ = (*path, "sub_button", j)
                    if not isinstance(sub, Mapping):
                        self.add(sub_path, "子菜单要写成 {type: …, name: …}", "a sub-button must be a mapping")
                        continue
                    items.append(self.leaf(sub, sub_path, top=False))
                out.append({"name": button.get("name"), "sub_button": items})
            else:
                out.append(self.leaf(button, path, top=True))
        return {"button": out}


def _local_host(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def build_menu(text: str, *, base_url: str, production: bool = False, source: str = "menu.yaml") -> dict[str, Any]:
    """Validate menu YAML ``text`` and return WeChat's ``{"button": [...]}``; raises :class:`MenuError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise MenuError([f"{source}:{line}: YAML 格式错误 / invalid YAML: {exc}"]) from exc
    checker = _Checker(source, _lines(node) if node is not None else {}, base_url.rstrip("/"), production)
    menu = checker.menu(data)
    if checker.problems:
        raise MenuError(checker.problems)
    return menu


def load_menu(path: Path, *, base_url: str, production: bool = False) -> dict[str, Any]:
    """Read and validate a menu file (``knowledge/menu.yaml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MenuError([f"{path}: 读不到菜单文件 / cannot read the menu file: {exc.strerror}"]) from exc
    return build_menu(text, base_url=base_url, production=production, source=path.name)


def click_keys(menu: Mapping[str, Any]) -> list[str]:
    """Every key a follower can send by tapping the menu (the bot must answer each)."""
    keys = []
    for button in menu.get("button", []):
        for item in button.get("sub_button", [button]):
            if item.get("type") in KEY_TYPES:
                keys.append(str(item["key"]))
    return keys


async def push_menu(
    settings: Settings, client: WeChatClient | None = None, *, path: Path | None = None
) -> dict[str, Any]:
    """``lawbot menu push``: validate the menu file and create it through the WeChat API.

    Without ``client``, one is built from ``settings`` with the shared token store. Returns the menu
    that was sent."""
    menu = load_menu(path or menu_path(settings), base_url=settings.base_url, production=settings.production)
    if client is not None:
        await client.create_menu(menu)
        return menu
    from bot.storage.db import create_engine, create_session_factory
    from bot.wechat.token import token_store_for

    engine = create_engine(settings.database_url)
    store = token_store_for(settings, create_session_factory(engine))
    try:
        async with WeChatClient.from_settings(settings, token_store=store) as own:
            await own.create_menu(menu)
    finally:
        await store.close()
        await engine.dispose()
    return menu
