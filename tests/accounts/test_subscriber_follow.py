"""What the callback does to subscribers: follow, unfollow, refollow, scenes and last_interaction_at (moved by the
callback for a follow, by the follow-ups of a message from a subscriber we hold)."""

import time
from datetime import UTC, datetime

import pytest

from accounts.models import FollowEvent, Interaction, Subscriber
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import follow_ups_run

pytestmark = pytest.mark.django_db

OPENID = "oFollow_test_subscriber_0001"


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def test_subscribe_creates_a_following_subscriber(wechat_callback):
    now = int(time.time())

    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now))

    subscriber = Subscriber.objects.get(openid=OPENID)
    assert subscriber.is_following
    assert subscriber.subscribed_at == at(now)
    assert subscriber.last_interaction_at == at(now)
    assert subscriber.source_scene == ""
    assert list(subscriber.follow_events.values_list("kind", "at", "scene")) == [("follow", at(now), "")]


def test_subscribe_from_a_qr_code_records_the_scene(wechat_callback):
    wechat_callback.post(build_message("subscribe", openid=OPENID, EventKey="qrscene_spring_fair", Ticket="TICKET"))

    subscriber = Subscriber.objects.get(openid=OPENID)
    interaction = Interaction.objects.get()
    assert subscriber.source_scene == "spring_fair"
    assert interaction.scene == "spring_fair"
    assert interaction.event_key == "qrscene_spring_fair"
    assert interaction.ticket == "TICKET"
    assert subscriber.follow_events.get().scene == "spring_fair"


def test_a_subscribe_event_key_without_the_qrscene_prefix_is_not_a_scan(wechat_callback):
    wechat_callback.post(build_message("subscribe", openid=OPENID, EventKey="last_trade_no_4200000123"))

    subscriber = Subscriber.objects.get(openid=OPENID)
    interaction = Interaction.objects.get()
    assert subscriber.source_scene == ""
    assert interaction.scene == ""
    assert interaction.event_key == "last_trade_no_4200000123"


def test_unsubscribe_marks_the_subscriber_as_not_following(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now - 100))

    wechat_callback.post(build_message("unsubscribe", openid=OPENID, create_time=now))

    subscriber = Subscriber.objects.get(openid=OPENID)
    assert not subscriber.is_following
    assert subscriber.unsubscribed_at == at(now)
    assert subscriber.last_interaction_at == at(now - 100)  # leaving is not an interaction


def test_follow_unfollow_refollow_keeps_the_history_and_the_first_scene(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now - 200, EventKey="qrscene_first"))
    wechat_callback.post(build_message("unsubscribe", openid=OPENID, create_time=now - 100))

    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now, EventKey="qrscene_second"))

    subscriber = Subscriber.objects.get(openid=OPENID)
    assert subscriber.is_following
    assert subscriber.subscribed_at == at(now)
    assert subscriber.source_scene == "first"
    history = list(subscriber.follow_events.order_by("at").values_list("kind", "at", "scene"))
    assert history == [
        ("follow", at(now - 200), "first"),
        ("unfollow", at(now - 100), ""),
        ("follow", at(now), "second"),
    ]


def test_a_late_retry_of_an_old_subscribe_does_not_undo_a_later_unsubscribe(wechat_callback):
    now = int(time.time())
    first_try = build_message("subscribe", openid=OPENID, create_time=now - 20)
    wechat_callback.post(build_message("unsubscribe", openid=OPENID, create_time=now))

    wechat_callback.post(first_try)

    assert not Subscriber.objects.get(openid=OPENID).is_following


def test_unsubscribe_of_someone_we_never_saw_creates_a_non_following_subscriber(wechat_callback):
    wechat_callback.post(build_message("unsubscribe", openid=OPENID))

    subscriber = Subscriber.objects.get(openid=OPENID)
    assert not subscriber.is_following
    assert subscriber.follow_events.get().kind == "unfollow"


@pytest.mark.parametrize("kind", ["text", "image", "voice", "location", "link", "SCAN", "CLICK", "VIEW", "LOCATION"])
def test_messages_and_events_the_subscriber_sends_update_last_interaction_at(wechat_callback, kind):
    now = int(time.time())
    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now - 50))

    wechat_callback.post(build_message(kind, openid=OPENID, create_time=now))
    follow_ups_run()

    assert Subscriber.objects.get(openid=OPENID).last_interaction_at == at(now)


def test_a_first_message_from_someone_we_never_saw_creates_them_at_once(wechat_callback):
    now = int(time.time())

    wechat_callback.post(build_message("text", openid=OPENID, create_time=now))

    subscriber = Subscriber.objects.get(openid=OPENID)  # before any follow-up: the interaction needs its row
    assert subscriber.is_following and subscriber.last_interaction_at == at(now)
    assert Interaction.objects.get().subscriber == subscriber


def test_last_interaction_at_never_moves_backwards(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("text", openid=OPENID, create_time=now))
    follow_ups_run()

    wechat_callback.post(build_message("text", openid=OPENID, create_time=now - 60))  # delivered late
    follow_ups_run()

    assert Subscriber.objects.get(openid=OPENID).last_interaction_at == at(now)
    assert Interaction.objects.count() == 2


def test_the_follow_ups_move_last_interaction_at_to_the_newest_message_of_a_batch_once(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("subscribe", openid=OPENID, create_time=now - 100))
    for offset in (10, 30, 20):  # delivered out of order, processed in one batch
        wechat_callback.post(build_message("text", openid=OPENID, create_time=now - offset))

    assert follow_ups_run() == 4
    subscriber = Subscriber.objects.get(openid=OPENID)
    assert subscriber.last_interaction_at == at(now - 10)

    from accounts.events import touch  # a retried follow-up (or an older batch after a newer one) changes nothing

    touch(list(Interaction.objects.filter(kind="text").order_by("created_at")[:1]))
    assert Subscriber.objects.get(openid=OPENID).last_interaction_at == at(now - 10)
    assert Subscriber.objects.get(openid=OPENID).updated_at == subscriber.updated_at


def test_send_reports_do_not_count_as_interactions(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("text", openid=OPENID, create_time=now - 60))

    wechat_callback.post(build_message("TEMPLATESENDJOBFINISH", openid=OPENID, create_time=now))
    follow_ups_run()

    subscriber = Subscriber.objects.get(openid=OPENID)
    assert subscriber.last_interaction_at == at(now - 60)
    report = Interaction.objects.get(kind="templatesendjobfinish")
    assert report.subscriber == subscriber
    assert report.status == "success"
    assert report.msg_id == "200163836"


def test_a_mass_send_report_belongs_to_no_subscriber(wechat_callback):
    wechat_callback.post(build_message("MASSSENDJOBFINISH", openid="mphelper"))

    report = Interaction.objects.get()
    assert report.subscriber is None
    assert report.data["SentCount"] == "75"
    assert not Subscriber.objects.exists()


def test_scan_by_a_follower_records_the_scene(wechat_callback):
    wechat_callback.post(build_message("SCAN", openid=OPENID, EventKey="booth_12"))

    assert Interaction.objects.get().scene == "booth_12"
    assert Subscriber.objects.get(openid=OPENID).source_scene == ""  # first touch is a follow, not a scan


def test_typed_fields_are_stored(wechat_callback):
    wechat_callback.post(build_message("location", openid=OPENID))
    wechat_callback.post(build_message("LOCATION", openid=OPENID))
    wechat_callback.post(build_message("VIEW", openid=OPENID))
    wechat_callback.post(build_message("image", openid=OPENID))
    wechat_callback.post(build_message("subscribe_msg_popup_event", openid=OPENID))

    message = Interaction.objects.get(kind="location", data__MsgType="location")
    assert (message.latitude, message.longitude, message.scale, message.label) == (
        23.134521,
        113.358803,
        20,
        "广州市天河区",
    )
    event = Interaction.objects.get(kind="location_event", data__MsgType="event")
    assert (event.latitude, event.longitude, event.precision) == (23.137466, 113.352425, 119.38504)
    assert Interaction.objects.get(kind="view").url == "https://example.com/menu/shop"
    image = Interaction.objects.get(kind="image")
    assert (image.media_id, image.pic_url) == ("media_image_1", "http://mmbiz.qpic.cn/pic/1")
    popup = Interaction.objects.get(kind="subscribe_msg_popup_event")
    assert [item["TemplateId"] for item in popup.data["SubscribeMsgPopupEvent"]["List"]] == ["tmpl_a", "tmpl_b"]


def test_an_unknown_type_is_stored_not_dropped(wechat_callback):
    wechat_callback.post(build_message("hologram", openid=OPENID, Depth="3"))
    wechat_callback.post(build_message("teleport_event", openid=OPENID, event=True, EventKey="x"))

    assert set(Interaction.objects.values_list("kind", flat=True)) == {"hologram", "teleport_event"}
    assert Interaction.objects.get(kind="hologram").data["Depth"] == "3"


def test_follow_event_history_is_never_overwritten(wechat_callback):
    now = int(time.time())
    for offset in range(6, 0, -1):
        kind = "subscribe" if offset % 2 == 0 else "unsubscribe"
        wechat_callback.post(build_message(kind, openid=OPENID, create_time=now - offset * 10))

    assert FollowEvent.objects.count() == 6
    assert not Subscriber.objects.get(openid=OPENID).is_following


def test_a_send_report_about_an_openid_we_do_not_hold_creates_nobody_and_stores_nothing(wechat_callback):
    response = wechat_callback.post(build_message("TEMPLATESENDJOBFINISH", openid="oNeverFollowed_000000000001"))

    assert response.status_code == 200
    assert not Subscriber.objects.exists() and not Interaction.objects.exists()
