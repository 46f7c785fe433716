"""Calls to the fake WeChat server's API shared by the fake server's tests (test_fake_server*.py)."""

from __future__ import annotations

import base64
import os

import urllib3

TEMPLATE = "/cgi-bin/message/template/send"
AES_KEY = base64.b64encode(os.urandom(32)).decode().rstrip("=")


def _token(fake, **extra):
    cfg = fake.config()
    return fake.api("cgi-bin/token", grant_type="client_credential", appid=cfg["appid"], secret=cfg["secret"], **extra)


def _user_get(fake, token, next_openid=None):
    return fake.api("cgi-bin/user/get", access_token=token, next_openid=next_openid)


def _draft(fake, token) -> str:
    """A draft in the fake's draft box (mpnews mass sends need one), with a thumb uploaded as permanent material."""
    import io

    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, "JPEG")
    upload = urllib3.request(
        "POST",
        f"{fake.url}cgi-bin/material/add_material?type=thumb&access_token={token}",
        fields={"media": ("thumb.jpg", image.getvalue(), "image/jpeg")},
    ).json()
    article = {"title": "T", "content": "<p>x</p>", "thumb_media_id": upload["media_id"]}
    return fake.api("cgi-bin/draft/add", {"articles": [article]}, access_token=token)["media_id"]


def _send_template(fake, token, openid, **body):
    return fake.api(TEMPLATE, {"touser": openid, "template_id": "TPL_ORDER", "data": {}, **body}, access_token=token)
