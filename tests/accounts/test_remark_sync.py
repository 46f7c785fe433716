"""A remark set by an admin (in the admin or through the API) is set on WeChat too, by the worker, so WeChat's own
back office shows the same name; a remark WeChat would refuse is refused when it is saved, naming the field."""

from __future__ import annotations

import pytest

from accounts.models import Subscriber
from tests.helpers import client_as, wait_for

UPDATE_REMARK = "/cgi-bin/user/info/updateremark"

pytestmark = pytest.mark.usefixtures("english")


def test_a_remark_changed_through_the_api_reaches_wechat(fake_wechat, celery_worker, django_user_model):
    (openid,) = fake_wechat.add_users([{"openid": "oRemark_follower_00000000001", "subscribe": 1}])
    sub = Subscriber.objects.create(openid=openid, is_following=True)
    api = client_as(django_user_model, "admin")

    response = api.patch(f"/api/subscribers/{sub.pk}/", {"remark": "李老师 VIP"}, format="json")

    assert response.status_code == 200, response.content
    wait_for(
        lambda: (fake_wechat.user(openid) or {}).get("remark") == "李老师 VIP",
        timeout=30,
        message=f"the remark did not reach WeChat\n{celery_worker.log()[-3000:]}",
    )
    # The same remark again is no change: nothing more is sent.
    api.patch(f"/api/subscribers/{sub.pk}/", {"remark": "李老师 VIP"}, format="json")
    assert len(fake_wechat.calls(UPDATE_REMARK, errcode=0)) == 1  # a refused stale token may precede it


def test_a_remark_longer_than_wechat_takes_is_refused_naming_the_field(fake_wechat, django_user_model, db):
    sub = Subscriber.objects.create(openid="oRemark_follower_00000000002", is_following=True, remark="kept")
    api = client_as(django_user_model, "admin")

    response = api.patch(f"/api/subscribers/{sub.pk}/", {"remark": "一二三四五六七八九十一"}, format="json")

    assert response.status_code == 400
    assert "remark" in response.json()["extra"]["fields"]
    sub.refresh_from_db()
    assert sub.remark == "kept"
    assert fake_wechat.calls(UPDATE_REMARK) == []


@pytest.mark.django_db
def test_wechat_refuses_a_remark_for_someone_who_left(fake_with_token):
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatError

    (openid,) = fake_with_token.add_users([{"openid": "oRemark_leaver_000000000001", "subscribe": 0}])
    with pytest.raises(WeChatError) as refused:
        get_client().user_remark_set(openid, "left")
    assert refused.value.errcode == 43004
