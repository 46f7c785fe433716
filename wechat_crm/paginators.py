"""A paginator for the lists of huge tables (the admin's interactions, subscribers, deliveries and inbox; the API's
interactions).

Django's changelist counts its queryset for the paginator: on a table of ten million rows that count is most of the
page's time (seconds), and nobody pages to the end of it. Here:
- an unfiltered list of a table PostgreSQL estimates above ESTIMATE_ABOVE rows is paginated by the planner's
  estimate (pg_class.reltuples, kept fresh by autovacuum's ANALYZE), read in a fraction of a millisecond;
- any other list counts exactly, but at most COUNT_CAP rows (a bounded subquery): past that the last page offered is
  the cap's, and a search or a filter narrows the list.
With `show_full_result_count = False` on the admin class, no other count of the whole table is made.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination

ESTIMATE_ABOVE = 100_000
COUNT_CAP = 10_000


def estimated_rows(model, using: str = "default") -> int | None:
    """PostgreSQL's estimate of the table's rows, or None (another database, or a table never analysed)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return super().count
        if not queryset.query.has_filters():
            estimate = estimated_rows(queryset.model, queryset.db)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        return queryset.order_by()[: COUNT_CAP + 1].count()


class EstimatedCountPagination(PageNumberPagination):
    """The API's page-number pagination with the same counts: `count` is the planner's estimate for an unfiltered
    huge table, and at most COUNT_CAP + 1 for a filtered list."""

    django_paginator_class = EstimatedCountPaginator
