"""A push's test: the message, rendered as a recipient would get it, sent to the operator's own openid."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from accounts.models import Subscriber

from ... import templating
from ...errors import PushInvalid
from ...models import OperatorProfile, Push
from .rendering import Renderer


def push_send_test(*, push: Push, user: Any, wxname: str = "") -> int | None:
    """Send the rendered message to the operator's own openid (OperatorProfile). Returns WeChat's msgid.

    A news push goes through WeChat's own preview of its draft (no 48-hour window), to the openid or to the
    WeChat ID `wxname`. Raises PushInvalid without a linked openid, or with WeChat's error."""
    from wechat_crm.wechat.client import get_client

    if Push.objects.filter(pk=push.pk, channel=Push.Channel.NEWS).exists():
        from publishing.services.news import news_preview

        return news_preview(push=Push.objects.select_related("article").get(pk=push.pk), user=user, wxname=wxname)

    profile = OperatorProfile.objects.filter(user_id=getattr(user, "pk", None)).first()
    if profile is None or not profile.openid:
        raise PushInvalid(_("Link your own openid first (Content > Operator profiles)."))
    push = Push.objects.select_related("article", "template", "template__article", "notice_template").get(pk=push.pk)
    sub = Subscriber.objects.filter(openid=profile.openid).values("id", *templating.SUBSCRIBER_FIELDS).first()
    if sub is None:
        sub = dict(templating.SAMPLE_CONTEXT["subscriber"], id=0)
    sub["openid"] = profile.openid
    renderer = Renderer(push)
    client = get_client()
    if push.channel == Push.Channel.TEMPLATE:
        if push.template_id is None:
            raise PushInvalid(_("A template message push needs a message template."))
        result = client.send_template_message(renderer.template(sub))
    elif push.channel == Push.Channel.CUSTOM:
        result = client.send_custom_message(renderer.custom(sub))
    elif push.channel == Push.Channel.NOTICE:  # WeChat sends it only if you accepted the template yourself
        result = client.send_notice_many([renderer.notice(sub)], threads=1)[0]
    else:  # a mass message previews as a customer-service text (WeChat's mass preview needs a media id)
        result = client.send_custom_text(openid=profile.openid, text=renderer.mass_text())
    if not result.ok:
        raise PushInvalid(
            _("WeChat refused the test message: %(error)s") % {"error": result.error.message},
            extra={"errcode": result.error.errcode},
        )
    return result.msgid
