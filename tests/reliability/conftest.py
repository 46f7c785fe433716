"""Shared set-up of the reliability tests: a followed audience, a template push, and the checks of exactly-once."""

from __future__ import annotations

from collections import Counter

from django.db import connection
from django.utils import timezone

from accounts.models import Subscriber
from content.models import Delivery, Push, Segment
from content.services import pushes
from tests.content.factories import ArticleFactory, MessageTemplateFactory
from tests.content.push_factories import policy
from tests.helpers import wait_for, wechat_shared_state_clear

TEMPLATE = "/cgi-bin/message/template/send"
D = Delivery.Status
FINAL = {D.SENT, D.DELIVERED, D.FAILED, D.SKIPPED, D.ERROR, D.UNKNOWN}


def make_audience(fake, n: int, prefix: str = "oRel") -> list[Subscriber]:
    now = timezone.now()
    subs = Subscriber.objects.bulk_create(
        Subscriber(openid=f"{prefix}{i:06d}", is_following=True, subscribed_at=now, last_interaction_at=now)
        for i in range(n)
    )
    for start in range(0, n, 5000):
        fake.add_users([{"openid": s.openid, "subscribe": 1} for s in subs[start : start + 5000]])
    return subs


def make_push(settings, **policy_fields) -> Push:
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    policy(**{"max_retry_delay_seconds": 2, "frequency_cap": 1000, **policy_fields})
    article = ArticleFactory()
    segment = Segment.objects.create(name="everyone", rules={"op": "and", "rules": []})
    return Push.objects.create(
        name="Reliability", channel=Push.Channel.TEMPLATE, article=article,
        template=MessageTemplateFactory(article=article), segment=segment,
    )  # fmt: skip


def start(push: Push) -> None:
    pushes.push_schedule(push=push, send_at=timezone.now())


def wait_finished(push: Push, timeout: float = 600) -> Push:
    def done():
        push.refresh_from_db()
        return push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED, Push.Status.CANCELLED)

    try:
        wait_for(done, timeout=timeout, interval=1.0)
    except AssertionError:
        counts = Counter(Delivery.objects.filter(push=push).values_list("status", flat=True))
        raise AssertionError(f"the push did not finish: {push.status}, resolved {push.resolved_at}, {counts}") from None
    return push


def exactly_once_report(push: Push, fake) -> dict:
    """Compare our delivery rows with what the fake WeChat server accepted. Returns the figures; asserts nothing."""
    accepted = Counter(c["body"]["touser"] for c in fake.calls(TEMPLATE) if c["errcode"] == 0)
    rows = dict(Delivery.objects.filter(push=push).values_list("subscriber__openid", "status"))
    sent_rows = {o for o, s in rows.items() if s in (D.SENT, D.DELIVERED)}
    unknown = {o for o, s in rows.items() if s == D.UNKNOWN}
    return {
        "recipients": len(rows),
        "statuses": Counter(rows.values()),
        "duplicated": sorted(o for o, n in accepted.items() if n > 1),
        # lost: WeChat never got it, and we do not say "unknown" (or a final failure with a reason)
        "lost": sorted(o for o in rows if accepted[o] == 0 and rows[o] in (D.SENT, D.DELIVERED, D.QUEUED, D.SENDING)),
        "sent_without_record": sorted(o for o in sent_rows if accepted[o] != 1),
        "accepted_but_not_sent_or_unknown": sorted(o for o in accepted if o in rows and o not in sent_rows | unknown),
        "unknown": len(unknown),
        "unknown_accepted": sum(1 for o in unknown if accepted[o] == 1),
        "not_final": sorted(o for o, s in rows.items() if s not in FINAL),
    }


def wait_dead_sessions_gone(timeout: float = 30) -> None:
    """After a worker is killed, PostgreSQL may still be finishing what its sessions sent before they died (a claim's
    COMMIT under load): wait until no session but ours is left on the test database, as the beat would (it runs
    minutes later)."""

    def gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0] == 0

    wait_for(gone, timeout=timeout, interval=0.05, message="the killed worker's database sessions did not end")
