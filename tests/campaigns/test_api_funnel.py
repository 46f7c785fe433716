"""The funnel through the API and the admin report page (the hand-built population of tests/campaigns/test_funnel)."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from tests.campaigns.test_funnel import population  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


RANGE = "from=2026-03-01&to=2026-03-31&window_days=30"


@pytest.fixture
def marketer(django_user_model):
    user = django_user_model.objects.create_user(username="marketer", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    return user


@pytest.fixture
def marketer_api(marketer):
    client = APIClient()
    client.force_authenticate(marketer)
    return client


def test_funnel_api_with_a_breakdown(marketer_api, population):  # noqa: F811
    response = marketer_api.get(f"/api/funnel/?{RANGE}&breakdown=channel")
    assert response.status_code == 200
    body = response.json()
    assert body["from"] == "2026-03-01" and body["window_days"] == 30
    assert [s["count"] for s in body["steps"]] == [6, 4, 2, 1]
    assert body["steps"][1] == {
        "step": "engaged",
        "label": "Engaged",
        "count": 4,
        "conversion_from_previous": 0.6667,
        "conversion_from_first": 0.6667,
        "median_seconds_from_previous": 3600.0,
        "dropoff": 2,
    }
    assert {g["label"]: [s["count"] for s in g["steps"]] for g in body["groups"]} == {
        "Poster A": [3, 2, 1, 1],
        "Poster B": [2, 2, 1, 0],
        "(none)": [1, 0, 0, 0],
    }


def test_funnel_api_filters(marketer_api, population):  # noqa: F811
    body = marketer_api.get(f"/api/funnel/?{RANGE}&campaign={population['c1'].pk}&tag=vip").json()
    assert [s["count"] for s in body["steps"]] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "query",
    ["breakdown=nope", "from=2026-04-01&to=2026-03-01", "window_days=0", "from=yesterday", "channel=abc"],
)
def test_bad_funnel_parameters_are_a_json_400(marketer_api, query):
    response = marketer_api.get(f"/api/funnel/?{query}")
    assert response.status_code == 400 and response.json()["message"]


def test_dropoffs_paginated_and_as_csv(marketer_api, population):  # noqa: F811
    body = marketer_api.get(f"/api/funnel/dropoffs/?{RANGE}&step=engaged").json()
    assert body["count"] == 2 and [r["openid"] for r in body["results"]] == ["o_a2", "o_b2"]
    for response in (
        marketer_api.get(f"/api/funnel/dropoffs/?{RANGE}&step=engaged&format=csv"),
        marketer_api.get(f"/api/funnel/dropoffs/?{RANGE}&step=engaged", HTTP_ACCEPT="text/csv"),
    ):
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [r["openid"] for r in rows] == ["o_a2", "o_b2"] and rows[1]["source_channel"] == "Poster B"
    assert marketer_api.get(f"/api/funnel/dropoffs/?{RANGE}&step=converted").status_code == 400


def test_campaign_summary_api(marketer_api, population):  # noqa: F811
    body = marketer_api.get(f"/api/campaigns/{population['c2'].pk}/summary/").json()
    assert body["follows"] == 5 and body["conversions"] == 3 and body["revenue"] == "150.00"


def test_admin_report_page_and_csv(client, marketer, population):  # noqa: F811
    client.force_login(marketer)
    page = client.get("/admin/campaigns/funnelreport/?start=2026-03-01&end=2026-03-31&window_days=30")
    assert page.status_code == 200
    assert page.context["chart_data"]["steps"][0] == {"label": "Followed", "count": 6}
    assert [c["label"] for c in page.context["chart_data"]["cohorts"]] == ["2026-03-02", "2026-03-09"]
    assert b"campaigns/funnel_chart.js" in page.content
    # no script or stylesheet from another host (no CDN): the admin works offline
    assert not re.search(rb'<(script|link)[^>]+(src|href)="(https?:)?//', page.content)
    rows = {r["label"]: r for r in page.context["channel_rows"]}
    assert rows["Poster A"]["counts"] == [3, 2, 1, 1] and str(rows["Poster A"]["revenue"]) == "100.00"
    filtered = client.get(
        f"/admin/campaigns/funnelreport/?start=2026-03-01&end=2026-03-31&channel={population['b'].pk}"
    )
    assert [s["count"] for s in filtered.context["overall"]["steps"]] == [2, 2, 1, 0]
    download = client.get("/admin/campaigns/funnelreport/?start=2026-03-01&end=2026-03-31&format=csv")
    assert download["Content-Type"].startswith("text/csv")
    text = download.content.decode()
    assert "funnel,,followed,6" in text and "Poster A,3,2,1,1" in text
    bad = client.get("/admin/campaigns/funnelreport/?start=2026-04-01&end=2026-03-01")
    assert bad.status_code == 200 and "must not be after" in bad.content.decode()


def test_subscribers_api_filters_by_stage_channel_tag_and_follow_date(marketer_api, population):  # noqa: F811
    def openids(query: str) -> list[str]:
        response = marketer_api.get(f"/api/subscribers/?{query}")
        assert response.status_code == 200
        return sorted(r["openid"] for r in response.json()["results"])

    assert openids("stage=converted") == ["o_a1", "o_b1", "o_b2"]
    assert openids(f"channel={population['a'].pk}") == ["o_a1", "o_a2", "o_a3"]
    assert openids("tag=vip") == ["o_a1", "o_b1"]
    assert openids("followed_from=2026-03-09&followed_to=2026-03-10") == ["o_b1", "o_b2"]
    assert openids("is_following=true&stage=engaged") == ["o_a2"]
    row = marketer_api.get("/api/subscribers/?stage=engaged").json()["results"][0]
    assert row["engaged_at"] and row["stage"] == "engaged" and row["source_channel"] == population["a"].pk
    assert marketer_api.get("/api/subscribers/?stage=nope").status_code == 400
