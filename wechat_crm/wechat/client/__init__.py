"""The only code that speaks to WeChat's API.

`get_client()` returns the process's `WeChatClient`. Apps call its methods with domain values and never name a
WeChat endpoint or build WeChat JSON (the payloads come from `wechat_crm.wechat.messages`):

* messages (messaging.py): `send_template_many` / `send_custom_many` (a page of a push, one `SendResult` each),
  `send_template_message` / `send_custom_message` (one message built earlier), `send_template`,
  `send_custom_text`, `send_custom_news`, `send_custom_image`, `send_custom_mpnews`, `send_subscription_notice`;
  mass sends `mass_send_to_tag`, `mass_send_to_all`, `mass_send_to_openids`, `mass_preview` (a `MassSent`);
* followers and tags (audience.py): `followers_page`, `users_info`, `tags_list`, `tag_create`, `tag_members_page`,
  `tag_users`, `untag_users`;
* subscription notices (notices.py): `send_notice_many` (a page of a notice push), `notice_templates`,
  `notice_template_add`, `notice_template_delete`, `notice_categories`, `notice_library_titles`,
  `notice_library_keywords`;
* the account's set-up (account.py): `create_qrcode` (a `QRCodeTicket`), `menu_create`;
* web authorisation (oauth.py): `web_auth_identity(code=)` (a `WebAuthIdentity`: who came back from WeChat's
  authorise page), and the module function `web_auth_url(redirect_uri=, state=)` (no network);
* publishing (publishing.py): `material_add`, `body_image_upload`, `material_count`, `material_page`,
  `material_delete`, `media_get` (a subscriber's image or voice), `draft_add`, `draft_update`, `draft_get`,
  `draft_delete`, `publish_submit`, `publish_get` (a `PublishState`), `mass_news_send`, `mass_news_preview` and
  `datacube_report(report, begin=, end=)`.

Underneath (core.py) it is wechatpy's client (whose API groups such as `client.datacube` stay available) with
wechatpy's transport, token handling and retries replaced by ours:

* every request goes to settings.WECHAT_API_BASE_URL (hosts wechatpy hard-codes are rewritten), over one
  kept-alive urllib3 pool, with connect and read timeouts;
* one access token shared by all processes (tokens.py); on 40001/40014/42001 a call refreshes once and
  retries once, never more;
* each request first takes a slot from its API group's shared rate limit (ratelimit.py);
* network errors and 5xx are retried with exponential backoff and jitter, but only when repeating the request
  is safe (reads, token fetch, a mass send with a clientmsgid, or a send that surely never reached WeChat);
  a send that may have reached WeChat raises WeChatOutcomeUnknown and is never resent;
* failures raise the typed errors of errors.py; `errors.classify(exc)` says what to do about them.
"""

from __future__ import annotations

import os
import threading

from django.conf import settings

from ..http import api_base_url
from .account import AccountMixin, QRCodeTicket
from .audience import AudienceMixin, OpenidPage
from .core import SAFE_POST_ENDPOINTS, BaseClient, SendResult
from .messaging import MassSent, MessagingMixin
from .notices import LibraryKeyword, LibraryPage, LibraryTitle, NoticesMixin, NoticeTemplate
from .oauth import WebAuthIdentity, WebAuthMixin, web_auth_url
from .publishing import PublishingMixin, PublishState

__all__ = [
    "SAFE_POST_ENDPOINTS",
    "LibraryKeyword",
    "LibraryPage",
    "LibraryTitle",
    "MassSent",
    "NoticeTemplate",
    "OpenidPage",
    "PublishState",
    "QRCodeTicket",
    "SendResult",
    "WeChatClient",
    "WebAuthIdentity",
    "get_client",
    "web_auth_url",
]


class WeChatClient(
    MessagingMixin, NoticesMixin, AudienceMixin, AccountMixin, PublishingMixin, WebAuthMixin, BaseClient
):
    """The client apps use: one method per action, grouped by area in the mixins."""


_clients: dict[tuple, WeChatClient] = {}
_clients_lock = threading.Lock()


def get_client() -> WeChatClient:
    """The process's WeChat client, configured from settings (a new one after fork or a settings change)."""
    key = (
        os.getpid(),
        settings.WECHAT_APP_ID,
        settings.WECHAT_APP_SECRET,
        api_base_url(),
        settings.WECHAT_HTTP_CONNECT_TIMEOUT,
        settings.WECHAT_HTTP_TIMEOUT,
        settings.WECHAT_HTTP_POOL_SIZE,
    )
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                _clients.clear()
                client = _clients[key] = WeChatClient()
    return client
