"""Channel QR codes: created on the fake WeChat server from the admin and the API, shown and downloadable in the
admin; follows and scans through a channel get its welcome reply and are attributed (first touch kept)."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from accounts.models import Interaction, Subscriber, Tag
from accounts.tasks import interaction_process
from campaigns import tallies
from campaigns.models import Channel, ChannelTally, ChannelTouch
from campaigns.selectors import channel_welcome_cache_clear
from campaigns.services import channel_create, channels_attribute
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import changelist_cells, wait_for
from wechat_crm.wechat import xml

QRCODE_CREATE = "/cgi-bin/qrcode/create"
ADD_URL = "/admin/campaigns/channel/add/"


pytestmark = pytest.mark.usefixtures("english")  # asserts the English source strings


@pytest.fixture(autouse=True)
def _fresh_channel_cache():
    channel_welcome_cache_clear()
    yield
    channel_welcome_cache_clear()


def _form(**overrides) -> dict:
    data = {
        "name": "Spring poster",
        "scene_str": "poster-spring",
        "kind": "permanent",
        "expire_seconds": "",
        "welcome_reply": "",
        "is_active": "on",
        "touches-TOTAL_FORMS": "0",
        "touches-INITIAL_FORMS": "0",
        "touches-MIN_NUM_FORMS": "0",
        "touches-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- creating channels ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_creates_a_permanent_qr_code_on_wechat_and_shows_it(staff_client, fake_with_token):
    response = staff_client.post(ADD_URL, _form())
    assert response.status_code == 302, response.content.decode()[:2000]

    channel = Channel.objects.get()
    (call,) = fake_with_token.calls(QRCODE_CREATE)
    assert call["body"] == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "poster-spring"}},
    }
    (stored,) = fake_with_token.qrcodes()
    assert (channel.ticket, channel.url) == (stored["ticket"], stored["url"])
    assert channel.expires_at is None

    page = staff_client.get(f"/admin/campaigns/channel/{channel.pk}/change/").content.decode()
    assert 'src="data:image/svg+xml' in page
    assert f"/admin/campaigns/channel/{channel.pk}/qr.png" in page

    png = staff_client.get(f"/admin/campaigns/channel/{channel.pk}/qr.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert 'filename="channel-poster-spring.png"' in png["Content-Disposition"]
    svg = staff_client.get(f"/admin/campaigns/channel/{channel.pk}/qr.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content


@pytest.mark.django_db
def test_a_temporary_qr_code_gets_its_expiry(staff_client, fake_with_token):
    response = staff_client.post(ADD_URL, _form(kind="temporary", expire_seconds="86400", scene_str="booth-1"))
    assert response.status_code == 302

    channel = Channel.objects.get()
    (call,) = fake_with_token.calls(QRCODE_CREATE)
    assert call["body"]["action_name"] == "QR_STR_SCENE" and call["body"]["expire_seconds"] == 86400
    assert channel.expires_at is not None
    assert 86000 < (channel.expires_at - channel.created_at).total_seconds() <= 86401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "temporary", "expire_seconds": ""}, "needs an expiry"),
        ({"kind": "temporary", "expire_seconds": "9999999"}, "2592000"),
        ({"scene_str": "has spaces"}, "no spaces"),
        ({"scene_str": "x" * 65}, "64"),
    ],
)
def test_bad_input_is_a_form_error_and_wechat_is_not_called(staff_client, fake_with_token, form, message):
    response = staff_client.post(ADD_URL, _form(**form))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Channel.objects.exists()
    assert fake_with_token.count(QRCODE_CREATE) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [{"errcode": 45009}, {"errcode": 40053}, {"status": 500}])
def test_a_wechat_refusal_is_a_form_error_not_a_500(staff_client, fake_with_token, fault):
    fake_with_token.configure(faults=[{"path": QRCODE_CREATE, "times": 10, **fault}])

    response = staff_client.post(ADD_URL, _form())

    assert response.status_code == 200
    assert "WeChat could not create the QR code" in response.content.decode()
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_the_channel_list_shows_follow_counts(staff_client, fake_with_token, settings):
    channel = channel_create(name="Counted", scene_str="counted")
    subscriber = Subscriber.objects.create(
        openid="oCounted_000000000000000001", is_following=True, source_scene="counted"
    )
    interaction = Interaction.objects.create(
        subscriber=subscriber, kind="subscribe", dedupe_key="k1", raw_xml="<xml/>", created_at="2026-01-01T00:00Z",
        received_at="2026-01-01T00:00Z", scene="counted",
    )  # fmt: skip
    channels_attribute(interactions=[Interaction.objects.get(pk=interaction.pk)])  # the follow's follow-up

    page = staff_client.get("/admin/campaigns/channel/").content.decode()

    assert "Counted" in page
    assert changelist_cells(page, "follow_count") == ["1"]
    assert changelist_cells(page, "first_touch_count") == ["1"]
    change = staff_client.get(f"/admin/campaigns/channel/{channel.pk}/change/").content.decode()
    assert "oCounted_000000000000000001" in change  # the recent touches


# --- API -----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_lists_channels_to_users_and_lets_operators_create_them(client, django_user_model, fake_with_token):
    from django.contrib.auth.models import Group

    Tag.objects.create(name="spring")
    user = django_user_model.objects.create_user(username="marketer", password="pw")
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)

    assert client.get("/api/channels/").status_code == 200
    denied = client.post("/api/channels/", {"name": "x", "scene_str": "x"}, content_type="application/json")
    assert denied.status_code == 403

    user.groups.set([Group.objects.get(name="operator")])
    created = client.post(
        "/api/channels/",
        {"name": "Poster", "scene_str": "api-poster", "kind": "temporary", "expire_seconds": 3600, "tags": ["spring"]},
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["ticket"] and body["url"].startswith("http://weixin.qq.com/q/")
    assert body["tags"] == ["spring"] and body["follow_count"] == 0
    assert fake_with_token.count(QRCODE_CREATE) == 1

    listed = client.get("/api/channels/").json()
    assert [c["scene_str"] for c in listed["results"]] == ["api-poster"]
    assert client.get(f"/api/channels/{body['id']}/").json()["name"] == "Poster"


@pytest.mark.django_db
def test_creating_a_channel_in_the_admin_and_in_the_api_gives_the_same_channel(
    staff_client, staff_api, fake_with_token
):
    vip = Tag.objects.create(name="vip")
    values = {"kind": "temporary", "expire_seconds": 3600, "welcome_reply": "Welcome!"}
    resp = staff_client.post(ADD_URL, _form(name="By admin", scene_str="by-admin", tags=[vip.pk], **values))
    assert resp.status_code == 302
    created = staff_api.post(
        "/api/channels/", {"name": "By API", "scene_str": "by-api", "tags": ["vip"], **values}, format="json"
    )
    assert created.status_code == 201, created.json()

    fields = ("kind", "expire_seconds", "welcome_reply", "is_active")
    by_admin, by_api = Channel.objects.get(scene_str="by-admin"), Channel.objects.get(scene_str="by-api")
    assert [getattr(by_admin, f) for f in fields] == [getattr(by_api, f) for f in fields]
    assert by_admin.ticket and by_api.ticket and by_admin.url and by_api.url
    assert abs((by_admin.expires_at - by_api.expires_at).total_seconds()) < 60
    assert list(by_admin.tags.all()) == list(by_api.tags.all()) == [vip]
    assert len(fake_with_token.calls(QRCODE_CREATE)) == 2


@pytest.mark.django_db
def test_the_api_answers_json_errors_for_bad_input_and_wechat_refusals(admin_client, fake_with_token):
    bad = admin_client.post("/api/channels/", {"name": "x", "scene_str": "x", "kind": "temporary"}, "application/json")
    assert bad.status_code == 400 and "expire_seconds" in bad.json()["extra"]["fields"]

    fake_with_token.configure(faults=[{"path": QRCODE_CREATE, "errcode": 45009, "times": 1}])
    refused = admin_client.post("/api/channels/", {"name": "x", "scene_str": "x"}, "application/json")
    assert refused.status_code == 502
    assert "WeChat could not create the QR code" in refused.json()["message"]
    assert not Channel.objects.exists()


# --- follows and scans through a channel ---------------------------------------------------------------------------


def _reply(poster, response) -> dict:
    assert response.status_code == 200
    return xml.parse(poster.reply_text(response))


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_follow_through_a_channel_gets_its_welcome_reply(poster, fake_with_token, mode):
    channel_create(name="Fair", scene_str="fair", welcome_reply="欢迎来到展会！")

    response = poster.post(
        build_message("subscribe", openid="oFair_000000000000000000001", EventKey="qrscene_fair"), mode
    )

    reply = _reply(poster, response)
    assert reply["MsgType"] == "text" and reply["Content"] == "欢迎来到展会！"
    assert reply["ToUserName"] == "oFair_000000000000000000001"
    if mode == "safe":
        assert "<Encrypt>" in response.content.decode()


@pytest.mark.django_db
def test_no_welcome_for_an_unknown_scene_an_inactive_channel_or_a_plain_follow(poster, fake_with_token):
    channel_create(name="Off", scene_str="off", welcome_reply="hi", is_active=False)

    for event_key in ("qrscene_unknown", "qrscene_off", ""):
        response = poster.post(
            build_message("subscribe", openid=f"o{event_key or 'plain'}_x", EventKey=event_key), "plain"
        )
        assert response.content == b"success"

    assert Interaction.objects.filter(kind="subscribe").count() == 3  # stored normally


@pytest.mark.django_db
def test_the_welcome_lookup_costs_at_most_one_query_and_none_when_cached(poster, fake_with_token):
    channel_create(name="Fast", scene_str="fast", welcome_reply="hello")

    def queries(openid: str, event_key: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            poster.post(build_message("subscribe", openid=openid, EventKey=event_key), "plain")
        return len(ctx.captured_queries)

    queries("oFast_warm_0000000000000001", "")  # loads the auto-reply rules, kept for a few seconds
    plain = queries("oFast_plain_000000000000001", "")
    first = queries("oFast_first_000000000000001", "qrscene_fast")
    cached = queries("oFast_cached_00000000000001", "qrscene_fast")

    assert first == plain + 1
    assert cached == plain


@pytest.mark.django_db
def test_first_touch_is_kept_later_touches_are_recorded_and_tags_applied(poster, fake_with_token):
    vip = Tag.objects.create(name="fair-visitor")
    fair = channel_create(name="Fair", scene_str="fair", welcome_reply="welcome", tags=[vip])
    booth = channel_create(name="Booth", scene_str="booth", welcome_reply="booth hello")
    openid = "oTouch_00000000000000000001"

    def process_all():
        for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
            interaction_process(pk)

    poster.post(build_message("subscribe", openid=openid, EventKey="qrscene_fair", create_time=1_800_000_000), "plain")
    process_all()
    scan = poster.post(build_message("SCAN", openid=openid, EventKey="booth", create_time=1_800_000_100), "plain")
    assert xml.parse(scan.content.decode())["Content"] == "booth hello"
    process_all()
    process_all()  # running the follow-ups again changes nothing

    subscriber = Subscriber.objects.get(openid=openid)
    assert subscriber.source_channel == fair
    assert list(subscriber.tags.all()) == [vip]
    touches = list(ChannelTouch.objects.filter(subscriber=subscriber).order_by("at").values_list("channel", "kind"))
    assert touches == [(fair.pk, "follow"), (booth.pk, "scan")]
    assert booth.tags.count() == 0


@pytest.mark.django_db
def test_a_refollow_through_another_channel_does_not_move_the_first_touch(poster, fake_with_token):
    first = channel_create(name="First", scene_str="first")
    second = channel_create(name="Second", scene_str="second")
    openid = "oRefollow_0000000000000000002"
    for at, kind, key in ((1_800_000_000, "subscribe", "qrscene_first"), (1_800_000_050, "unsubscribe", ""),
                          (1_800_000_100, "subscribe", "qrscene_second")):  # fmt: skip
        poster.post(build_message(kind, openid=openid, EventKey=key, create_time=at), "plain")
    for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
        interaction_process(pk)

    assert Subscriber.objects.get(openid=openid).source_channel == first
    assert ChannelTouch.objects.filter(channel=second, kind="follow").count() == 1
    # The channels' counters (follows 1 + 1, first touch only the first) equal a recount, and the rebuild keeps them.
    counters = _channel_counters()
    assert counters == tallies.recount() == {(first.pk, "follows"): 1, (first.pk, "first_touches"): 1,
                                             (second.pk, "follows"): 1}  # fmt: skip
    call_command("channel_tallies_rebuild")
    call_command("channel_tallies_rebuild")
    assert _channel_counters() == counters
    assert ChannelTally.objects.count() == 3
    # The beat's folding keeps the sums (additions written twice fold into one row each).
    ChannelTally.objects.create(channel=first, key="follows", n=1)
    ChannelTally.objects.create(channel=first, key="follows", n=-1)
    assert tallies.tallies_compact(above=0) == 2
    assert _channel_counters() == counters and ChannelTally.objects.count() == 3


def _channel_counters() -> Counter:
    rows = ChannelTally.objects.values_list("channel_id", "key").annotate(n=Sum("n"))
    return +Counter({(channel, key): n for channel, key, n in rows})


def test_the_worker_attributes_a_follow_and_a_scan_through_the_callback(fake_with_token, celery_worker, poster):
    tag = Tag.objects.create(name="from-poster")
    poster_channel = channel_create(name="Poster", scene_str="poster-w", welcome_reply="hi", tags=[tag])
    (openid,) = fake_with_token.add_users([{"openid": "oWorker_0000000000000000001", "qr_scene_str": "poster-w"}])

    follow = poster.post(build_message("subscribe", openid=openid, EventKey="qrscene_poster-w"), "safe")
    assert _reply(poster, follow)["Content"] == "hi"
    wait_for(
        lambda: (
            Subscriber.objects.filter(openid=openid, source_channel=poster_channel, tags=tag).exists()
            and Subscriber.objects.get(openid=openid).profile_fetched_at is not None
        ),
        timeout=30,
        message=f"follow not attributed\n{celery_worker.log()[-3000:]}",
    )
    scan = poster.post(build_message("SCAN", openid=openid, EventKey="poster-w", create_time=2_000_000_000), "safe")
    assert _reply(poster, scan)["Content"] == "hi"
    wait_for(lambda: ChannelTouch.objects.filter(kind="scan").exists(), timeout=30, message="scan not recorded")

    assert ChannelTouch.objects.filter(channel=poster_channel, subscriber__openid=openid).count() == 2
    assert Subscriber.objects.get(openid=openid).source_channel == poster_channel


@pytest.mark.django_db
def test_the_admin_renews_a_temporary_qr_code_and_refuses_a_permanent_one(staff_client, fake_with_token):
    temporary = channel_create(name="Booth", scene_str="booth-r", kind="temporary", expire_seconds=600)
    permanent = channel_create(name="Poster", scene_str="poster-r")
    old_ticket = temporary.ticket

    response = staff_client.post(
        "/admin/campaigns/channel/",
        {"action": "renew_qrcodes", "_selected_action": [temporary.pk, permanent.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert "1 QR codes renewed" in page and "never expires" in page
    temporary.refresh_from_db()
    assert temporary.ticket != old_ticket
    assert fake_with_token.calls(QRCODE_CREATE)[-1]["body"]["action_info"]["scene"]["scene_str"] == "booth-r"
