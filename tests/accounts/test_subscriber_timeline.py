"""The subscriber's admin page: a timeline of everything that happened (follows, messages, clicks, pushes received,
our replies, conversions, stages reached, score changes), with the remark, tags and preferences editable through
the same service as the API."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.models import FollowEvent, Interaction, Subscriber, Tag
from campaigns.models import Conversion, ConversionType
from content.models import Delivery, Push
from conversations.models import OutboundMessage, ScoreEntry
from wechat_crm.timeline import subscriber_timeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]
SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=SH)
H = timedelta(hours=1)


def _interaction(sub: Subscriber, kind: str, at: datetime, **fields) -> Interaction:
    return Interaction.objects.create(
        subscriber=sub, kind=kind, dedupe_key=str(uuid.uuid4()), raw_xml="", created_at=at, received_at=at, **fields
    )


@pytest.fixture
def story():
    sub = Subscriber.objects.create(
        openid="oStory_0001", nickname="wang", remark="王老师", is_following=True, followed_at=T0,
        engaged_at=T0 + 3 * H, stage="engaged", score=9,
    )  # fmt: skip
    FollowEvent.objects.create(subscriber=sub, kind="follow", at=T0, scene="spring_fair")
    _interaction(sub, "text", T0 + H, content="有优惠吗?")
    _interaction(sub, "click", T0 + 2 * H, event_key="MENU_NEWS")
    _interaction(sub, "link_click", T0 + 3 * H, data={"url": "https://example.com/a", "push_id": 1})
    push = Push.objects.create(name="春季推送", status="sent")
    at = T0 + timedelta(minutes=150)
    Delivery.objects.create(
        push=push, subscriber=sub, channel="template", status="delivered", created_at=at, sent_at=at
    )
    OutboundMessage.objects.create(subscriber=sub, kind="custom", source="operator", text="有的,请看菜单",
                                   status="sent", created_at=T0 + timedelta(minutes=90))  # fmt: skip
    kind = ConversionType.objects.get_or_create(slug="purchase", defaults={"name": "Purchase"})[0]
    Conversion.objects.create(type=kind, subscriber=sub, external_id="o-1", value=Decimal("99.00"),
                              occurred_at=T0 + 5 * H)  # fmt: skip
    ScoreEntry.objects.create(subscriber=sub, points=3, reason="text", at=T0 + H)
    return sub


def test_the_timeline_tells_the_story_newest_first(story):
    events = subscriber_timeline(subscriber=story)
    assert [(e["kind"], e["at"]) for e in events] == [
        ("conversion", T0 + 5 * H),
        ("link_click", T0 + 3 * H),
        ("stage", T0 + 3 * H),
        ("push", T0 + timedelta(minutes=150)),
        ("click", T0 + 2 * H),
        ("reply", T0 + timedelta(minutes=90)),
        ("message", T0 + H),
        ("score", T0 + H),
        ("follow", T0),
        ("stage", T0),
    ]
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["push"]["title"] == "Push: 春季推送" and by_kind["push"]["detail"] == "Delivered"
    assert by_kind["message"]["detail"] == "有优惠吗?" and by_kind["conversion"]["detail"] == "99.00 CNY"
    assert by_kind["score"]["title"] == "Score +3" and by_kind["follow"]["detail"] == "scene spring_fair"


def test_the_subscriber_page_shows_the_timeline_and_edits_the_remark_tags_and_preferences(staff_client, story):
    vip = Tag.objects.create(name="vip")
    story.attributes = {"plan": "pro", "city": "上海"}
    story.save(update_fields=["attributes"])
    url = f"/admin/accounts/subscriber/{story.pk}/change/"

    page = staff_client.get(url).content.decode()
    assert 'id="subscriber-timeline"' in page and "有优惠吗?" in page and "Push: 春季推送" in page
    assert 'name="remark"' in page and 'value="王老师"' in page

    response = staff_client.post(
        url,
        {"remark": "王老师 (VIP)", "tags": [vip.pk], "topics_preferred": [], "topics_opted_out": [],
         "max_pushes_per_week": "3", "attributes": '{"plan": "team"}'},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    story.refresh_from_db()
    assert story.remark == "王老师 (VIP)" and list(story.tags.values_list("name", flat=True)) == ["vip"]
    assert story.max_pushes_per_week == 3 and story.attributes == {"plan": "team"}  # "city" removed in the form
    assert str(story) == "王老师 (VIP)"


def test_attributes_over_the_limit_are_a_form_error(staff_client, story):
    url = f"/admin/accounts/subscriber/{story.pk}/change/"
    too_many = "{" + ",".join(f'"k{i}": {i}' for i in range(500)) + "}"
    response = staff_client.post(url, {"remark": "x", "attributes": too_many})
    assert response.status_code == 200 and "attributes" in response.content.decode()
    story.refresh_from_db()
    assert story.remark == "王老师"


def test_the_timeline_costs_the_same_queries_however_long_the_history(
    staff_client, story, django_assert_max_num_queries
):
    for i in range(120):
        _interaction(story, "text", T0 + timedelta(minutes=i), content=f"m{i}")
    with django_assert_max_num_queries(40):
        staff_client.get(f"/admin/accounts/subscriber/{story.pk}/change/")
    assert len(subscriber_timeline(subscriber=story)) == 50
