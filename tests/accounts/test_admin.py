"""The admin: subscribers and interactions browsable, searchable by openid, filterable; interactions read-only."""

import pytest

from tests.accounts.factories import FollowEventFactory, InteractionFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def test_subscriber_changelist_searches_by_openid(staff_client):
    SubscriberFactory(openid="oAdmin_wanted")
    SubscriberFactory(openid="oAdmin_other")

    response = staff_client.get("/admin/accounts/subscriber/", {"q": "oAdmin_wanted"})

    assert response.status_code == 200
    assert b"oAdmin_wanted" in response.content
    assert b"oAdmin_other" not in response.content


def test_subscriber_changelist_filters_by_following(staff_client):
    SubscriberFactory(openid="oAdmin_following")
    SubscriberFactory(openid="oAdmin_left", is_following=False)

    response = staff_client.get("/admin/accounts/subscriber/", {"is_following__exact": "0"})

    assert response.status_code == 200
    assert b"oAdmin_left" in response.content
    assert b"oAdmin_following" not in response.content


def test_subscriber_page_shows_the_follow_history(staff_client):
    subscriber = SubscriberFactory(openid="oAdmin_history")
    FollowEventFactory(subscriber=subscriber, scene="spring_fair")

    response = staff_client.get(f"/admin/accounts/subscriber/{subscriber.pk}/change/")

    assert response.status_code == 200
    assert b"spring_fair" in response.content


def test_interaction_changelist_searches_and_filters(staff_client):
    wanted = SubscriberFactory(openid="oAdmin_alice")
    InteractionFactory(subscriber=wanted, kind="text", content="alice says hi")
    InteractionFactory(subscriber=wanted, kind="click", content="alice clicked", msg_id="")
    InteractionFactory(kind="text", content="someone else")

    searched = staff_client.get("/admin/accounts/interaction/", {"q": "oAdmin_alice"})
    filtered = staff_client.get("/admin/accounts/interaction/", {"kind": "click"})
    by_date = staff_client.get("/admin/accounts/interaction/", {"created_at__gte": "2000-01-01 00:00:00+00:00"})

    assert searched.status_code == filtered.status_code == by_date.status_code == 200
    assert b"alice says hi" in searched.content and b"someone else" not in searched.content
    assert b"alice clicked" in filtered.content and b"alice says hi" not in filtered.content
    assert b"someone else" in by_date.content


def test_interactions_are_read_only(staff_client):
    interaction = InteractionFactory(content="do not touch")

    add = staff_client.get("/admin/accounts/interaction/add/")
    view = staff_client.get(f"/admin/accounts/interaction/{interaction.pk}/change/")
    post = staff_client.post(f"/admin/accounts/interaction/{interaction.pk}/change/", {"content": "changed"})
    delete = staff_client.post(f"/admin/accounts/interaction/{interaction.pk}/delete/", {"post": "yes"})

    assert add.status_code == 403
    assert view.status_code == 200
    assert b'name="content"' not in view.content  # shown, not editable
    assert post.status_code == 403
    assert delete.status_code == 403
    interaction.refresh_from_db()
    assert interaction.content == "do not touch"
