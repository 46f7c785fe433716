"""Only the gateway (wechat_crm/wechat/) speaks WeChat's API: no other product module names a WeChat endpoint or
calls one of wechatpy's API groups; apps call the client's methods with domain values."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("accounts", "campaigns", "content", "conversations", "publishing", "wechat_crm")
GATEWAY = ROOT / "wechat_crm" / "wechat"

# WeChat's API paths (relative to https://api.weixin.qq.com/), as code, comments or strings would name them.
ENDPOINT = re.compile(
    r"cgi-bin/"
    r"|\bmessage/(?:mass|template|custom|subscribe)/"
    r"|\buser/(?:info|get\b|tag/)"
    r"|\btags/(?:get|create|update|delete|members|getidlist)"
    r"|\bqrcode/create|\bshowqrcode"
    r"|\bmenu/(?:create|get|delete|addconditional)"
    r"|\bmedia/(?:upload|get)|\bmaterial/(?:add|get|batchget|del)"
    r"|\bdraft/(?:add|get|update|delete|batchget)|\bfreepublish/"
    r"|\bdatacube/|\bstable_token"
    r"|\bsns/oauth2/|\bconnect/oauth2/"
)
# wechatpy's API groups called on a client (`client.tag.get()`, `get_client().message.send_text(...)`).
WECHATPY_GROUP = re.compile(
    r"client(?:\(\))?\)?\.(?:user|tag|message|menu|qrcode|media|material|draft|freepublish|datacube|customservice)\.\w+\("
)


def product_modules():
    for app in PRODUCT:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts or path.is_relative_to(GATEWAY):
                continue
            yield path


def test_no_app_module_names_a_wechat_endpoint_or_calls_wechatpy():
    offenders = []
    for path in product_modules():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ENDPOINT.search(line) or WECHATPY_GROUP.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "WeChat's API is the gateway's business (wechat_crm/wechat/client):\n" + "\n".join(
        offenders
    )


def test_the_guard_recognises_what_it_forbids():
    for line in (
        'endpoint = "cgi-bin/message/mass/sendall"',
        "# asks WeChat's user/info/batchget for them",
        "remote = list(client.tag.get())",
        "(client or get_client()).qrcode.create(payload)",
        "(client or _client()).tag.get()",
        '"""Validate and publish the menu (menu/create)."""',
        'url = "https://open.weixin.qq.com/connect/oauth2/authorize?appid="',
        "# trade the code at sns/oauth2/access_token",
    ):
        assert ENDPOINT.search(line) or WECHATPY_GROUP.search(line), line
    for line in ("request.user.is_superuser", "step.tag.name", "the client's users_info", "content/article/"):
        assert not (ENDPOINT.search(line) or WECHATPY_GROUP.search(line)), line
