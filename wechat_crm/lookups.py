"""`AnyOf`: a filter on a long list of values as ONE parameter.

`filter(pk__in=ids)` with a page's 250 ids is a statement with 250 placeholders, which psycopg parses again on every
call (it caches statements of up to 50 parameters); `filter(AnyOf("pk", ids))` is `pk = ANY(%s)` with the list as one
array parameter on PostgreSQL (the same rows), and `IN (...)` elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import F, Lookup


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs: Any, rhs: Iterable[Any]):
        super().__init__(F(lhs) if isinstance(lhs, str) else lhs, list(rhs))

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [v if type(v) is int else field.get_db_prep_value(v, connection, prepared=False) for v in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            raise EmptyResultSet
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
