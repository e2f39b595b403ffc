"""Where everything is: the addresses ``lawbot serve`` prints, and the development start page (``/``) lists."""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings

CREATE_USER = ".venv/bin/lawbot admin create-user NAME --role admin"


@dataclass(frozen=True)
class Link:
    label: str  # as printed by `lawbot serve`
    title: str  # on the start page
    path: str
    note: str = ""
    page: bool = True  # a page a browser opens (the webhook is not)


def address_env(settings: Settings) -> str:
    """The LAWBOT_* assignments that make another command see this server's address (empty: the defaults)."""
    parts = []
    if settings.public_url:
        parts.append(f"LAWBOT_PUBLIC_URL={settings.public_url}")
    if settings.host != Settings.host:
        parts.append(f"LAWBOT_HOST={settings.host}")
    if settings.port != Settings.port:
        parts.append(f"LAWBOT_PORT={settings.port}")
    return " ".join(parts)


def sign_in_note(settings: Settings) -> str:
    """Where ``lawbot admin create-user``'s sign-in address comes from: the settings it runs with."""
    if settings.public_url:
        return "(address from LAWBOT_PUBLIC_URL)"
    return (
        f"(address from LAWBOT_HOST={settings.host} and LAWBOT_PORT={settings.port} of this environment or .env; "
        "a server started with other values is at its own address)"
    )


def service_links(settings: Settings, *, dev: bool) -> list[Link]:
    """The server's addresses; the simulator outside production, the fake WeChat API with ``--dev``."""
    links = [Link("webhook (server URL for WeChat)", "给微信的服务器地址（webhook）", "/wechat", page=False)]
    if not settings.production:
        links.append(Link("simulator", "模拟器：当村民试试机器人", "/simulator"))
    env = address_env(settings)
    create_user = f"{env} {CREATE_USER}" if env else CREATE_USER
    links.append(Link("back-office", "后台：工单、预约、普法活动", "/admin", note=f"(first account: {create_user})"))
    links.append(Link("health", "健康检查", "/healthz"))
    if dev:
        links.append(Link("fake WeChat API (what 'WeChat' received)", "“微信”收到的接口调用", "/_fake/calls"))
    return links


def printed_lines(settings: Settings, *, dev: bool) -> list[str]:
    """What ``lawbot serve`` prints under its first line."""
    base = settings.base_url
    lines = [f"  start page:                      {base}/"] if not settings.production else []
    for link in service_links(settings, dev=dev):
        label = f"  {link.label}:"
        lines.append(f"{label.ljust(34)} {base}{link.path}" + (f"  {link.note}" if link.note else ""))
    return lines
