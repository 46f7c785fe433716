"""The admin's dashboard: today's followers against the same day last week, the inbox's waiting conversations, the
pushes in flight and the last push's quality, and the funnel over the last 30 days, on a population built by hand.

Times are Asia/Shanghai; "now" is Wednesday 18 March 2026, 10:00."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core.management import call_command
from freezegun import freeze_time

from accounts.models import FollowEvent, Interaction, Subscriber
from accounts.selectors import followers_day, followers_today
from content.models import Delivery, Push
from content.selectors import last_push_quality, pushes_in_flight
from conversations import events as inbox_events
from conversations.models import Conversation
from conversations.selectors import inbox_summary
from conversations.services import conversation_answered
from tests.campaigns.funnel_population import SH, population_small
from tests.helpers import person_did
from wechat_crm.dashboard import dashboard_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

NOW = datetime(2026, 3, 18, 10, 0, tzinfo=SH)
_seq = iter(range(1, 10_000))


def sub(openid: str, **fields) -> Subscriber:
    return Subscriber.objects.create(openid=openid, is_following=True, **fields)


def event(subscriber: Subscriber, kind: str, at: datetime) -> None:
    FollowEvent.objects.create(subscriber=subscriber, kind=kind, at=at)


def message(subscriber: Subscriber, at: datetime, kind: str = "text", **data) -> Interaction:
    return Interaction.objects.create(
        subscriber=subscriber, kind=kind, dedupe_key=f"d:{next(_seq)}", raw_xml="", created_at=at, received_at=at,
        content="hello", data=data,
    )  # fmt: skip


@pytest.fixture
def day():
    """Follows and unfollows today, on the same day last week, and just outside both days."""
    f1, f2, f3 = sub("o_f1"), sub("o_f2"), sub("o_f3")
    event(f1, "follow", datetime(2026, 3, 18, 0, 30, tzinfo=SH))  # 17 March 16:30 UTC: today in Shanghai
    event(f2, "follow", datetime(2026, 3, 18, 9, 0, tzinfo=SH))
    event(f3, "unfollow", datetime(2026, 3, 18, 8, 0, tzinfo=SH))
    event(f3, "follow", datetime(2026, 3, 18, 9, 30, tzinfo=SH))  # follows again: counts again
    event(f1, "follow", datetime(2026, 3, 17, 23, 59, tzinfo=SH))  # yesterday
    event(f1, "follow", datetime(2026, 3, 11, 12, 0, tzinfo=SH))  # last week
    event(f2, "unfollow", datetime(2026, 3, 11, 13, 0, tzinfo=SH))
    event(f3, "unfollow", datetime(2026, 3, 11, 23, 0, tzinfo=SH))
    event(f3, "unfollow", datetime(2026, 3, 12, 0, 0, tzinfo=SH))  # the day after last week's


@pytest.fixture
def inbox():
    """Wang (remark) waits since 08:30 with two messages after our 08:00 reply; Li since 09:30; Zhao is answered."""
    wang = sub("o_wang", remark="王老师", nickname="wang")
    li = sub("o_li", nickname="Li")
    zhao = sub("o_zhao")
    message(wang, datetime(2026, 3, 18, 7, 0, tzinfo=SH))
    message(wang, datetime(2026, 3, 18, 8, 30, tzinfo=SH))
    message(wang, datetime(2026, 3, 18, 9, 0, tzinfo=SH), kind="image")
    message(li, datetime(2026, 3, 18, 9, 30, tzinfo=SH))
    message(zhao, datetime(2026, 3, 18, 6, 0, tzinfo=SH))
    Conversation.objects.create(
        subscriber=wang, unanswered=2, last_inbound_at=datetime(2026, 3, 18, 9, 0, tzinfo=SH),
        last_outbound_at=datetime(2026, 3, 18, 8, 0, tzinfo=SH),
    )  # fmt: skip
    Conversation.objects.create(subscriber=li, unanswered=1, last_inbound_at=datetime(2026, 3, 18, 9, 30, tzinfo=SH))
    Conversation.objects.create(
        subscriber=zhao, unanswered=0, last_inbound_at=datetime(2026, 3, 18, 6, 0, tzinfo=SH),
        last_outbound_at=datetime(2026, 3, 18, 6, 5, tzinfo=SH),
    )  # fmt: skip
    # Rows written by hand, not by the inbox follow-up: `waiting_since` is backfilled as for data older than it.
    backfill = import_module("conversations.migrations.0009_conversation_waiting_since").waiting_since_backfill
    backfill(django_apps, None)
    return {"wang": wang}


@pytest.fixture
def pushes():
    """In flight: "Morning" (2 sent, 1 failed, 1 queued of 4). Finished: "Monday" (16 March; 3 delivered, 1
    failed, 1 skipped; one clicker; one reached subscriber unfollows 2 h later) and an older "Old" push."""
    people = [sub(f"o_p{i}") for i in range(5)]
    morning = Push.objects.create(name="Morning", status="sending", started_at=NOW - timedelta(minutes=5))
    for person, status in zip(people, ["sent", "sent", "failed", "queued"], strict=False):
        Delivery.objects.create(push=morning, subscriber=person, channel="template", status=status, created_at=NOW)
    sent_at = datetime(2026, 3, 16, 10, 0, tzinfo=SH)
    monday = Push.objects.create(
        name="Monday", status="sent", started_at=sent_at, finished_at=sent_at + timedelta(minutes=3)
    )
    for person, status in zip(people, ["delivered", "delivered", "delivered", "failed", "skipped"], strict=True):
        Delivery.objects.create(
            push=monday, subscriber=person, channel="template", status=status, created_at=sent_at,
            sent_at=sent_at if status != "skipped" else None,
        )  # fmt: skip
    message(people[0], sent_at + timedelta(minutes=10), kind="link_click", push_id=monday.pk)
    message(people[0], sent_at + timedelta(minutes=20), kind="link_click", push_id=monday.pk)
    event(people[1], "unfollow", sent_at + timedelta(hours=2))
    Push.objects.create(
        name="Old", status="sent", started_at=sent_at - timedelta(days=7), finished_at=sent_at - timedelta(days=7)
    )
    # Rows written by hand, not by the product: their counters are backfilled as for data older than the counters.
    call_command("push_tallies_rebuild")
    return {"morning": morning, "monday": monday}


def test_followers_today_against_the_same_day_last_week(day):
    figures = followers_today(now=NOW)
    assert figures["day"].isoformat() == "2026-03-18" and figures["last_week_day"].isoformat() == "2026-03-11"
    assert figures["today"] == {"new": 3, "lost": 1, "net": 2}
    assert figures["last_week"] == {"new": 1, "lost": 2, "net": -1}
    assert followers_day(day=datetime(2026, 3, 17).date()) == {"new": 1, "lost": 0, "net": 1}


def test_unanswered_conversations_and_the_one_waiting_longest(inbox):
    summary = inbox_summary(now=NOW)
    assert summary["unanswered"] == 2
    oldest = summary["oldest"]
    assert oldest["name"] == "王老师"  # the remark, not the openid
    assert oldest["messages"] == 2
    assert oldest["since"] == datetime(2026, 3, 18, 8, 30, tzinfo=SH)  # the first message after our reply
    assert oldest["waiting_seconds"] == 90 * 60


def test_the_inbox_follow_up_keeps_since_when_a_conversation_waits_and_an_answer_clears_it():
    """What the dashboard reads is kept as messages are processed: the first unanswered message since our last reply,
    whatever order the batches come in; an answer clears it, and the next message starts a new wait."""
    wang = sub("o_wang_live", remark="王老师")
    at = [datetime(2026, 3, 18, h, m, tzinfo=SH) for h, m in ((8, 30), (9, 0), (8, 45), (9, 20))]
    first, second, late, after_answer = (person_did(wang, "text", t) for t in at)

    inbox_events.inbox_record([second])
    inbox_events.inbox_record([first])  # an earlier message processed later
    inbox_events.inbox_record([late])
    summary = inbox_summary(now=NOW)
    assert summary["unanswered"] == 1
    assert (summary["oldest"]["messages"], summary["oldest"]["since"]) == (3, at[0])

    conversation_answered(subscriber=wang, at=datetime(2026, 3, 18, 9, 10, tzinfo=SH))
    assert inbox_summary(now=NOW) == {"unanswered": 0, "oldest": None}

    inbox_events.inbox_record([after_answer])
    assert inbox_summary(now=NOW)["oldest"]["since"] == at[3]


def test_nobody_waiting_when_every_conversation_is_answered():
    assert inbox_summary(now=NOW) == {"unanswered": 0, "oldest": None}


def test_pushes_in_flight_with_their_progress_and_the_last_push_quality(pushes):
    flying = pushes_in_flight()
    assert [(p["name"], p["done"], p["recipients"], p["percent"]) for p in flying] == [("Morning", 3, 4, 75.0)]
    last = last_push_quality()
    assert last["name"] == "Monday"
    assert (last["recipients"], last["skipped"], last["reached"], last["failed"]) == (5, 1, 3, 1)
    assert last["delivery_rate"] == 0.75  # 3 reached of 4 attempted
    assert (last["clicks"], last["unique_clickers"], last["click_through_rate"]) == (2, 1, 0.3333)
    assert last["unfollows_24h"] == 1


def test_the_funnel_covers_the_last_30_days():
    population_small()  # six followers between 2 and 10 March
    steps = dashboard_data(now=NOW)["funnel"]["steps"]
    assert [s["count"] for s in steps] == [6, 4, 2, 1]
    later = dashboard_data(now=datetime(2026, 4, 7, 10, 0, tzinfo=SH))["funnel"]["steps"]  # 9 Mar to 7 Apr: b1, b2
    assert [s["count"] for s in later] == [2, 2, 1, 0]


def _kpi(page: str, key: str) -> str:
    return re.search(rf'data-kpi="{key}">(.*?)<', page).group(1)


@freeze_time(NOW)
def test_the_admin_index_is_the_dashboard_for_every_role(client, django_user_model, day, inbox, pushes):
    population_small()
    user = django_user_model.objects.create_user(username="mia", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)

    page = client.get("/admin/").content.decode()

    assert [_kpi(page, f"followers-{i}") for i in (1, 2, 3)] == ["3", "1", "2"]
    charts = [json.loads(v.replace("&quot;", '"')) for v in re.findall(r'data-value="([^"]+)"', page)]
    followers, funnel = charts
    assert [d["data"] for d in followers["datasets"]] == [[3, 1, 2], [1, 2, -1]]
    assert funnel["datasets"][0]["data"] == [6, 4, 2, 1]
    assert re.search(r'id="unanswered-count">\s*2\s*<', page)
    assert "王老师" in page and "1 h 30 min" in page
    assert f"/admin/conversations/conversation/{inbox['wang'].conversation.pk}/thread/" in page
    assert "Morning" in page and "3 / 4 (75.0%)" in page
    assert f"/admin/content/push/{pushes['morning'].pk}/progress/" in page
    assert 'data-q="delivery_rate">75%' in page and 'data-q="unfollows_24h">1' in page
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page)  # no CDN: our own static files only
