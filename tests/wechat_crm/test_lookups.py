import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Subscriber
from tests.accounts.factories import SubscriberFactory
from wechat_crm.lookups import AnyOf

pytestmark = pytest.mark.django_db


def test_any_of_a_long_list_finds_the_same_rows_as_in_with_one_parameter():
    subscribers = SubscriberFactory.create_batch(5)
    wanted = [s.pk for s in subscribers[:3]] + list(range(10**6, 10**6 + 300))  # 303 ids, most of them nobody's

    with CaptureQueriesContext(connection) as queries:
        found = set(Subscriber.objects.filter(AnyOf("pk", wanted)).values_list("pk", flat=True))

    assert found == set(Subscriber.objects.filter(pk__in=wanted).values_list("pk", flat=True)) == set(wanted[:3])
    if connection.vendor == "postgresql":
        assert "= ANY(" in queries[0]["sql"]


def test_any_of_nothing_is_no_row_and_updates_none():
    SubscriberFactory.create_batch(2)

    assert not Subscriber.objects.filter(AnyOf("pk", [])).exists()
    assert Subscriber.objects.filter(AnyOf("pk", [])).update(nickname="x") == 0
    assert not Subscriber.objects.filter(nickname="x").exists()
