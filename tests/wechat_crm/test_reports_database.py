"""Reports and exports read from a replica when REPORTS_DATABASE_URL adds one (wechat_crm/db.py); everything else,
and every write, stays on the primary.

The replica here is a second alias on the same test database, so the rows the test writes through `default` are
there to read; which connection ran each query tells where the router sent it."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Subscriber
from campaigns import attribution_reports, funnel
from campaigns.models import Campaign, Channel
from campaigns.summary import summary_rebuild
from content import selectors as content_selectors
from content.models import Push
from wechat_crm.db import reports_alias, reports_database

pytestmark = pytest.mark.django_db(transaction=True)  # committed rows: the replica's connection must see them


@pytest.fixture
def replica():
    """The `reports` alias REPORTS_DATABASE_URL would add, pointing at the test database."""
    connections.settings["reports"] = {**connections.settings["default"]}
    connections["reports"].connect()  # the test case only allows connections to the aliases it knew at its start
    yield connections["reports"]
    connections["reports"].close()
    del connections["reports"]
    del connections.settings["reports"]


@pytest.fixture
def followers():
    channel = Channel.objects.create(name="Poster", scene_str="poster")
    now = timezone.now()
    for i in range(3):
        Subscriber.objects.create(
            openid=f"o_replica_{i}", is_following=True, subscribed_at=now, followed_at=now, source_channel=channel
        )
    summary_rebuild()  # stage columns written here, not by the stage maintenance
    return channel


def on_each(replica):
    return CaptureQueriesContext(connections["default"]), CaptureQueriesContext(replica)


def test_the_funnel_report_reads_the_replica(replica, followers):
    query = funnel.funnel_query(start=None, end=None, window_days=None, breakdown="channel")
    primary, reports = on_each(replica)
    with primary, reports:
        report = funnel.funnel_report(query=query)

    assert report["steps"][0]["count"] == 3
    assert report["groups"][0]["label"] == "Poster"
    assert reports.captured_queries
    assert primary.captured_queries == []


def test_the_push_report_and_the_campaign_summary_read_the_replica(replica, followers):
    push = Push.objects.create(name="Spring push")
    campaign = Campaign.objects.create(name="Spring", starts_on=timezone.localdate())
    campaign.channels.add(followers)
    primary, reports = on_each(replica)
    with primary, reports:
        content_selectors.push_report(push=push)
        summary = attribution_reports.campaign_summary(campaign=campaign)

    assert summary["follows"] == 3
    assert reports.captured_queries
    assert primary.captured_queries == []


def test_writes_and_other_reads_stay_on_the_primary(replica, followers):
    primary, reports = on_each(replica)
    with primary, reports:
        assert Subscriber.objects.count() == 3
        with reports_database():
            Subscriber.objects.create(openid="o_written_during_a_report", is_following=True)

    assert len(primary.captured_queries) == 2
    assert reports.captured_queries == []


def test_without_a_replica_reports_read_the_primary(followers):
    with reports_database() as alias:
        assert alias == reports_alias() == "default"
        report = funnel.funnel_report(query=funnel.funnel_query(start=None, end=None, window_days=None))
    assert report["steps"][0]["count"] == 3
