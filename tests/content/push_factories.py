"""Factories and helpers of the push tests (segments, pushes, deliveries)."""

from __future__ import annotations

import factory
from django.utils import timezone

from content.models import Delivery, Push, Segment, SendPolicy
from content.services import pushes
from content.services.deliveries import deliveries_send_page

from .factories import MessageTemplateFactory


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    rules = factory.LazyFunction(lambda: {"op": "and", "rules": []})


class PushFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Push

    name = factory.Sequence(lambda n: f"Push {n}")
    channel = Push.Channel.TEMPLATE
    template = factory.SubFactory(MessageTemplateFactory)
    segment = factory.SubFactory(SegmentFactory)
    send_at = factory.LazyFunction(timezone.now)


def policy(**fields) -> SendPolicy:
    """The account's send policy with quiet hours off (tests run at any hour) and `fields` changed."""
    p = SendPolicy.current()
    p.quiet_hours_enabled = False
    for name, value in fields.items():
        setattr(p, name, value)
    p.save()
    return p


def send_now(push: Push, *, threads: int = 2) -> dict[str, int]:
    """Run a push in this process as the tasks would: claim, resolve, then each page until nothing is queued."""
    if push.status == Push.Status.DRAFT:
        pushes.push_schedule(push=push, send_at=timezone.now())
    assert pushes.pushes_claim_due(push_id=push.pk) == [push.pk]
    push.refresh_from_db()
    pushes.push_resolve(push=push)
    for lo, hi in pushes.push_pages(push_id=push.pk, size=pushes.page_size(push.channel)):
        deliveries_send_page(push_id=push.pk, lo=lo, hi=hi, threads=threads)
    push.refresh_from_db()
    return statuses(push)


def statuses(push: Push) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in Delivery.objects.filter(push=push).values_list("status", flat=True):
        out[status] = out.get(status, 0) + 1
    return out


def reasons(push: Push) -> dict[str, set[str]]:
    """reason -> nicknames of the subscribers skipped for it."""
    out: dict[str, set[str]] = {}
    for reason, nick in Delivery.objects.filter(push=push, status=Delivery.Status.SKIPPED).values_list(
        "reason", "subscriber__nickname"
    ):
        out.setdefault(reason, set()).add(nick)
    return out
