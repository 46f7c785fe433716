"""The subscribers API: id and detail, remark / tags / attributes / preferences read and written through the
accounts service, filters, bulk tagging; each role; bad input is a JSON 4xx naming the field."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Subscriber, Tag
from content.models import Topic
from tests.helpers import client_as

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def admin_api(django_user_model):
    return client_as(django_user_model, "admin")


@pytest.fixture
def people():
    vip, trial = Tag.objects.create(name="vip"), Tag.objects.create(name="trial")
    Topic.objects.create(name="Travel", slug="travel")
    Topic.objects.create(name="Food", slug="food")
    rows = {}
    for i, (score, following, day) in enumerate([(5, True, 2), (40, True, 10), (90, False, 20)]):
        at = datetime(2026, 3, day, 9, tzinfo=SH)
        rows[i] = Subscriber.objects.create(
            openid=f"o_api_{i}",
            nickname=f"Nick {i}",
            score=score,
            is_following=following,
            subscribed_at=at,
            followed_at=at,
        )
    rows[0].tags.add(vip)
    rows[1].tags.add(vip, trial)
    return rows


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(r["openid"] for r in response.json()["results"])


def test_list_and_detail_show_id_tags_attributes_preferences_remark_and_score(admin_api, people):
    people[1].attributes = {"city": "Hangzhou"}
    people[1].remark = "Ms Li"
    people[1].save()
    row = next(r for r in admin_api.get("/api/subscribers/").json()["results"] if r["openid"] == "o_api_1")
    assert row["id"] == people[1].pk
    detail = admin_api.get(f"/api/subscribers/{people[1].pk}/").json()
    assert detail == row
    assert detail["tags"] == ["trial", "vip"]
    assert detail["attributes"] == {"city": "Hangzhou"}
    assert detail["remark"] == "Ms Li" and detail["display_name"] == "Ms Li" and detail["score"] == 40
    assert detail["preferences"] == {
        "topics_preferred": [],
        "topics_opted_out": [],
        "max_pushes_per_week": None,
        "pushes_paused": False,
    }
    assert admin_api.get("/api/subscribers/999999/").status_code == 404


def test_patch_changes_remark_tags_attributes_and_preferences(admin_api, people):
    sub = people[0]
    sub.attributes = {"city": "Hangzhou", "plan": "free"}
    sub.save()
    response = admin_api.patch(
        f"/api/subscribers/{sub.pk}/",
        {
            "remark": "  VIP from the expo ",
            "tags": ["trial"],
            "attributes": {"plan": "pro", "city": None, "orders": 3},
            "preferences": {"topics_preferred": ["travel"], "topics_opted_out": ["food"], "max_pushes_per_week": 2},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["remark"] == "VIP from the expo" and body["display_name"] == "VIP from the expo"
    assert body["tags"] == ["trial"]
    assert body["attributes"] == {"plan": "pro", "orders": 3}
    assert body["preferences"]["topics_preferred"] == ["travel"]
    assert body["preferences"]["topics_opted_out"] == ["food"]
    assert body["preferences"]["max_pushes_per_week"] == 2 and body["preferences"]["pushes_paused"] is False
    sub.refresh_from_db()
    assert sub.remark == "VIP from the expo" and sub.attributes == {"plan": "pro", "orders": 3}
    assert list(sub.tags.values_list("name", flat=True)) == ["trial"]
    # What is not sent stays.
    body = admin_api.patch(f"/api/subscribers/{sub.pk}/", {"preferences": {"pushes_paused": True}}, format="json")
    assert body.json()["remark"] == "VIP from the expo" and body.json()["tags"] == ["trial"]
    assert body.json()["preferences"]["max_pushes_per_week"] == 2 and body.json()["preferences"]["pushes_paused"]
    body = admin_api.patch(f"/api/subscribers/{sub.pk}/", {"preferences": {"max_pushes_per_week": None}}, format="json")
    assert body.json()["preferences"]["max_pushes_per_week"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tags": ["nope"]}, "tags"),
        ({"tags": "vip"}, "tags"),
        ({"remark": "x" * 101}, "remark"),
        ({"attributes": ["a"]}, "attributes"),
        ({"attributes": {"": 1}}, "attributes"),
        ({"attributes": {f"k{i}": i for i in range(101)}}, "attributes"),
        ({"preferences": {"topics_preferred": ["nope"]}}, "preferences"),
        ({"preferences": {"max_pushes_per_week": -1}}, "preferences"),
        ({"preferences": "x"}, "preferences"),
    ],
)
def test_bad_updates_are_a_400_naming_the_field(admin_api, people, payload, field):
    response = admin_api.patch(f"/api/subscribers/{people[0].pk}/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["extra"]["fields"]
    people[0].refresh_from_db()
    assert people[0].remark == "" and set(people[0].tags.values_list("name", flat=True)) == {"vip"}


def test_a_subscriber_cannot_be_replaced_or_deleted(admin_api, people):
    assert admin_api.put(f"/api/subscribers/{people[0].pk}/", {}, format="json").status_code == 405
    assert admin_api.delete(f"/api/subscribers/{people[0].pk}/").status_code == 405


def test_filters_by_tag_stage_channel_follow_dates_following_and_score(admin_api, people):
    people[2].stage = "engaged"
    people[2].remark = "Mr Wang"
    people[2].save()
    assert ids(admin_api.get("/api/subscribers/?tag=vip")) == ["o_api_0", "o_api_1"]
    assert ids(admin_api.get("/api/subscribers/?tag=trial")) == ["o_api_1"]
    assert ids(admin_api.get("/api/subscribers/?stage=engaged")) == ["o_api_2"]
    assert ids(admin_api.get("/api/subscribers/?following=false")) == ["o_api_2"]
    assert ids(admin_api.get("/api/subscribers/?score_min=10&score_max=50")) == ["o_api_1"]
    assert ids(admin_api.get("/api/subscribers/?followed_from=2026-03-05&followed_to=2026-03-15")) == ["o_api_1"]
    assert ids(admin_api.get("/api/subscribers/?q=wang")) == ["o_api_2"]
    assert ids(admin_api.get("/api/subscribers/?channel=999")) == []
    for bad in ("score_min=lots", "followed_from=yesterday", "stage=nope", "following=perhaps", "channel=x"):
        response = admin_api.get(f"/api/subscribers/?{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0] in response.json()["extra"]["fields"]


def test_bulk_tag_and_untag_by_id_and_openid(admin_api, people):
    url = "/api/subscribers/tags/"
    response = admin_api.post(
        url, {"action": "add", "tag": "trial", "subscribers": [people[0].pk, people[1].pk], "openids": ["o_api_2"]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json() == {"tag": "trial", "action": "add", "subscribers": 3, "changed": 2}
    assert ids(admin_api.get("/api/subscribers/?tag=trial")) == ["o_api_0", "o_api_1", "o_api_2"]
    response = admin_api.post(url, {"action": "remove", "tag": "vip", "openids": ["o_api_0", "o_api_2"]}, format="json")
    assert response.json() == {"tag": "vip", "action": "remove", "subscribers": 2, "changed": 1}
    assert ids(admin_api.get("/api/subscribers/?tag=vip")) == ["o_api_1"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "add", "tag": "nope", "subscribers": [1]}, "tag"),
        ({"action": "toggle", "tag": "vip", "subscribers": [1]}, "action"),
        ({"action": "add", "tag": "vip"}, "subscribers"),
        ({"action": "add", "tag": "vip", "subscribers": [999999]}, "subscribers"),
        ({"action": "add", "tag": "vip", "openids": ["o_nobody"]}, "openids"),
        ({"action": "add", "tag": "vip", "subscribers": ["x"]}, "subscribers"),
        ({"action": "add", "tag": "vip", "subscribers": list(range(1, 10_002))}, "subscribers"),
    ],
)
def test_bad_bulk_tagging_is_a_400_naming_the_field_and_changes_nothing(admin_api, people, payload, field):
    response = admin_api.post("/api/subscribers/tags/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["extra"]["fields"]
    assert Subscriber.tags.through.objects.count() == 3


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("marketer", 200, 403), ("operator", 200, 403), ("admin", 200, 200), ("anonymous", 401, 401)],
)
def test_roles(django_user_model, people, role, read, write):
    api = client_as(django_user_model, role)
    assert api.get("/api/subscribers/").status_code == read
    assert api.get(f"/api/subscribers/{people[0].pk}/").status_code == read
    assert api.patch(f"/api/subscribers/{people[0].pk}/", {"remark": "x"}, format="json").status_code == write
    response = api.post(
        "/api/subscribers/tags/", {"action": "add", "tag": "vip", "openids": ["o_api_2"]}, format="json"
    )
    assert response.status_code == write


def test_the_list_takes_the_same_queries_for_two_or_fifty_subscribers(admin_api, people, django_assert_max_num_queries):
    def queries_for_list() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert admin_api.get("/api/subscribers/").status_code == 200
        return len(captured)

    queries_for_list()  # the first request also reads the (forced) user's roles, which stay on the user object
    few = queries_for_list()
    topic = Topic.objects.get(slug="travel")
    for i in range(47):
        sub = Subscriber.objects.create(openid=f"o_more_{i}", attributes={"i": i})
        sub.tags.add(*Tag.objects.all())
        sub.topics_preferred.add(topic)
    assert queries_for_list() == few
    with django_assert_max_num_queries(8):
        admin_api.get("/api/subscribers/")
