"""The inbox in the admin: people rather than openids, WeChat's window on every row and thread, filters, live
updates through a small JSON endpoint, images and voice fetched from WeChat through our gateway client, quick
replies and assignment to an operator."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from django.utils import timezone
from PIL import Image

from accounts.models import Interaction, Subscriber
from conversations.models import Conversation, OutboundMessage, QuickReply
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import changelist_cells

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]
INBOX = "/admin/conversations/conversation/"


def _sub(openid: str, **fields) -> Subscriber:
    return Subscriber.objects.create(openid=openid, is_following=True, **fields)


def _message(subscriber: Subscriber, at: dt.datetime, kind: str = "text", **fields) -> Interaction:
    return Interaction.objects.create(
        subscriber=subscriber, kind=kind, dedupe_key=str(uuid.uuid4()), raw_xml="", created_at=at, received_at=at,
        **fields,
    )  # fmt: skip


def _conversation(subscriber: Subscriber, *, minutes_ago: int, unanswered: int = 1, **fields) -> Conversation:
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    _message(subscriber, at, content="你好")
    return Conversation.objects.create(subscriber=subscriber, unanswered=unanswered, last_inbound_at=at, **fields)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_inbox_lists_people_by_remark_or_nickname_with_the_openid_as_fallback(staff_client):
    _conversation(_sub("oRemark_01", remark="王老师", nickname="wang"), minutes_ago=5)
    _conversation(_sub("oNick_01", nickname="小李"), minutes_ago=10)
    _conversation(_sub("oBare_01"), minutes_ago=60 * 50, unanswered=0)  # wrote 50 hours ago

    page = staff_client.get(INBOX).content.decode()

    assert changelist_cells(page, "name") == ["王老师", "小李", "oBare_01"]
    windows = changelist_cells(page, "window")
    assert windows[0].startswith("open, 47 h") and windows[2] == "closed"


def test_the_inbox_filters_waiting_assigned_and_by_date_range(staff_client, django_user_model):
    me = django_user_model.objects.get(username="operator")
    _conversation(_sub("oA", remark="A"), minutes_ago=5, assigned_to=me)
    _conversation(_sub("oB", remark="B"), minutes_ago=60 * 24 * 3, unanswered=0)
    _conversation(_sub("oC", remark="C"), minutes_ago=60 * 24 * 10)

    def names(query: str) -> list[str]:
        return changelist_cells(staff_client.get(INBOX + query).content.decode(), "name")

    assert names("?waiting=yes") == ["A", "C"]
    assert names("?assigned=me") == ["A"]
    assert names("?assigned=nobody") == ["C", "B"]
    since = (timezone.localtime() - dt.timedelta(days=4)).strftime("%Y-%m-%d")
    assert names(f"?last_inbound_at_from_0={since}&last_inbound_at_from_1=00:00") == ["A", "B"]


def test_the_inbox_list_costs_the_same_queries_for_one_or_many_rows(staff_client, django_assert_max_num_queries):
    for i in range(30):
        _conversation(_sub(f"oMany_{i:02d}", nickname=f"n{i}"), minutes_ago=i + 1)
    with django_assert_max_num_queries(12):
        assert staff_client.get(INBOX).status_code == 200


def test_the_thread_shows_the_window_and_its_live_endpoint_sends_only_changes(staff_client):
    sub = _sub("oLive_01", nickname="小王")
    conversation = _conversation(sub, minutes_ago=60)
    url = f"{INBOX}{conversation.pk}/thread/"

    page = staff_client.get(url).content.decode()
    assert "Inside WeChat's 48-hour window" in page and "closes in 46 h 59 min" in page
    live = staff_client.get(f"{url}live/").json()
    assert live["changed"] is True and "你好" in live["html"]
    assert staff_client.get(f"{url}live/", {"signature": live["signature"]}).json() == {
        "signature": live["signature"],
        "changed": False,
    }
    staff_client.post(url, {"text": "马上为您查询", "send_text": "1"})
    reply = OutboundMessage.objects.get()
    queued = staff_client.get(f"{url}live/", {"signature": live["signature"]}).json()
    assert queued["changed"] is True and 'data-status="queued"' in queued["html"]
    OutboundMessage.objects.filter(pk=reply.pk).update(status="sent")  # what the worker does
    sent = staff_client.get(f"{url}live/", {"signature": queued["signature"]}).json()
    assert sent["changed"] is True and 'data-status="sent"' in sent["html"]


def test_outside_the_window_the_thread_says_so(staff_client):
    conversation = _conversation(_sub("oOld_01"), minutes_ago=60 * 49)
    page = staff_client.get(f"{INBOX}{conversation.pk}/thread/").content.decode()
    assert "Outside WeChat's 48-hour window" in page


def test_a_message_whose_follow_ups_have_not_run_yet_opens_the_window_for_the_operator(staff_client, wechat_callback):
    """Someone who last wrote 49 hours ago writes again. The callback stores the message at once; their
    last_interaction_at moves in the follow-ups a moment later. An operator who answers from the inbox in between
    is inside WeChat's window: it is read from the messages themselves."""
    sub = _sub("oBack_0000000000000000001", last_interaction_at=timezone.now() - dt.timedelta(hours=49))
    conversation = _conversation(sub, minutes_ago=60 * 49)
    url = f"{INBOX}{conversation.pk}/thread/"
    assert "Outside WeChat's 48-hour window" in staff_client.get(url).content.decode()

    wechat_callback.post(build_message("text", openid=sub.openid, Content="还在吗?"))
    assert Interaction.objects.get(subscriber=sub, content="还在吗?").processed_at is None  # follow-ups pending
    assert Subscriber.objects.get(pk=sub.pk).last_interaction_at < timezone.now() - dt.timedelta(hours=48)

    assert "Inside WeChat's 48-hour window" in staff_client.get(url).content.decode()
    staff_client.post(url, {"text": "在的,请讲", "send_text": "1"})
    assert OutboundMessage.objects.get(subscriber=sub).text == "在的,请讲"


def test_images_and_voice_are_fetched_from_wechat_through_the_gateway(staff_client, fake_wechat):
    sub = _sub("oMedia_01", nickname="图")
    conversation = _conversation(sub, minutes_ago=3)
    png = _png()
    fake_wechat.add_media("MEDIA_IMG_1", png, "image/png")
    fake_wechat.add_media("MEDIA_VOICE_1", b"RIFF....WAVEfmt ", "audio/wav")
    image = _message(sub, timezone.now(), kind="image", media_id="MEDIA_IMG_1", pic_url="http://mmbiz.qpic.cn/x/0")
    voice = _message(
        sub, timezone.now(), kind="voice", media_id="MEDIA_VOICE_1", format="amr", data={"Recognition": "在吗"}
    )
    gone = _message(sub, timezone.now(), kind="image", media_id="MEDIA_EXPIRED")

    page = staff_client.get(f"{INBOX}{conversation.pk}/thread/").content.decode()

    image_url = f"{INBOX}{conversation.pk}/media/{image.pk}/"
    assert f'<img class="thread-image" src="{image_url}"' in page
    assert f'<audio controls preload="none" src="{INBOX}{conversation.pk}/media/{voice.pk}/">' in page
    assert "在吗" in page  # WeChat's recognition of the voice
    response = staff_client.get(image_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png" and response.content == png
    voice_file = staff_client.get(f"{INBOX}{conversation.pk}/media/{voice.pk}/")
    assert voice_file["Content-Type"] == "audio/wav"
    assert staff_client.get(f"{INBOX}{conversation.pk}/media/{gone.pk}/").status_code == 502
    other = _conversation(_sub("oOther_01"), minutes_ago=1)
    assert staff_client.get(f"{INBOX}{other.pk}/media/{image.pk}/").status_code == 404  # not this subscriber's


def test_quick_replies_and_assignment_to_an_operator(staff_client, django_user_model):
    QuickReply.objects.create(title="问候", text="您好,请问有什么可以帮您?", position=1)
    colleague = django_user_model.objects.create_user(username="lin", password="pw", is_staff=True)
    conversation = _conversation(_sub("oAssign_01", remark="张三"), minutes_ago=2)
    url = f"{INBOX}{conversation.pk}/thread/"

    page = staff_client.get(url).content.decode()
    assert 'data-text="您好,请问有什么可以帮您?">问候</button>' in page
    staff_client.post(url, {"assign": "1", "assigned_to": colleague.pk})
    conversation.refresh_from_db()
    assert conversation.assigned_to == colleague
    assert changelist_cells(staff_client.get(INBOX).content.decode(), "assigned_to") == ["lin"]

    staff_client.post(INBOX, {"action": "assign_to_me", "_selected_action": [conversation.pk]})
    conversation.refresh_from_db()
    assert conversation.assigned_to.username == "operator"
    staff_client.post(url, {"assign": "1", "assigned_to": ""})
    conversation.refresh_from_db()
    assert conversation.assigned_to is None


def test_a_marketer_reads_the_inbox_but_cannot_reply_or_assign(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="mia", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)
    conversation = _conversation(_sub("oRead_01"), minutes_ago=2)
    url = f"{INBOX}{conversation.pk}/thread/"

    page = client.get(url).content.decode()
    assert "你好" in page and 'id="reply-form"' not in page and 'name="assign"' not in page
    client.post(url, {"text": "x", "send_text": "1"})
    client.post(url, {"assign": "1", "assigned_to": user.pk})
    assert not OutboundMessage.objects.exists() and Conversation.objects.get().assigned_to is None


def test_an_operator_answers_and_assigns(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="op", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client.force_login(user)
    conversation = _conversation(_sub("oOp_01"), minutes_ago=2)
    url = f"{INBOX}{conversation.pk}/thread/"

    client.post(url, {"text": "您好", "send_text": "1"})
    client.post(url, {"assign": "1", "assigned_to": user.pk})
    assert OutboundMessage.objects.get().text == "您好" and Conversation.objects.get().assigned_to == user
