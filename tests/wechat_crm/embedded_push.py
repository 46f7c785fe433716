"""Set-up of the embedded acceptance test's push, run inside the embedded app (`manage.py shell`): a template push of
a demo article to a one-person segment, scheduled now, quiet hours off (the test runs at any hour)."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import Subscriber, Tag
from content.models import Article, MessageTemplate, Push, Segment, SendPolicy
from content.services import pushes


def push_scheduled(*, openid: str) -> int:
    policy = SendPolicy.current()
    policy.quiet_hours_enabled = False
    policy.save()
    tag, _created = Tag.objects.get_or_create(name="embedded-push")
    Subscriber.objects.get(openid=openid).tags.add(tag)
    segment = Segment.objects.create(
        name="embedded push", rules={"op": "and", "rules": [{"type": "tags", "match": "any", "tags": [tag.pk]}]}
    )
    article = Article.objects.filter(status=Article.Status.PUBLISHED).first()
    template = MessageTemplate.objects.create(
        title="Embedded", wechat_template_id="TPL_embedded", article=article,
        fields=[{"key": "first", "value": "{{ article.title }}", "color": ""}],
    )  # fmt: skip
    push = pushes.push_create(
        name="Embedded push", channel=Push.Channel.TEMPLATE, article=article, template=template, segment=segment
    )
    pushes.push_schedule(push=push, send_at=timezone.now())
    return push.pk
