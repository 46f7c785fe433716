"""Tracked links opened in WeChat's browser go through web authorisation (网页授权, snsapi_base) at the fake WeChat
server, so each click is credited to whoever opened the link: the subscriber it was sent to, another follower it was
forwarded to, or someone who does not follow (a forward, whose later follow is attributed to the push and content).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import override_settings

from accounts import webauth
from accounts.models import Interaction, Subscriber
from accounts.tasks import interaction_process
from content import selectors, services
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained

from .factories import ArticleFactory, SubscriberFactory
from .push_factories import PushFactory

pytestmark = pytest.mark.django_db

TARGET = "https://shop.example.com/item/42?utm_source=wechat"
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "MicroMessenger/8.0.49(0x18003129) NetType/WIFI Language/zh_CN"
)
AUTHORIZE = "/connect/oauth2/authorize"
EXCHANGE = "/sns/oauth2/access_token"


@pytest.fixture(autouse=True)
def _no_click_window_left():
    """Click-window markers (TRACKED_LINK_CLICK_WINDOW) of an earlier run's ids would make a first click a repeat."""
    from wechat_crm.wechat import ratelimit

    client = ratelimit.redis_client()
    if client is not None:
        for key in client.scan_iter("*link_click:*"):
            client.delete(key)


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _to_authorise(client, url: str):
    """Open the tracked link in WeChat's browser: our answer must send it to WeChat's authorise page."""
    response = client.get(_local(url), HTTP_USER_AGENT=WECHAT_UA)
    assert response.status_code == 302
    return response["Location"]


def _open_in_wechat(client, fake, url: str, *, openid: str):
    """The whole round trip: our redirect, WeChat's authorise page (where `openid` is in the browser), our return."""
    status, back = fake.authorize(_to_authorise(client, url), openid=openid)
    assert status == 302, back
    return client.get(_local(back), HTTP_USER_AGENT=WECHAT_UA), back


def _clicks(kind: str = "link_click"):
    return Interaction.objects.filter(kind=kind)


def test_a_link_opened_in_wechat_goes_through_wechats_authorise_page(client, fake):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=None)

    location = _to_authorise(client, url)

    parts = urlsplit(location)
    assert location.startswith(fake.url + AUTHORIZE.lstrip("/") + "?")
    assert parts.fragment == "wechat_redirect"
    query = parse_qs(parts.query)
    assert query["appid"] == [settings.WECHAT_APP_ID]
    assert query["scope"] == ["snsapi_base"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [settings.PUBLIC_BASE_URL.rstrip("/") + "/r/auth/"]
    state = query["state"][0]
    assert state.isalnum() and len(state) <= 128 and subscriber.openid not in location
    assert not _clicks().exists()  # nothing is credited before we know who opened it


def test_the_subscriber_it_was_sent_to_is_credited_and_the_shop_gets_a_reference(client, fake):
    subscriber = SubscriberFactory()
    article = ArticleFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=7, content_id=article.pk)

    response, _back = _open_in_wechat(client, fake, url, openid=subscriber.openid)

    assert response.status_code == 302
    click = _clicks().get()
    assert click.subscriber_id == subscriber.pk
    assert click.data["push_id"] == 7 and click.data["content_id"] == article.pk and click.data["web_auth"] is True
    assert "shared_by" not in click.data
    target = urlsplit(response["Location"])
    assert response["Location"].startswith("https://shop.example.com/item/42?")
    query = parse_qs(target.query)
    assert query["utm_source"] == ["wechat"]
    assert webauth.ref_read(query["wxref"][0]) == subscriber.pk
    assert subscriber.openid not in response["Location"]
    assert [c["query"]["code"] for c in fake.calls(EXCHANGE)]  # the code was exchanged at WeChat


def test_a_link_forwarded_to_another_follower_is_credited_to_that_follower(client, fake):
    sender, friend = SubscriberFactory(), SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=3)

    response, _back = _open_in_wechat(client, fake, url, openid=friend.openid)

    assert response.status_code == 302
    click = _clicks().get()
    assert click.subscriber_id == friend.pk
    assert click.data["shared_by"] == sender.pk
    assert not _clicks().filter(subscriber=sender).exists()
    assert selectors.forward_figures(push_id=3) == {
        "forwarded_clicks": 1,
        "forwards_to_non_followers": 0,
        "follows_from_forwards": 0,
    }
    wxref = parse_qs(urlsplit(response["Location"]).query)["wxref"][0]
    assert webauth.ref_read(wxref) == friend.pk


def test_a_forward_to_someone_who_does_not_follow_is_recorded_as_a_forward(client, fake):
    sender = SubscriberFactory()
    article = ArticleFactory()
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=5, content_id=article.pk)

    response, _back = _open_in_wechat(client, fake, url, openid="oFriendWhoDoesNotFollow00001")

    assert response.status_code == 302
    assert not _clicks().exists()
    forward = _clicks("link_forward").get()
    friend = Subscriber.objects.get(openid="oFriendWhoDoesNotFollow00001")
    assert not friend.is_following and friend.subscribed_at is None
    assert forward.subscriber_id == friend.pk
    assert forward.data["shared_by"] == sender.pk and forward.data["push_id"] == 5
    assert forward.data["content_id"] == article.pk
    sender.refresh_from_db()
    assert sender.last_interaction_at is None  # the sender did not click


def test_a_follow_after_a_forward_is_attributed_to_the_original_push_and_content(wechat_callback, client, fake):
    sender = SubscriberFactory()
    article = ArticleFactory()
    push = PushFactory(article=article)
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=push.pk, content_id=article.pk)
    _open_in_wechat(client, fake, url, openid="oFriendWhoFollowsLater000001")

    wechat_callback.post(build_message("subscribe", openid="oFriendWhoFollowsLater000001"))
    follow = Interaction.objects.get(kind="subscribe")
    interaction_process(follow.pk)

    friend = Subscriber.objects.get(openid="oFriendWhoFollowsLater000001")
    assert friend.is_following
    assert (friend.source_push_id, friend.source_content_id) == (push.pk, article.pk)
    assert friend.followed_at is not None
    report = selectors.push_report(push=push)
    assert (report["forwards_to_non_followers"], report["follows_from_forwards"], report["clicks"]) == (1, 1, 0)
    # A later forward and follow do not overwrite the first attribution.
    other = PushFactory(article=ArticleFactory())
    _open_in_wechat(client, fake, services.link_track(TARGET, subscriber_id=sender.pk, push_id=other.pk),
                    openid="oFriendWhoFollowsLater000001")  # fmt: skip
    friend.refresh_from_db()
    assert friend.source_push_id == push.pk


def test_a_browser_that_is_not_wechats_is_redirected_and_credited_as_before(client, fake):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=9)

    response = client.get(_local(url), HTTP_USER_AGENT="Mozilla/5.0 (Macintosh) Safari/605.1.15")

    assert response.status_code == 302
    assert response["Location"] == TARGET  # no authorise page, no reference
    assert clicks_drained() == 1  # a plain click: through the click buffer
    assert _clicks().get().subscriber_id == subscriber.pk
    assert fake.count(AUTHORIZE) == 0 and fake.count(EXCHANGE) == 0


@override_settings(TRACKED_LINK_WEB_AUTH=False)
def test_web_authorisation_can_be_turned_off(client, fake):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)

    response = client.get(_local(url), HTTP_USER_AGENT=WECHAT_UA)

    assert response.status_code == 302 and response["Location"] == TARGET
    assert clicks_drained() == 1  # a plain click: through the click buffer
    assert _clicks().get().subscriber_id == subscriber.pk


def test_a_replayed_state_is_refused_and_credits_nobody(client, fake):
    sender, friend = SubscriberFactory(), SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=sender.pk)
    response, back = _open_in_wechat(client, fake, url, openid=friend.openid)
    assert response.status_code == 302
    assert _clicks().count() == 1

    # The same return URL again (state and code both used).
    replay = client.get(_local(back), HTTP_USER_AGENT=WECHAT_UA)
    # The same state with a fresh code from WeChat (someone else completing the round trip with it).
    state = parse_qs(urlsplit(back).query)["state"][0]
    fresh = _to_authorise(client, url)
    authorise = fresh.replace(parse_qs(urlsplit(fresh).query)["state"][0], state)
    _status, back_again = fake.authorize(authorise, openid="oSomeoneElse0000000000000001")
    with_fresh_code = client.get(_local(back_again), HTTP_USER_AGENT=WECHAT_UA)

    for answer in (replay, with_fresh_code):
        assert answer.status_code == 400
        assert "not valid or was used already" in answer.content.decode()
        assert answer["Cache-Control"] == "no-store"
    assert _clicks().count() == 1 and not _clicks("link_forward").exists()
    assert not Subscriber.objects.filter(openid="oSomeoneElse0000000000000001").exists()


def test_a_bad_state_or_a_code_wechat_refuses_is_refused_and_credits_nobody(client, fake):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    state = parse_qs(urlsplit(_to_authorise(client, url)).query)["state"][0]
    tampered = state[:-23] + ("1" if state[-23] != "1" else "2") + state[-22:]
    preferences_state = webauth.state_make(purpose=webauth.PURPOSE_PREFERENCES, values=())

    answers = [
        client.get("/r/auth/", {"code": "whatever", "state": tampered}),
        client.get("/r/auth/", {"code": "whatever", "state": "not-a-state!"}),
        client.get("/r/auth/", {"code": "whatever"}),
        client.get("/r/auth/", {"code": "whatever", "state": preferences_state}),  # another purpose's state
        client.get("/r/auth/", {"code": "never-issued-code", "state": state}),  # WeChat: 40029
    ]

    assert [a.status_code for a in answers] == [400] * 5
    assert fake.count(EXCHANGE, errcode=40029) == 1  # only the authentic state reached WeChat
    assert not _clicks().exists() and not _clicks("link_forward").exists()


def test_an_expired_state_is_refused(client, fake, settings):
    settings.WEB_AUTH_STATE_MAX_AGE = 60
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    old = webauth.state_make(purpose=webauth.PURPOSE_LINK, values=(subscriber.pk, 0, 0, 1), now=1_000_000_000)

    response = client.get("/r/auth/", {"code": "x", "state": old})

    assert response.status_code == 400
    assert url and not _clicks().exists()


def test_fake_wechat_codes_are_single_use(client, fake):
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatInvalidCode

    status, back = fake.authorize(
        f"{fake.url}connect/oauth2/authorize?appid={settings.WECHAT_APP_ID}&redirect_uri=https%3A%2F%2Fx.example%2F"
        "&response_type=code&scope=snsapi_base&state=abc#wechat_redirect",
        openid="oSomebody00000000000000000001",
    )
    code = parse_qs(urlsplit(back).query)["code"][0]
    assert status == 302 and back.startswith("https://x.example/?code=") and back.endswith("&state=abc")

    assert get_client().web_auth_identity(code=code).openid == "oSomebody00000000000000000001"
    with pytest.raises(WeChatInvalidCode) as used:
        get_client().web_auth_identity(code=code)
    with pytest.raises(WeChatInvalidCode) as unknown:
        get_client().web_auth_identity(code="nope")
    assert (used.value.errcode, unknown.value.errcode) == (40163, 40029)
    # Outside WeChat (nobody in the browser) WeChat shows its page and issues no code; a wrong appid is its error.
    authorise = (f"{fake.url}connect/oauth2/authorize?appid={settings.WECHAT_APP_ID}"
                 "&redirect_uri=https%3A%2F%2Fx.example%2F&response_type=code&scope=snsapi_base&state=abc")  # fmt: skip
    assert fake.authorize(authorise, openid=None) == (200, "")
    assert (
        fake.authorize(authorise.replace(settings.WECHAT_APP_ID, "wrong"), openid="oSomebody000000000000001")[0] == 400
    )


@pytest.mark.usefixtures("english")
def test_the_shop_reports_a_conversion_with_the_reference_and_the_clicker_converts(client, fake, django_user_model):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from campaigns.models import Conversion

    sender, friend = SubscriberFactory(), SubscriberFactory()
    article = ArticleFactory()
    push = PushFactory(article=article)
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=push.pk, content_id=article.pk)
    response, _back = _open_in_wechat(client, fake, url, openid=friend.openid)
    wxref = parse_qs(urlsplit(response["Location"]).query)["wxref"][0]
    shop = django_user_model.objects.create_user(username="shop", password="pw")
    shop.groups.add(Group.objects.get(name="integration"))
    api = APIClient()
    api.force_authenticate(shop)

    answer = api.post(
        "/api/conversions/",
        {"events": [
            {"ref": wxref, "type": "purchase", "external_id": "order-1", "value": "99.00",
             "occurred_at": "2030-01-01T10:00:00+08:00"},
            {"ref": wxref[:-3] + "abc", "type": "purchase", "external_id": "order-2",
             "occurred_at": "2030-01-01T10:00:00+08:00"},
        ]},
        format="json",
    )  # fmt: skip

    assert answer.status_code == 422, answer.content
    body = answer.json()
    assert body["created"] == 1
    assert [e["index"] for e in body["errors"]] == [1]
    assert "ref" in body["errors"][0]["fields"] and "not one of ours" in body["errors"][0]["message"]
    conversion = Conversion.objects.get()
    assert conversion.subscriber_id == friend.pk  # the person who opened the link, not the one it was sent to
    assert (conversion.push_id, conversion.content_id) == (push.pk, article.pk)


def test_the_hop_to_wechat_asks_the_database_nothing_and_the_return_a_few_statements(
    client, fake, django_assert_num_queries, django_assert_max_num_queries
):
    sender, friend = SubscriberFactory(), SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=4)  # the process knows the link from now

    with django_assert_num_queries(0):
        location = _to_authorise(client, url)
    _status, back = fake.authorize(location, openid=friend.openid)
    # The clicker by openid, then the click's UPDATE and INSERT (the test's savepoints aside).
    with django_assert_max_num_queries(5):
        assert client.get(_local(back), HTTP_USER_AGENT=WECHAT_UA).status_code == 302


def test_the_subscribers_timeline_shows_forwards(client, fake):
    from wechat_crm.timeline import subscriber_timeline

    sender = SubscriberFactory()
    _open_in_wechat(
        client, fake, services.link_track(TARGET, subscriber_id=sender.pk), openid="oTimelineFriend000000000001"
    )

    friend = Subscriber.objects.get(openid="oTimelineFriend000000000001")
    (entry,) = [e for e in subscriber_timeline(subscriber=friend) if e["kind"] == "link_click"]
    assert "forwarded" in str(entry["title"]) and entry["detail"] == TARGET


@pytest.mark.usefixtures("english")
def test_a_real_worker_attributes_the_follow_that_a_forward_brought(
    wechat_callback, celery_worker, fake_wechat, client
):
    # wechat_callback first: its settings (the payloads' appid) must be in place before celery_worker resets the fake
    # WeChat with the settings' appid, or the fake's authorise page refuses the app (400).
    from tests.helpers import wait_for

    sender = SubscriberFactory()
    article = ArticleFactory()
    push = PushFactory(article=article)
    url = services.link_track(TARGET, subscriber_id=sender.pk, push_id=push.pk, content_id=article.pk)
    _open_in_wechat(client, fake_wechat, url, openid="oFriendRealWorker00000000001")

    wechat_callback.post(build_message("subscribe", openid="oFriendRealWorker00000000001"))

    def attributed():
        friend = Subscriber.objects.get(openid="oFriendRealWorker00000000001")
        return friend.source_push_id is not None and friend.followed_at is not None and friend

    friend = wait_for(attributed, timeout=60, message="the worker did not attribute the follow to the forward")
    assert (friend.source_push_id, friend.source_content_id) == (push.pk, article.pk)
    assert friend.is_following and not Interaction.objects.filter(subscriber=sender).exists()
