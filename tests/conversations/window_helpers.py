"""What the window and journey tests share: a subscriber who followed long ago, an interaction WeChat knows of,
sending what is queued."""

from __future__ import annotations

import datetime as dt

from accounts.models import Interaction, Subscriber
from conversations import services
from conversations.models import OutboundMessage
from tests.helpers import person_did

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
NOW = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)


def _interaction(subscriber: Subscriber, kind: str, at: dt.datetime, *, fake=None, **kw) -> Interaction:
    """The interaction row; with `fake`, WeChat (the fake) knows of it too."""
    return person_did(subscriber, kind, at, fake=fake, **kw)


def _sub(openid: str = "oWin_000000000000000000001", **kw) -> Subscriber:
    return Subscriber.objects.create(openid=openid, is_following=True, subscribed_at=NOW - dt.timedelta(days=60), **kw)


def _send_all() -> None:
    for pk in OutboundMessage.objects.filter(status="queued").values_list("pk", flat=True):
        services.outbound_send(message_id=pk)
