"""WeChat's statistics: pulled over a date range within datacube's limits, stored, and compared period over period
in the API and the admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from publishing.models import AccountDailyStat, ArticleDailyStat
from publishing.services.stats import wechat_today

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def _followers(fake, days_ago: list[int], *, scene: str = "ADD_SCENE_QR_CODE") -> None:
    now = timezone.now().timestamp()
    fake.add_users(
        [{"openid": f"oStat{i:04d}{d}", "subscribe_time": int(now - d * 86400), "subscribe_scene": scene}
         for i, d in enumerate(days_ago)]
    )  # fmt: skip


def test_a_range_is_pulled_in_the_pieces_datacube_allows_and_stored(staff_client, fake):
    _followers(fake, [1, 2, 2, 5, 9, 10])
    today = wechat_today()
    begin, end = today - dt.timedelta(days=10), today - dt.timedelta(days=1)

    response = staff_client.post(
        "/api/wechat-stats/pull/", {"begin": begin.isoformat(), "end": end.isoformat()}, content_type="application/json"
    )

    assert response.status_code == 200, response.json()
    summaries = fake.calls("/datacube/getusersummary")
    assert len(summaries) == 2 and all(c["errcode"] == 0 for c in summaries)  # 10 days: 7 + 3
    assert len(fake.calls("/datacube/getarticlesummary")) == 10 and len(fake.calls("/datacube/getuserread")) == 4
    followers = AccountDailyStat.objects.filter(report=AccountDailyStat.Report.FOLLOWERS)
    assert sum(followers.values_list("new_user", flat=True)) == 6
    assert set(followers.values_list("source", flat=True)) == {"30"}  # scanned a QR code
    assert AccountDailyStat.objects.filter(report=AccountDailyStat.Report.CUMULATE).count() == 10
    again = staff_client.post(
        "/api/wechat-stats/pull/", {"begin": begin.isoformat(), "end": end.isoformat()}, content_type="application/json"
    )
    assert again.status_code == 200 and sum(followers.values_list("new_user", flat=True)) == 6  # replaced, not added


def test_today_is_not_available_yet_and_is_refused_before_any_call(staff_client, fake):
    today = wechat_today().isoformat()

    response = staff_client.post("/api/wechat-stats/pull/", {"begin": today, "end": today}, "application/json")

    assert response.status_code == 400 and "before today" in str(response.json())
    assert fake.count() == 0


def test_the_last_7_days_are_compared_with_the_7_before_in_the_api_and_the_admin(staff_client, fake):
    _followers(fake, [1, 2, 3, 9])
    today = wechat_today()
    staff_client.post(
        "/api/wechat-stats/pull/",
        {"begin": (today - dt.timedelta(days=14)).isoformat(), "end": (today - dt.timedelta(days=1)).isoformat()},
        content_type="application/json",
    )

    compared = staff_client.get("/api/wechat-stats/compare/?days=7").json()

    assert compared["current"]["new"] == 3 and compared["previous"]["new"] == 1
    assert compared["change"]["new"] == 2.0
    assert compared["current"]["cumulative"] == 4 and compared["current"]["by_source"][0]["name"] == "qr_code"
    assert staff_client.get("/api/wechat-stats/compare/?days=5").status_code == 400
    page = staff_client.get("/admin/publishing/accountdailystat/?compare=7").content.decode()
    assert "The last 7 days against the 7 before" in page and "+200.0%" in page
    assert ArticleDailyStat.objects.count() == 0
