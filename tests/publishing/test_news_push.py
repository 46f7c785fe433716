"""News pushes end to end: the API, a real Celery worker, our callback (live server) and the fake WeChat server.

A news push of an article reaches WeChat in the order material upload, draft/add, then a mass send of mpnews with
that draft's media_id; MASSSENDJOBFINISH fills the batch's article URLs; the next day WeChat's reads and shares of
the push show in the admin.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Tag
from content.models import Delivery, MassBatch, Push, Segment
from publishing.models import ArticleDailyStat, Draft, PushNews
from publishing.services import stats
from tests.content.test_push_end_to_end import _wait_worker_idle
from tests.helpers import wait_for, wechat_shared_state_clear

from .conftest import account, followers, news_push

pytestmark = pytest.mark.usefixtures("english")
FINAL = (Push.Status.SENT, Push.Status.PARTIALLY_FAILED, Push.Status.CANCELLED)


@pytest.fixture
def news_wechat(celery_worker, fake_wechat, settings, live_server):
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    fake_wechat.configure(callback_url=live_server.url + "/wechat/callback/", callback_delay=0)
    yield fake_wechat
    fake_wechat.configure(callback_url="", job_finish_events=False)
    _wait_worker_idle()


def _schedule_and_wait(client, push: Push) -> Push:
    response = client.post(f"/api/pushes/{push.pk}/schedule/", {}, content_type="application/json")
    assert response.status_code == 200, response.json()

    def done():
        push.refresh_from_db()
        return push.status in FINAL

    wait_for(done, timeout=120, interval=0.3, message="the news push did not finish")
    return push


def _paths(fake) -> list[str]:
    return [c["path"] for c in fake.calls() if c["errcode"] == 0 and "token" not in c["path"]]


def test_a_news_push_to_a_segment_uploads_material_then_the_draft_then_mass_sends_it(
    news_wechat, staff_client, article_with_images
):
    account("service")
    subs = followers(news_wechat, 3)
    segment = Segment.objects.create(name="all", rules={})
    push = news_push(staff_client, article=article_with_images.pk, segment=segment.pk)

    push = _schedule_and_wait(staff_client, push)

    assert push.status == Push.Status.SENT
    paths = _paths(news_wechat)
    order = ("/cgi-bin/material/add_material", "/cgi-bin/draft/add", "/cgi-bin/message/mass/send")
    add, draft_add, send = (paths.index(p) for p in order)
    assert add < draft_add < send
    assert "/cgi-bin/media/uploadimg" in paths[:draft_add]
    draft = Draft.objects.get(push=push)
    [uploaded] = news_wechat.calls("/cgi-bin/draft/add")
    content = uploaded["body"]["articles"][0]["content"]
    assert "http://mmbiz.qpic.cn/" in content and "/media/" not in content  # WeChat's image URL replaced ours
    assert 'style="' in content and uploaded["body"]["articles"][0]["author"] == "编辑部"
    [mass] = news_wechat.calls("/cgi-bin/message/mass/send")
    assert mass["body"]["msgtype"] == "mpnews" and mass["body"]["mpnews"]["media_id"] == draft.media_id
    assert sorted(mass["body"]["touser"]) == sorted(s.openid for s in subs)
    assert mass["body"]["clientmsgid"] and "send_ignore_reprint" in mass["body"]
    assert draft.status == Draft.Status.CONSUMED
    assert Delivery.objects.filter(push=push, status=Delivery.Status.SENT).count() == 3

    batch = MassBatch.objects.get(push=push)
    wait_for(lambda: MassBatch.objects.get(pk=batch.pk).article_urls, timeout=30, message="no MASSSENDJOBFINISH")
    batch.refresh_from_db()
    assert batch.sent_count == 3 and batch.article_urls["1"].startswith("https://mp.weixin.qq.com/")
    assert batch.copyright_check["state"] == "2"

    # The next day (the fake's clock and ours moved by a day) the daily pull brings WeChat's reads and shares.
    news_wechat.configure(clock_offset=86400)
    stats.stats_pull_yesterday(now=timezone.now() + dt.timedelta(days=1))
    [row] = ArticleDailyStat.objects.filter(msg_data_id=batch.msg_data_id)
    assert row.read_user == 2 and row.share_user == 1 and row.read_from_session == 2

    report = staff_client.get(f"/api/pushes/{push.pk}/wechat-report/").json()
    assert report["wechat"]["totals"]["read_user"] == 2 and report["wechat"]["totals"]["share_count"] == 2
    assert report["sent"] == 3 and "clicks" in report and "conversions" in report
    page = staff_client.get(f"/admin/content/push/{push.pk}/change/").content.decode()
    assert "WeChat&#x27;s figures" in page or "WeChat's figures" in page
    assert "readers from the chat" in page and batch.article_urls["1"].replace("&", "&amp;") in page


def test_a_news_push_to_a_tag_on_a_subscription_account_uses_sendall_and_a_second_one_is_refused(
    news_wechat, staff_client, article_with_images
):
    account("subscription")
    news_wechat.configure(account_type="subscription")
    token = news_wechat.fetch_token()
    tag_id = news_wechat.api("cgi-bin/tags/create", {"tag": {"name": "vip"}}, access_token=token)["tag"]["id"]
    tag = Tag.objects.create(name="vip", wechat_tag_id=tag_id)
    subs = followers(news_wechat, 2)
    tag.subscribers.add(*subs)
    news_wechat.api("cgi-bin/tags/members/batchtagging", {"tagid": tag_id, "openid_list": [s.openid for s in subs]},
              access_token=token)  # fmt: skip
    push = news_push(staff_client, article=article_with_images.pk, mass_tag=tag.pk)

    push = _schedule_and_wait(staff_client, push)

    assert push.status == Push.Status.SENT
    [mass] = news_wechat.calls("/cgi-bin/message/mass/sendall")
    assert mass["body"]["filter"] == {"is_to_all": False, "tag_id": tag_id}
    assert mass["body"]["mpnews"]["media_id"] == Draft.objects.get(push=push).media_id
    before = news_wechat.count()

    second = news_push(staff_client, article=article_with_images.pk, mass_tag=tag.pk)
    refused = staff_client.post(f"/api/pushes/{second.pk}/schedule/", {}, content_type="application/json")
    assert refused.status_code == 409
    assert "once" in refused.json()["message"] or "1 time" in refused.json()["message"]
    assert refused.json()["extra"]["rule"] == "subscription_daily"
    segment = Segment.objects.create(name="all", rules={})
    by_openid = news_push(staff_client, article=article_with_images.pk, segment=segment.pk)
    refused = staff_client.post(f"/api/pushes/{by_openid.pk}/schedule/", {}, content_type="application/json")
    assert refused.status_code == 409 and refused.json()["extra"]["rule"] == "openid_service_only"
    assert news_wechat.count() == before  # refused before any call to WeChat


def test_a_send_that_fails_and_is_retried_reuses_its_draft(news_wechat, staff_client, article_with_images):
    account("service", max_retry_delay_seconds=2)  # WeChat's "retry later" capped for the test
    followers(news_wechat, 2)
    news_wechat.configure(faults=[{"path": "/cgi-bin/message/mass/send", "errcode": 45009, "times": 1}])
    push = news_push(staff_client, article=article_with_images.pk, segment=Segment.objects.create(name="a").pk)

    push = _schedule_and_wait(staff_client, push)

    assert push.status == Push.Status.SENT
    assert len(news_wechat.calls("/cgi-bin/draft/add")) == 1  # made once, reused by the retried send
    # The session's worker may still hold a token an earlier test's fake issued: WeChat refuses it (40001) before
    # looking at the send, and the client refreshes it and sends again. Those refusals are not sends.
    sends = [c["errcode"] for c in news_wechat.calls("/cgi-bin/message/mass/send") if c["errcode"] != 40001]
    assert sends == [45009, 0]
    assert Draft.objects.filter(push=push).count() == 1


def test_a_missing_permission_fails_the_push_with_its_name(news_wechat, staff_client, article_with_images):
    account("service")
    followers(news_wechat, 2)
    news_wechat.configure(denied_apis=["/cgi-bin/message/mass/send"])
    push = news_push(staff_client, article=article_with_images.pk, segment=Segment.objects.create(name="a").pk)

    push = _schedule_and_wait(staff_client, push)

    assert push.status == Push.Status.PARTIALLY_FAILED
    failure = PushNews.objects.get(push=push).failure
    assert "message/mass/send" in failure and "48001" in failure
    assert set(Delivery.objects.filter(push=push).values_list("status", flat=True)) == {Delivery.Status.ERROR}
