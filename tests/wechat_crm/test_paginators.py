"""The admin's lists of huge tables never count the whole table (wechat_crm/paginators.py)."""

import pytest
from django.db import connection

from accounts.models import Subscriber
from tests.accounts.factories import SubscriberFactory
from wechat_crm import paginators
from wechat_crm.paginators import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


def test_an_unfiltered_list_of_a_huge_table_is_paginated_by_the_planners_estimate(
    monkeypatch, django_assert_num_queries
):
    SubscriberFactory.create_batch(5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_subscriber")
    monkeypatch.setattr(paginators, "ESTIMATE_ABOVE", 2)  # 5 rows stand for millions

    paginator = EstimatedCountPaginator(Subscriber.objects.order_by("-pk"), 2)
    with django_assert_num_queries(1) as ctx:
        assert paginator.count == 5
    assert "count(" not in ctx.captured_queries[0]["sql"].lower()
    assert paginator.num_pages == 3


def test_a_filtered_list_is_counted_up_to_the_cap(monkeypatch):
    SubscriberFactory.create_batch(6, is_following=True)
    SubscriberFactory.create_batch(2, is_following=False)
    monkeypatch.setattr(paginators, "COUNT_CAP", 3)

    following = EstimatedCountPaginator(Subscriber.objects.filter(is_following=True).order_by("pk"), 2)
    left = EstimatedCountPaginator(Subscriber.objects.filter(is_following=False).order_by("pk"), 2)

    assert following.count == 4  # the cap and one more: "more than 3"
    assert left.count == 2


def test_a_small_table_is_counted_exactly():
    SubscriberFactory.create_batch(3)

    assert EstimatedCountPaginator(Subscriber.objects.order_by("pk"), 2).count == 3
