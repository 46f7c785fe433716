"""Tracked links opened in WeChat's browser: through web authorisation (accounts.webauth), each click is credited to
whoever opened the link, which a forward makes someone else than the subscriber it was sent to.

    /r/<token> (MicroMessenger)  -> 302 WeChat's authorise page (state: the token's ids, signed, single use)
    WeChat                       -> 302 /r/auth/?code=...&state=...
    /r/auth/                     -> the click stored for the person; 302 to the target (+ wxref for the shop)

The person is a follower: their "link_click" (the funnel, the score, the journeys follow as for any click), with
`shared_by` when the link was sent to someone else. The person does not follow (a forward): a "link_forward" on
their subscriber row (created not following), which a later follow turns into the follow's source push and content
(campaigns.events.forward_attribute). A snapshot page's virtual user (no real person) is credited nothing.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.urls import reverse

from accounts import webauth
from accounts.models import Interaction

from .. import links
from . import click_store, link_target, link_url

# Destinations that never get the shop's reference: WeChat's own pages.
NO_REF_HOST_SUFFIXES = (".weixin.qq.com", ".qq.com")


@cache
def _return_path() -> str:
    return reverse("content:link-auth-return")


def in_wechat(user_agent: str) -> bool:
    """WeChat's own browser (not WeChat Work's, which cannot authorise for an Official Account)."""
    return "MicroMessenger" in user_agent and "wxwork" not in user_agent


def link_authorise_url(*, token: str) -> str:
    """WeChat's authorise page for a click of `token` (LinkTokenInvalid / LinkTokenExpired as for any click). No
    database query once the process knows the link."""
    from wechat_crm.wechat.client import web_auth_url

    payload = link_target(token)
    link_url(payload)  # a link row that is gone or not http(s) is refused now, not after the round trip
    state = webauth.state_make(
        purpose=webauth.PURPOSE_LINK,
        values=(payload.subscriber_id, payload.push_id or 0, payload.content_id or 0, payload.link_id),
    )
    redirect_uri = settings.PUBLIC_BASE_URL.rstrip("/") + _return_path()
    return web_auth_url(redirect_uri=redirect_uri, state=state)


def link_auth_return(*, state: str, code: str, at: datetime | None = None) -> str:
    """Back from WeChat's authorise page: check the state (WebAuthRefused: bad, expired, replayed), learn who
    opened the link from the code (WebAuthRefused when WeChat refuses it), store their click and return where to
    send them. Without a code (WeChat sent the browser back without one) the link is followed uncredited."""
    subscriber_id, push_id, content_id, link_id = _link_values(webauth.state_read(state, purpose=webauth.PURPOSE_LINK))
    payload = links.LinkPayload(
        subscriber_id=subscriber_id, push_id=push_id or None, content_id=content_id or None, link_id=link_id
    )
    url = link_url(payload)
    if not code:
        return url
    person = webauth.person_from_code(code=code)
    if person.subscriber_id is None:  # a snapshot page's virtual user
        return url
    shared = person.subscriber_id != payload.subscriber_id
    extra = {"web_auth": True, **({"shared_by": payload.subscriber_id} if shared else {})}
    # A follower's click, or the link's own subscriber's; otherwise a forward to someone who does not follow.
    kind = Interaction.Kind.LINK_CLICK if person.following or not shared else Interaction.Kind.LINK_FORWARD
    click_store(payload=payload, subscriber_id=person.subscriber_id, url=url, kind=kind, extra=extra, at=at)
    return url_with_ref(url, subscriber_id=person.subscriber_id)


def _link_values(values: list[int]) -> tuple[int, int, int, int]:
    if len(values) != 4:
        raise webauth.state_refused()
    return values[0], values[1], values[2], values[3]


def url_with_ref(url: str, *, subscriber_id: int) -> str:
    """The destination with the shop's reference to the person (`wxref`), except on WeChat's own pages."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "qq.com" or host.endswith(NO_REF_HOST_SUFFIXES):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != webauth.REF_PARAM]
    query.append((webauth.REF_PARAM, webauth.ref_make(subscriber_id=subscriber_id)))
    return urlunsplit(parts._replace(query=urlencode(query)))
