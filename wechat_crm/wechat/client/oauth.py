"""Web authorisation (网页授权): the authorise URL a WeChat browser is sent to, and the exchange of the code it brings
back for the person's openid. Only `snsapi_base` (silent: the openid, no profile) is used by the product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings

from ..errors import WeChatInvalidCode

AUTHORIZE_PATH = "connect/oauth2/authorize"
CODE_EXCHANGE_PATH = "sns/oauth2/access_token"
SCOPE_BASE = "snsapi_base"


def authorize_base_url() -> str:
    """settings.WECHAT_OAUTH_BASE_URL (WeChat's https://open.weixin.qq.com/), read at call time, ending in "/"."""
    base = settings.WECHAT_OAUTH_BASE_URL
    return base if base.endswith("/") else base + "/"


def web_auth_url(*, redirect_uri: str, state: str, scope: str = SCOPE_BASE) -> str:
    """WeChat's authorise URL: WeChat's browser opens it and comes back to `redirect_uri?code=...&state=...`.

    The parameters in WeChat's order (it refuses others), the redirect URI fully quoted, `#wechat_redirect` last.
    `state` must be at most 128 letters and digits. No network: safe on a hot path."""
    return (
        f"{authorize_base_url()}{AUTHORIZE_PATH}?appid={quote(settings.WECHAT_APP_ID, safe='')}"
        f"&redirect_uri={quote(redirect_uri, safe='')}&response_type=code&scope={scope}"
        f"&state={quote(state, safe='')}#wechat_redirect"
    )


@dataclass(frozen=True, slots=True)
class WebAuthIdentity:
    """Who came back from the authorise page: the openid (the account's, follower or not), the unionid when WeChat
    gave one, and whether WeChat says it is a snapshot page's virtual user (快照页模式, no real person)."""

    openid: str
    unionid: str = ""
    snapshot: bool = False


class WebAuthMixin:
    def web_auth_identity(self, *, code: str) -> WebAuthIdentity:
        """The person behind a code from the authorise page. Raises WeChatInvalidCode for a code that is unknown,
        expired (40029) or used already (40163), other WeChatErrors as any call. A code is single use, so the
        request is never repeated once it may have reached WeChat."""
        params = {
            "appid": settings.WECHAT_APP_ID,
            "secret": settings.WECHAT_APP_SECRET,
            "code": code,
            "grant_type": "authorization_code",
        }
        result: Any = self.call(  # type: ignore[attr-defined]
            "GET",
            self.base_url + CODE_EXCHANGE_PATH,  # type: ignore[attr-defined]
            group="default",
            params=params,
            with_token=False,
            idempotent=False,
        )
        openid = str(result.get("openid") or "") if isinstance(result, dict) else ""
        if not openid:
            raise WeChatInvalidCode(None, "no openid in the answer")
        return WebAuthIdentity(
            openid=openid,
            unionid=str(result.get("unionid") or ""),
            snapshot=bool(result.get("is_snapshotuser")),
        )
