"""Stages move as events arrive: signed callbacks and tracked-link clicks, then their follow-ups (as Celery runs)."""

from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from accounts import tasks
from accounts.models import Interaction, Subscriber
from campaigns.models import FunnelSettings
from content import services as content_services
from content.models import Article, Push
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


SH = ZoneInfo("Asia/Shanghai")
OPENID = "oFunnel_stage_subscriber_0001"


def ts(day: int, hour: int) -> int:
    return int(datetime(2026, 3, day, hour, tzinfo=SH).timestamp())


def run_follow_ups() -> None:
    for pk in (
        Interaction.objects.filter(processed_at__isnull=True).order_by("created_at", "id").values_list("pk", flat=True)
    ):
        assert tasks.interaction_process(pk) is True


def post(poster, kind: str, at: int, **fields) -> None:
    response = poster.post(build_message(kind, openid=OPENID, create_time=at, **fields))
    assert response.status_code == 200


def test_follow_messages_and_menu_clicks_through_the_callback(poster):
    post(poster, "subscribe", ts(2, 9))
    run_follow_ups()
    sub = Subscriber.objects.get(openid=OPENID)
    assert sub.stage == "followed" and sub.followed_at == datetime(2026, 3, 2, 9, tzinfo=SH)

    post(poster, "text", ts(2, 10))
    post(poster, "text", ts(2, 11))
    run_follow_ups()
    sub.refresh_from_db()
    assert sub.stage == "followed" and sub.interactive_at is None  # 2 interactions, 1 day

    post(poster, "CLICK", ts(3, 8))  # a menu click: engaged, and the 3rd interaction on a 2nd day
    run_follow_ups()
    sub.refresh_from_db()
    assert sub.stage == "interactive"
    assert sub.engaged_at == sub.interactive_at == datetime(2026, 3, 3, 8, tzinfo=SH)

    # unfollow and follow again: the first follow and the stages reached stay
    post(poster, "unsubscribe", ts(4, 8))
    post(poster, "subscribe", ts(5, 8))
    run_follow_ups()
    sub.refresh_from_db()
    assert sub.followed_at == datetime(2026, 3, 2, 9, tzinfo=SH) and sub.stage == "interactive"


def test_interactions_spread_beyond_the_window_do_not_make_interactive(poster):
    post(poster, "subscribe", ts(1, 9))
    for day in (1, 2):
        post(poster, "text", ts(day, 10))
    run_follow_ups()
    settings = FunnelSettings.objects.get()
    settings.interactive_window_days = 1
    settings.save()
    post(poster, "text", ts(20, 10))  # the 3rd, but the others are 18+ days earlier
    run_follow_ups()
    assert Subscriber.objects.get(openid=OPENID).interactive_at is None


def test_menu_clicks_do_not_engage_when_the_settings_say_so(poster):
    FunnelSettings.objects.filter(pk=1).update(menu_click_engages=False)
    post(poster, "subscribe", ts(2, 9))
    post(poster, "VIEW", ts(2, 10))
    run_follow_ups()
    assert Subscriber.objects.get(openid=OPENID).engaged_at is None


def test_a_tracked_link_click_engages_with_its_push_and_content(poster, client):
    post(poster, "subscribe", ts(2, 9))
    run_follow_ups()
    sub = Subscriber.objects.get(openid=OPENID)
    article = Article.objects.create(title="Spring offer", slug="spring-offer")
    push = Push.objects.create(name="Spring push", article=article)
    url = content_services.link_track(
        "https://shop.example.com/spring", subscriber_id=sub.pk, push_id=push.pk, content_id=article.pk
    )
    response = client.get(urlsplit(url).path)
    assert response.status_code == 302
    assert clicks_drained() == 1
    run_follow_ups()
    sub.refresh_from_db()
    assert sub.stage == "engaged" and sub.engaged_at is not None
    assert sub.engaged_push == push and sub.engaged_content == article
