"""The preferences page: opened from the menu in WeChat's browser through web authorisation at the fake WeChat
server (no openid in any URL), the person changes topics, frequency, pause and notice consent (CSRF-protected), and
each change is confirmed in the chat through the send policy: a customer-service text inside WeChat's window (seen
in the fake's call log, sent by a real worker), or recorded as skipped with the policy's reason outside it."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts import webauth
from accounts.models import Subscriber
from content.models import NoticeConsent, NoticeConsentChange, NoticeTemplate, Topic
from conversations.models import OutboundMessage
from conversations.services import outbound_send
from tests.helpers import person_did, wait_for

WECHAT_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.50.2701"
CUSTOM = "/cgi-bin/message/custom/send"


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _follower(
    openid: str = "oPrefs_follower_0000000000001", *, wrote_minutes_ago: int | None = 10, fake=None
) -> Subscriber:
    sub = Subscriber.objects.create(openid=openid, is_following=True, subscribed_at=timezone.now())
    if wrote_minutes_ago is not None:  # a message from the person opens WeChat's customer-service window
        at = timezone.now() - dt.timedelta(minutes=wrote_minutes_ago)
        person_did(sub, "text", at, fake=fake, content="你好")  # the fake WeChat knows of it too
    return sub


def _open_from_menu(browser: Client, fake, openid: str) -> list[str]:
    """The VIEW button's URL opened in WeChat: our page -> WeChat's authorise page -> back -> our page. Returns every
    URL the browser went through."""
    first = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA)
    assert first.status_code == 302
    authorise = first["Location"]
    assert authorise.startswith(fake.url + "connect/oauth2/authorize?") and "snsapi_base" in authorise
    status, back = fake.authorize(authorise, openid=openid)
    assert status == 302 and urlsplit(back).path == "/preferences/auth/"
    returned = browser.get(_local(back), HTTP_USER_AGENT=WECHAT_UA)
    assert returned.status_code == 302 and returned["Location"] == "/preferences/"
    return ["/preferences/", authorise, back, returned["Location"]]


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def _post(browser: Client, page: str, **fields):
    data = {"csrfmiddlewaretoken": _csrf(page), **fields}
    return browser.post("/preferences/", data, HTTP_USER_AGENT=WECHAT_UA)


@pytest.fixture
def topics(db):
    return [Topic.objects.create(name=name, slug=slug) for name, slug in (("科技", "tech"), ("财经", "finance"))]


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_the_page_opens_through_web_authorisation_without_an_openid_in_any_url(fake, topics):
    sub = _follower()
    sub.topics_opted_out.add(topics[1])
    browser = Client(enforce_csrf_checks=True)

    urls = _open_from_menu(browser, fake, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA)

    assert page.status_code == 200
    html = page.content.decode()
    assert "What you receive" in html and 'name="viewport"' in html
    assert re.search(rf'value="{topics[0].pk}"[^>]*checked', html)  # received
    assert not re.search(rf'value="{topics[1].pk}"[^>]*checked', html)  # opted out
    assert page["Cache-Control"] == "no-store"
    for url in urls:
        assert sub.openid not in url
    assert fake.count("/sns/oauth2/access_token", errcode=0) == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_a_change_is_saved_and_confirmed_in_the_chat_inside_the_window(fake, topics):
    sub = _follower(fake=fake)
    fake.add_users([{"openid": sub.openid}])
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()

    saved = _post(browser, page, topics=[topics[0].pk], max_pushes_per_week="2", pushes_paused="on")

    assert saved.status_code == 302 and saved["Location"] == "/preferences/"
    sub.refresh_from_db()
    assert sub.pushes_paused and sub.max_pushes_per_week == 2
    assert list(sub.topics_opted_out.all()) == [topics[1]]
    message = OutboundMessage.objects.get(subscriber=sub)
    assert (message.kind, message.source, message.status) == ("custom", "confirmation", "queued")
    assert "Pushes paused" in message.text and "at most 2 pushes a week" in message.text and "科技" in message.text
    after = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert "confirmation in the chat" in after
    # The worker's send (asked to the policy again: a confirmation of a pause still goes, pushes would not).
    assert outbound_send(message_id=message.pk).status == "sent"
    (call,) = fake.calls(CUSTOM)
    assert call["body"]["touser"] == sub.openid and "Pushes paused" in call["body"]["text"]["content"]


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_outside_the_window_the_confirmation_is_skipped_with_the_policys_reason(fake, topics):
    sub = _follower(wrote_minutes_ago=None)  # opened the page from a VIEW button: that opens no window
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()

    _post(browser, page, topics=[topics[0].pk], max_pushes_per_week="")

    assert list(sub.topics_opted_out.all()) == [topics[1]]  # saved all the same
    message = OutboundMessage.objects.get(subscriber=sub)
    assert (message.status, message.skip_reason) == ("skipped", "outside_window")
    after = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert "could not confirm it in the chat" in after
    assert fake.count(CUSTOM) == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_withdrawing_consent_to_a_notice_is_recorded(fake, topics):
    sub = _follower()
    NoticeTemplate.objects.create(template_id="tmpl_sale", title="活动提醒", kind=NoticeTemplate.Kind.LONG_TERM)
    NoticeConsent.objects.create(subscriber=sub, template_id="tmpl_sale", accepted=True, credits=0,
                                 changed_at=timezone.now() - dt.timedelta(days=1))  # fmt: skip
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert "活动提醒" in page

    _post(browser, page, topics=[t.pk for t in topics], notices_withdrawn=["tmpl_sale"])

    consent = NoticeConsent.objects.get(subscriber=sub, template_id="tmpl_sale")
    assert not consent.accepted
    assert NoticeConsentChange.objects.filter(subscriber=sub, decision="withdraw").count() == 1
    assert "Consent withdrawn for these notices: 活动提醒" in OutboundMessage.objects.get(subscriber=sub).text


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_a_post_without_the_csrf_token_or_without_the_person_changes_nothing(fake, topics):
    sub = _follower()
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake, sub.openid)

    forged = browser.post("/preferences/", {"pushes_paused": "on"}, HTTP_USER_AGENT=WECHAT_UA)
    stranger = Client().post("/preferences/", {"pushes_paused": "on"})

    assert forged.status_code == 403 and stranger.status_code == 403
    sub.refresh_from_db()
    assert not sub.pushes_paused and not OutboundMessage.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_outside_wechat_a_replayed_state_or_someone_who_does_not_follow(fake):
    outside = Client().get("/preferences/", HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 10.0) Chrome/120")
    assert outside.status_code == 200 and "Open this page in WeChat" in outside.content.decode()

    sub = _follower()
    browser = Client()
    first = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA)
    _status, back = fake.authorize(first["Location"], openid=sub.openid)
    assert browser.get(_local(back), HTTP_USER_AGENT=WECHAT_UA).status_code == 302
    replay = Client().get(_local(back), HTTP_USER_AGENT=WECHAT_UA)
    assert replay.status_code == 400 and "used already" in replay.content.decode()
    link_state = webauth.state_make(purpose=webauth.PURPOSE_LINK, values=(sub.pk, 0, 0, 1))
    assert Client().get("/preferences/auth/", {"state": link_state, "code": "x"}).status_code == 400

    stranger = Client()
    first = stranger.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA)
    _status, back = fake.authorize(first["Location"], openid="oNotAFollower00000000000001")
    answer = stranger.get(_local(back), HTTP_USER_AGENT=WECHAT_UA)
    assert answer.status_code == 200 and "Follow us first" in answer.content.decode()
    assert not Subscriber.objects.filter(openid="oNotAFollower00000000000001").exists()  # nobody recorded
    assert stranger.get("/preferences/", HTTP_USER_AGENT="Chrome").status_code == 200  # still nobody in the session
    assert parse_qs(urlsplit(first["Location"]).query)["scope"] == ["snsapi_base"]


@pytest.mark.usefixtures("english")
def test_a_real_worker_delivers_the_confirmation_to_the_fake_wechat(celery_worker, fake_wechat, settings):
    from tests.helpers import wechat_shared_state_clear

    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    tech = Topic.objects.create(name="科技", slug="tech")
    sub = _follower("oPrefs_worker_000000000000001", wrote_minutes_ago=5, fake=fake_wechat)
    fake_wechat.add_users([{"openid": sub.openid}])
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake_wechat, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()

    assert _post(browser, page, topics=[], max_pushes_per_week="1").status_code == 302

    # (a call refused with 40001 may precede: the worker refreshes a token an earlier test's fake handed out)
    calls = wait_for(lambda: fake_wechat.calls(CUSTOM, errcode=0), timeout=60, message="no confirmation reached it")
    assert [c["body"]["touser"] for c in calls] == [sub.openid]
    assert {c["body"]["touser"] for c in fake_wechat.calls(CUSTOM)} == {sub.openid}
    text = calls[0]["body"]["text"]["content"]
    assert "at most 1 push a week" in text and "You receive no topic" in text
    wait_for(lambda: OutboundMessage.objects.filter(subscriber=sub, status="sent").exists(), timeout=30)
    assert list(Subscriber.objects.get(pk=sub.pk).topics_opted_out.all()) == [tech]


@pytest.mark.django_db
@pytest.mark.usefixtures("english")
def test_a_cap_set_in_the_chat_is_kept_when_the_form_is_saved_unchanged(fake, topics):
    sub = _follower()
    sub.max_pushes_per_week = 4  # "每周 4" in the chat: not one of the page's usual choices
    sub.save(update_fields=["max_pushes_per_week"])
    browser = Client(enforce_csrf_checks=True)
    _open_from_menu(browser, fake, sub.openid)
    page = browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert re.search(r'<option value="4" selected>', page)

    _post(browser, page, topics=[t.pk for t in topics], max_pushes_per_week="4")

    sub.refresh_from_db()
    assert sub.max_pushes_per_week == 4
    assert not OutboundMessage.objects.exists()  # nothing changed, nothing to confirm
    assert "Nothing changed" in browser.get("/preferences/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert browser.head("/preferences/auth/?state=x&code=y").status_code == 405
