"""The media library, drafts, publishing (发布), previews and bad input, through the API against the fake WeChat."""

from __future__ import annotations

import pytest
from django.utils import timezone

from content.models import Article, MassBatch, OperatorProfile, Push, Segment
from publishing.models import ArticleWeChat, Draft, MediaAsset, Publication
from publishing.services.publish import publications_poll
from tests.helpers import wait_for

from .conftest import account, followers, image_bytes, news_push, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_images_of_the_wrong_format_or_size_are_refused_before_any_call(staff_client, fake):
    webp = upload(staff_client, kind="thumb", data=image_bytes("WEBP"), name="a.webp")
    big_thumb = upload(staff_client, kind="thumb", data=image_bytes("JPEG", (400, 400), noise=True), name="big.jpg")
    gif_body = upload(staff_client, kind="body", data=image_bytes("GIF"), name="anim.gif")

    assert webp.status_code == 400 and "WEBP" in webp.json()["message"] and "JPG" in webp.json()["message"]
    assert big_thumb.status_code == 400 and "64 KB" in big_thumb.json()["message"]
    assert gif_body.status_code == 400 and "JPG, PNG" in gif_body.json()["message"]
    assert MediaAsset.objects.count() == 0 and fake.count() == 0


def test_library_images_become_permanent_material_and_the_list_syncs_from_wechat(staff_client, fake):
    image = upload(staff_client, kind="image", data=image_bytes("PNG"), name="cover.png").json()
    thumb = upload(staff_client, kind="thumb", data=image_bytes("JPEG"), name="thumb.jpg").json()

    sent = staff_client.post(f"/api/media/{image['id']}/upload/").json()
    sent_thumb = staff_client.post(f"/api/media/{thumb['id']}/upload/").json()
    again = staff_client.post(f"/api/media/{image['id']}/upload/").json()

    assert sent["media_id"] and sent["wechat_url"].startswith("http://mmbiz.qpic.cn/")
    assert sent_thumb["media_id"] and sent_thumb["wechat_url"] == ""  # WeChat gives no URL for a thumb
    assert again["media_id"] == sent["media_id"] and fake.count("/cgi-bin/material/add_material") == 2
    assert image["url"].startswith("http://") and "/media/library/" in image["url"]  # absolute, under MEDIA_URL
    MediaAsset.objects.filter(pk=image["id"]).delete()  # WeChat keeps one we no longer list

    result = staff_client.post("/api/media/sync/").json()

    assert result["image_count"] == 2 and result["added"] == 1
    assert MediaAsset.objects.get(media_id=sent["media_id"]).from_wechat


def test_an_article_body_with_tags_wechat_refuses_is_refused_naming_them(staff_client, fake, article_with_images):
    article_with_images.body += "\n\n<iframe src='https://example.com'></iframe>\n\n<script>x()</script>"
    article_with_images.save()

    response = staff_client.post(
        "/api/drafts/", {"articles": [article_with_images.pk]}, content_type="application/json"
    )

    assert response.status_code == 400
    assert "<iframe>" in response.json()["message"] and "<script>" in response.json()["message"]
    assert Draft.objects.count() == 0 and fake.count("/cgi-bin/draft/add") == 0


def test_several_articles_become_one_draft_and_an_edit_updates_it(staff_client, fake, article_with_images):
    second = Article.objects.create(title="第二篇", body="正文", digest="d")
    second.cover = article_with_images.cover.name
    second.save()
    ArticleWeChat.objects.create(article=second, content_source_url="https://example.com/src", need_open_comment=True)

    made = staff_client.post(
        "/api/drafts/", {"articles": [article_with_images.pk, second.pk]}, content_type="application/json"
    )
    assert made.status_code == 201, made.json()
    [added] = fake.calls("/cgi-bin/draft/add")
    assert [a["title"] for a in added["body"]["articles"]] == ["春季新品指南", "第二篇"]
    assert added["body"]["articles"][1]["content_source_url"] == "https://example.com/src"
    assert added["body"]["articles"][1]["need_open_comment"] == 1
    second.body = "改过的正文"
    second.save()

    updated = staff_client.post(f"/api/drafts/{made.json()['id']}/upload/").json()

    [update] = fake.calls("/cgi-bin/draft/update")
    assert update["body"]["index"] == 1 and "改过的正文" in update["body"]["articles"]["content"]
    assert updated["media_id"] == made.json()["media_id"] and fake.count("/cgi-bin/draft/add") == 1
    deleted = staff_client.delete(f"/api/drafts/{made.json()['id']}/")
    assert deleted.status_code == 204 and fake.count("/cgi-bin/draft/delete") == 1


def test_publishing_records_the_permanent_url_that_links_then_use(staff_client, fake, article_with_images):
    response = staff_client.post(f"/api/contents/{article_with_images.pk}/wechat/publish/")
    assert response.status_code == 202, response.json()
    assert fake.count("/cgi-bin/freepublish/submit") == 1
    Publication.objects.update(created_at="2020-01-01T00:00:00Z")  # no PUBLISHJOBFINISH came: the poll asks

    assert publications_poll() == 1

    publication = Publication.objects.get()
    assert publication.status == Publication.Status.PUBLISHED and publication.article_id
    url = ArticleWeChat.objects.get(article=article_with_images).wechat_url
    assert url.startswith("https://mp.weixin.qq.com/s/")
    assert Article.objects.get(pk=article_with_images.pk).public_url() == url


def test_publishing_without_the_permission_names_it(staff_client, fake, article_with_images):
    fake.configure(denied_apis=["/cgi-bin/freepublish/submit"])

    response = staff_client.post(f"/api/contents/{article_with_images.pk}/wechat/publish/")

    assert response.status_code == 502
    assert "freepublish/submit" in response.json()["message"] and "48001" in response.json()["message"]
    assert not Publication.objects.exists()


def test_the_preview_goes_to_the_operators_openid_or_a_wechat_id_without_a_window(
    staff_client, fake, article_with_images, django_user_model
):
    account("service")
    [me] = followers(fake, 1, prefix="oMe")
    OperatorProfile.objects.create(user=django_user_model.objects.get(username="operator"), openid=me.openid)
    push = news_push(staff_client, article=article_with_images.pk, segment=Segment.objects.create(name="s").pk)

    to_me = staff_client.post(f"/api/pushes/{push.pk}/preview/", {}, content_type="application/json")
    to_id = staff_client.post(
        f"/api/pushes/{push.pk}/preview/", {"wxname": "ops_wang"}, content_type="application/json"
    )

    assert to_me.status_code == 200 and to_id.status_code == 200, (to_me.json(), to_id.json())
    first, second = fake.calls("/cgi-bin/message/mass/preview")
    media_id = Draft.objects.get(push=push).media_id
    assert (first["body"]["touser"], first["body"]["msgtype"]) == (me.openid, "mpnews")
    assert first["body"]["mpnews"] == {"media_id": media_id}
    assert second["body"]["towxname"] == "ops_wang" and fake.count("/cgi-bin/draft/add") == 1  # the draft reused
    assert fake.count("/cgi-bin/message/custom/send") == 0


def test_service_accounts_are_refused_a_fifth_mass_send_this_month(staff_client, fake, article_with_images):
    account("service")
    followers(fake, 3)
    for i in range(4):
        earlier = Push.objects.create(name=f"earlier {i}", channel=Push.Channel.NEWS, status=Push.Status.SENT)
        MassBatch.objects.create(push=earlier, clientmsgid=f"earlier-{i}", sent_at=timezone.now())
    push = news_push(staff_client, article=article_with_images.pk, segment=Segment.objects.create(name="s").pk)

    refused = staff_client.post(f"/api/pushes/{push.pk}/schedule/", {}, content_type="application/json")

    assert refused.status_code == 409 and refused.json()["extra"]["rule"] == "service_monthly"
    assert "4 times a month" in refused.json()["message"]
    assert fake.count() == 0


def test_a_segment_larger_than_one_send_allows_is_refused(staff_client, fake, article_with_images):
    account("service")
    from accounts.models import Subscriber

    Subscriber.objects.bulk_create(Subscriber(openid=f"oBig{i:07d}", is_following=True) for i in range(10_001))
    push = news_push(staff_client, article=article_with_images.pk, segment=Segment.objects.create(name="s").pk)

    refused = staff_client.post(f"/api/pushes/{push.pk}/schedule/", {}, content_type="application/json")

    assert refused.status_code == 409 and refused.json()["extra"] == {"rule": "openids_per_send", "recipients": 10_001}
    assert "10,000" in refused.json()["message"] and fake.count() == 0


def test_the_publish_event_through_our_callback_records_the_url(
    celery_worker, live_server, staff_client, fake, article_with_images
):
    fake.configure(callback_url=live_server.url + "/wechat/callback/", callback_delay=0)
    response = staff_client.post(f"/api/contents/{article_with_images.pk}/wechat/publish/")
    assert response.status_code == 202

    wait_for(
        lambda: Publication.objects.filter(status=Publication.Status.PUBLISHED).exists(),
        timeout=30,
        message="PUBLISHJOBFINISH did not reach the publication",
    )
    assert ArticleWeChat.objects.get(article=article_with_images).wechat_url.startswith("https://mp.weixin.qq.com/")
    fake.configure(callback_url="", job_finish_events=False)
