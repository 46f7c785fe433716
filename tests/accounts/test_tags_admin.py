"""The admin pages of tags, follower syncs and the subscriber's tags, source channel and preferences."""

import pytest

from accounts.models import FollowerSync, Subscriber, Tag
from campaigns.models import Channel
from content.models import Topic
from tests.helpers import changelist_cells

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_the_subscriber_page_edits_tags_and_preferences_and_shows_the_source_channel(admin_client):
    channel = Channel.objects.create(name="Spring poster", scene_str="spring", url="http://weixin.qq.com/q/x")
    subscriber = Subscriber.objects.create(openid="oAdminPrefs_000000000000001", source_channel=channel)
    tag = Tag.objects.create(name="vip")
    topic = Topic.objects.create(name="科技", slug="tech")
    url = f"/admin/accounts/subscriber/{subscriber.pk}/change/"

    page = admin_client.get(url).content.decode()
    assert "Spring poster" in page and "pushes_paused" in page and "max_pushes_per_week" in page

    response = admin_client.post(
        url,
        {
            "tags": [tag.pk],
            "topics_opted_out": [topic.pk],
            "topics_preferred": [],
            "max_pushes_per_week": "2",
            "pushes_paused": "on",
            "attributes": '{"plan": "pro"}',
            "follow_events-TOTAL_FORMS": "0",
            "follow_events-INITIAL_FORMS": "0",
            "follow_events-MIN_NUM_FORMS": "0",
            "follow_events-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]

    subscriber.refresh_from_db()
    assert list(subscriber.tags.all()) == [tag]
    assert list(subscriber.topics_opted_out.all()) == [topic]
    assert subscriber.max_pushes_per_week == 2 and subscriber.pushes_paused is True
    assert subscriber.attributes == {"plan": "pro"}
    assert subscriber.source_channel == channel and subscriber.openid == "oAdminPrefs_000000000000001"


def test_the_tag_and_follower_sync_lists_render(admin_client):
    Tag.objects.create(name="vip", wechat_tag_id=100).subscribers.add(Subscriber.objects.create(openid="oT"))
    FollowerSync.objects.create(total=25000, imported=10000, next_openid="oX")

    tags = admin_client.get("/admin/accounts/tag/").content.decode()
    assert "vip" in tags and changelist_cells(tags, "subscriber_count") == ["1"]
    syncs = admin_client.get("/admin/accounts/followersync/").content.decode()
    assert "10000" in syncs and "25000" in syncs
