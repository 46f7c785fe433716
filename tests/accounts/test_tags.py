"""Tags: local tags on subscribers, synced both ways with the fake WeChat server's tags; the API and the admin."""

from __future__ import annotations

import pytest

from accounts.models import Subscriber, Tag
from accounts.tagging import tag_add, tag_remove, tags_sync
from tests.helpers import wait_for

TAG_CREATE = "/cgi-bin/tags/create"
TAGGING = "/cgi-bin/tags/members/batchtagging"
UNTAGGING = "/cgi-bin/tags/members/batchuntagging"


pytestmark = pytest.mark.usefixtures("english")  # asserts the English source strings


def _followers(fake_with_token, count: int, prefix: str) -> list[Subscriber]:
    openids = fake_with_token.add_users([{"openid": f"{prefix}{i:024d}"} for i in range(count)])
    return [Subscriber.objects.create(openid=o, is_following=True) for o in openids]


def _wechat_members(fake_with_token, tag_id: int) -> set[str]:
    return {
        u["openid"]
        for u in fake_with_token.users(subscribe=1)
        if tag_id in (fake_with_token.user(u["openid"]) or {}).get("tagid_list", [])
    }


@pytest.mark.django_db
def test_tag_add_and_remove_are_idempotent():
    tag = Tag.objects.create(name="vip")
    subscribers = [Subscriber.objects.create(openid=f"oTagged{i}") for i in range(3)]

    tag_add(subscribers=subscribers, tag=tag)
    tag_add(subscribers=Subscriber.objects.filter(openid="oTagged0"), tag=tag)
    assert tag.subscribers.count() == 3

    assert tag_remove(subscribers=subscribers[:2], tag=tag) == 2
    assert tag_remove(subscribers=subscribers[:2], tag=tag) == 0
    assert list(tag.subscribers.values_list("openid", flat=True)) == ["oTagged2"]


@pytest.mark.django_db
def test_push_creates_the_wechat_tag_and_tags_members_in_batches_of_50(fake_with_token):
    tag = Tag.objects.create(name="buyers")
    subscribers = _followers(fake_with_token, 60, "oBuyer")
    tag_add(subscribers=subscribers, tag=tag)

    result = tags_sync(direction="push")

    tag.refresh_from_db()
    assert tag.wechat_tag_id is not None and tag.synced_at is not None
    assert fake_with_token.count(TAG_CREATE) == 1
    batches = [c["body"]["openid_list"] for c in fake_with_token.calls(TAGGING)]
    assert sorted(len(b) for b in batches) == [10, 50]
    assert _wechat_members(fake_with_token, tag.wechat_tag_id) == {s.openid for s in subscribers}
    assert result.members_tagged_on_wechat == 60

    # A local removal is pushed as an untagging; a second push with nothing changed calls nothing.
    tag_remove(subscribers=subscribers[:5], tag=tag)
    tags_sync(direction="push")
    assert [len(c["body"]["openid_list"]) for c in fake_with_token.calls(UNTAGGING)] == [5]
    assert _wechat_members(fake_with_token, tag.wechat_tag_id) == {s.openid for s in subscribers[5:]}
    fake_with_token.clear_calls()
    tags_sync(direction="push")
    assert fake_with_token.count(TAGGING) == fake_with_token.count(UNTAGGING) == fake_with_token.count(TAG_CREATE) == 0


@pytest.mark.django_db
def test_push_links_a_local_tag_to_a_wechat_tag_of_the_same_name(fake_with_token):
    token = fake_with_token.fetch_token()
    existing = fake_with_token.api("cgi-bin/tags/create", {"tag": {"name": "老客户"}}, access_token=token)["tag"]["id"]
    tag = Tag.objects.create(name="老客户")

    tags_sync(direction="push")

    tag.refresh_from_db()
    assert tag.wechat_tag_id == existing


@pytest.mark.django_db
def test_pull_imports_wechat_tags_and_their_members(fake_with_token):
    token = fake_with_token.fetch_token()
    gold = fake_with_token.api("cgi-bin/tags/create", {"tag": {"name": "gold"}}, access_token=token)["tag"]["id"]
    subscribers = _followers(fake_with_token, 3, "oGold")
    fake_with_token.add_users([{"openid": s.openid, "tagid_list": [gold]} for s in subscribers[:2]])
    local_only = Tag.objects.create(name="local-only")
    fake_with_token.clear_calls()

    result = tags_sync(direction="pull")

    tag = Tag.objects.get(wechat_tag_id=gold)
    assert tag.name == "gold"
    assert set(tag.subscribers.values_list("openid", flat=True)) == {s.openid for s in subscribers[:2]}
    # Every WeChat tag (the system's 星标组 too) now has a local tag.
    assert result.tags_created_locally == Tag.objects.filter(wechat_tag_id__isnull=False).count() >= 1
    assert result.members_added_locally == 2
    assert Tag.objects.get(pk=local_only.pk).wechat_tag_id is None  # pull does not push
    assert fake_with_token.count(TAG_CREATE) == 0

    count = Tag.objects.count()
    again = tags_sync(direction="pull")  # again: nothing new
    assert again.tags_created_locally == again.members_added_locally == 0
    assert tag.subscribers.count() == 2 and Tag.objects.count() == count


@pytest.mark.django_db
def test_the_tags_api_lists_with_counts_and_lets_admins_create(client, django_user_model):
    from django.contrib.auth.models import Group

    Tag.objects.create(name="b-tag").subscribers.add(Subscriber.objects.create(openid="oApiTag"))
    Tag.objects.create(name="a-tag")
    user = django_user_model.objects.create_user(username="reader", password="pw")
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)

    listed = client.get("/api/tags/").json()["results"]
    assert [(t["name"], t["subscriber_count"]) for t in listed] == [("a-tag", 0), ("b-tag", 1)]
    assert client.post("/api/tags/", {"name": "x"}, content_type="application/json").status_code == 403

    user.groups.set([Group.objects.get(name="admin")])
    client.force_login(django_user_model.objects.get(pk=user.pk))
    created = client.post("/api/tags/", {"name": "new"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["name"] == "new"
    duplicate = client.post("/api/tags/", {"name": "new"}, content_type="application/json")
    assert duplicate.status_code == 400 and "exists already" in duplicate.json()["message"]
    too_long = client.post("/api/tags/", {"name": "长" * 11}, content_type="application/json")
    assert too_long.status_code == 400 and "30 bytes" in too_long.json()["message"]


def test_the_admin_action_syncs_tags_in_the_worker(fake_wechat, celery_worker, client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="tagadmin", password="pw", email="t@example.com")
    client.force_login(admin)
    tag = Tag.objects.create(name="from-admin")

    response = client.post(
        "/admin/accounts/tag/", {"action": "sync_with_wechat", "_selected_action": [tag.pk]}, follow=True
    )

    assert "runs in the background" in response.content.decode()
    wait_for(
        lambda: Tag.objects.get(pk=tag.pk).wechat_tag_id is not None,
        timeout=30,
        message=f"tag not pushed\n{celery_worker.log()[-3000:]}",
    )
    assert any(c["body"] == {"tag": {"name": "from-admin"}} for c in fake_wechat.calls(TAG_CREATE))


def test_the_subscriber_admin_action_imports_followers_in_the_worker(
    fake_wechat, celery_worker, client, django_user_model
):
    admin = django_user_model.objects.create_superuser(username="syncadmin", password="pw", email="s@example.com")
    client.force_login(admin)
    fake_wechat.add_users(generate=30)
    anyone = Subscriber.objects.create(openid="oAlreadyHere_000000000000001")

    response = client.post(
        "/admin/accounts/subscriber/", {"action": "start_follower_sync", "_selected_action": [anyone.pk]}, follow=True
    )

    assert "runs in the background" in response.content.decode()
    wait_for(
        lambda: Subscriber.objects.count() == 31, timeout=30, message=f"not imported\n{celery_worker.log()[-3000:]}"
    )
