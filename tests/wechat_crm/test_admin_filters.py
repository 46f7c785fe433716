"""Date ranges in the admin's list filters read as the operator means them: in the operator's time zone
(Asia/Shanghai), a day picked without a time meaning the whole day, and a value that cannot be read said so."""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
import zoneinfo

import pytest

from accounts.models import Interaction, Subscriber
from conversations.models import Conversation
from tests.helpers import changelist_cells

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]
INBOX = "/admin/conversations/conversation/"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _wrote_at(name: str, at: dt.datetime) -> None:
    subscriber = Subscriber.objects.create(openid=f"o{name}", remark=name, is_following=True)
    Interaction.objects.create(
        subscriber=subscriber, kind="text", dedupe_key=str(uuid.uuid4()), raw_xml="", created_at=at, received_at=at
    )
    Conversation.objects.create(subscriber=subscriber, unanswered=1, last_inbound_at=at)


@pytest.fixture
def around_midnight() -> None:
    """Four people who wrote around the 11th of November, Shanghai time (UTC+8)."""
    _wrote_at("eve", dt.datetime(2026, 11, 10, 23, 30, tzinfo=SHANGHAI))
    _wrote_at("early", dt.datetime(2026, 11, 11, 0, 30, tzinfo=SHANGHAI))  # 16:30 UTC on the 10th
    _wrote_at("late", dt.datetime(2026, 11, 11, 23, 50, tzinfo=SHANGHAI))
    _wrote_at("next", dt.datetime(2026, 11, 12, 0, 10, tzinfo=SHANGHAI))


def _names(client, query: str) -> tuple[list[str], str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # Django warns when it is handed a naive datetime
        page = client.get(INBOX + query).content.decode()
    return sorted(changelist_cells(page, "name")), page


@pytest.mark.usefixtures("around_midnight")
def test_a_day_without_a_time_means_that_whole_day_in_shanghai(staff_client):
    names, _page = _names(staff_client, "?last_inbound_at_from_0=2026-11-11&last_inbound_at_to_0=2026-11-11")

    assert names == ["early", "late"]


@pytest.mark.usefixtures("around_midnight")
def test_a_date_and_time_are_read_in_shanghai_time(staff_client):
    names, _page = _names(staff_client, "?last_inbound_at_from_0=2026-11-11&last_inbound_at_from_1=00:00")

    assert names == ["early", "late", "next"]


@pytest.mark.usefixtures("around_midnight")
def test_a_date_that_cannot_be_read_is_said_and_the_other_bound_still_applies(staff_client):
    names, page = _names(staff_client, "?last_inbound_at_from_0=11/31/2026&last_inbound_at_to_0=2026-11-11")

    assert "11/31/2026" in page and "is not a date or time this filter can read; not filtered by it" in page
    assert names == ["early", "eve", "late"]
