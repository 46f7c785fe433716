"""The custom menu: validated as WeChat validates it, published through the client's menu_create."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .errors import MenuInvalid, MenuPublishFailed
from .models import Menu

__all__ = ["MenuInvalid", "menu_publish", "menu_validate"]

MAX_BUTTONS = 3
MAX_SUB_BUTTONS = 5
TOP_NAME_BYTES = 16
SUB_NAME_BYTES = 60
KEY_BYTES = 128
URL_MAX = 1024
TYPES = ("click", "view", "miniprogram")


def _button(button: Any, path: str, *, sub: bool) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise MenuInvalid(_("%(path)s: each button is a JSON object.") % {"path": path})
    name = button.get("name")
    limit = SUB_NAME_BYTES if sub else TOP_NAME_BYTES
    if not isinstance(name, str) or not name.strip():
        raise MenuInvalid(_("%(path)s: give the button's name.") % {"path": path})
    if len(name.encode("utf-8")) > limit:
        raise MenuInvalid(
            _("%(path)s: the name %(name)r is longer than %(limit)d bytes (a Chinese character counts 3).")
            % {"path": path, "name": name, "limit": limit}
        )
    if not sub and "sub_button" in button and "type" not in button:
        subs = button["sub_button"]
        if not isinstance(subs, list) or not 1 <= len(subs) <= MAX_SUB_BUTTONS:
            raise MenuInvalid(_("%(path)s: 1 to 5 sub-buttons.") % {"path": path})
        return {"name": name, "sub_button": [_button(b, f"{path}.{i + 1}", sub=True) for i, b in enumerate(subs)]}
    kind = button.get("type")
    if kind not in TYPES:
        raise MenuInvalid(_("%(path)s: type is one of click, view, miniprogram.") % {"path": path})
    out: dict[str, Any] = {"type": kind, "name": name}
    if kind == "click":
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode("utf-8")) > KEY_BYTES:
            raise MenuInvalid(_("%(path)s: a click button needs a key of 1 to 128 bytes.") % {"path": path})
        out["key"] = key
    else:
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > URL_MAX:
            raise MenuInvalid(_("%(path)s: an http(s) URL of at most 1024 characters.") % {"path": path})
        out["url"] = url
        if kind == "miniprogram":
            appid, pagepath = button.get("appid"), button.get("pagepath")
            if not isinstance(appid, str) or not appid or not isinstance(pagepath, str) or not pagepath:
                raise MenuInvalid(_("%(path)s: a mini program button needs appid and pagepath.") % {"path": path})
            out.update(appid=appid, pagepath=pagepath)
    return out


def menu_validate(buttons: Any) -> list[dict[str, Any]]:
    """The buttons in WeChat's form, or MenuInvalid naming the first problem ("button 2.3: ...")."""
    if isinstance(buttons, dict) and "button" in buttons:
        buttons = buttons["button"]
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        raise MenuInvalid(_("A menu has 1 to 3 buttons."))
    return [_button(b, _("button %(n)d") % {"n": i + 1}, sub=False) for i, b in enumerate(buttons)]


def menu_publish(*, menu: Menu, client=None) -> Menu:
    """Validate and publish the menu (the client's menu_create). MenuInvalid or MenuPublishFailed (WeChat's answer)."""
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatError

    buttons = menu_validate(menu.buttons)
    try:
        (client or get_client()).menu_create(buttons)
    except WeChatError as exc:
        menu.publish_error = f"{exc.errcode}: {exc.errmsg}"
        menu.save(update_fields=["publish_error", "updated_at"])
        raise MenuPublishFailed(
            _("WeChat refused the menu: %(code)s %(message)s") % {"code": exc.errcode, "message": exc.errmsg}
        ) from exc
    menu.buttons, menu.published_at, menu.publish_error = buttons, timezone.now(), ""
    menu.save(update_fields=["buttons", "published_at", "publish_error", "updated_at"])
    return menu
