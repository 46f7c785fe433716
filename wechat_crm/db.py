"""Database helpers shared by the apps: where report reads go, and many rows updated in one statement.

Reports and exports read from a PostgreSQL replica when one is configured (REPORTS_DATABASE_URL).

Every read made inside `reports_database()` (or a function decorated with `@reads_reports`) goes to the `reports`
alias when settings.DATABASES has one, and to `default` otherwise; writes always go to `default`. Report selectors
and exports are decorated; nothing else is, so the callback, the follow-ups and the admin's forms keep reading the
primary (a replica lags behind it by a moment, which a report can afford and a read-modify-write cannot).
Raw SQL asks `reports_alias()` which connection to use.

`rows_update(rows, fields, only_if=...)` saves some columns of many rows of one model in one UPDATE ... FROM
(VALUES ...): the profile fetch stores profiles with it, the outbound queue its messages' outcomes.

`rows_insert(rows, ignore_conflicts=..., returning=...)` inserts many new rows of one model in one statement that is
the same text for any number of rows (INSERT ... SELECT FROM unnest(one array per column)), server-side prepared:
the journeys' enrollments, step runs and messages.

`rows_by_id(values_queryset, field=..., ids=...)` reads a page's rows by id with one index probe per id: the send
policy's subscriber facts and the notice consent check use it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.expressions import RawSQL

from .lookups import AnyOf

REPORTS = "reports"
_reading_reports: ContextVar[bool] = ContextVar("reading_reports", default=False)
F = TypeVar("F", bound=Callable[..., Any])


def reports_alias() -> str:
    """The alias reads go to right now: `reports` inside reports_database() when it is configured, else default."""
    if _reading_reports.get() and REPORTS in connections.settings:
        return REPORTS
    return DEFAULT_DB_ALIAS


@contextmanager
def reports_database() -> Iterator[str]:
    token = _reading_reports.set(True)
    try:
        yield reports_alias()
    finally:
        _reading_reports.reset(token)


def reads_reports(func: F) -> F:
    """Run `func` with its reads on the reports database (see reports_database)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with reports_database():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ReportsRouter:
    """settings.DATABASE_ROUTERS: reads inside reports_database() go to the replica, everything else to default."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        alias = reports_alias()
        return alias if alias != DEFAULT_DB_ALIAS else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPORTS else None  # a replica is migrated by replication, never by us


def rows_update(rows: Sequence[models.Model], fields: Sequence[str], *, only_if: dict[str, Any] | None = None) -> int:
    """Save `fields` of many rows of one model in one statement: UPDATE ... FROM (VALUES ...) on PostgreSQL
    (Django's bulk_update builds a CASE per field and row, which costs more to compile than to run). `only_if`:
    only the rows whose columns still hold these values (e.g. {"status": "sending"}: rows this worker claimed).
    Returns the rows updated."""
    if not rows:
        return 0
    model = type(rows[0])
    if connection.vendor != "postgresql":
        if only_if:
            return sum(
                model.objects.filter(pk=row.pk, **only_if).update(**{name: getattr(row, name) for name in fields})
                for row in rows
            )
        return model.objects.bulk_update(rows, fields, batch_size=500)
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    qn = connection.ops.quote_name
    columns = ", ".join(["id", *(f"c{i}" for i in range(len(concrete)))])
    placeholders = "(" + ", ".join(["%s"] * (len(concrete) + 1)) + ")"
    params: list[Any] = []
    for row in rows:
        params.append(row.pk)
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in concrete]
    sets = ", ".join(f"{qn(f.column)} = v.c{i}::{f.db_type(connection)}" for i, f in enumerate(concrete))
    sql = (
        f"UPDATE {qn(meta.db_table)} AS t SET {sets} "  # noqa: S608 - identifiers from the model, values as parameters
        f"FROM (VALUES {', '.join([placeholders] * len(rows))}) AS v({columns}) WHERE t.id = v.id::bigint"
    )
    for name, value in (only_if or {}).items():
        field = meta.get_field(name)
        sql += f" AND t.{qn(field.column)} = %s"
        params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def rows_insert(
    rows: Sequence[models.Model], *, ignore_conflicts: bool = False, returning: Sequence[str] = ()
) -> list[tuple]:
    """Insert new rows of one model (their primary keys unset) in one statement, as bulk_create does, and return the
    `returning` columns (attnames) of the rows inserted (with `ignore_conflicts`, a row a unique constraint refused
    is skipped and not returned).

    On PostgreSQL one INSERT ... SELECT FROM unnest(%s::type[], ...) [ON CONFLICT DO NOTHING] RETURNING ...: one
    array per column, so the statement's text does not depend on the number of rows and is prepared server-side,
    parsed and planned once per connection, where bulk_create sends a VALUES list of one parameter per row and
    column that PostgreSQL parses and plans every time. Elsewhere bulk_create (`returning` then needs the rows'
    primary keys back, which only PostgreSQL gives with ignore_conflicts: none is returned then)."""
    if not rows:
        return []
    model = type(rows[0])
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    if connection.vendor != "postgresql":
        model.objects.bulk_create(rows, ignore_conflicts=ignore_conflicts)
        if ignore_conflicts:
            return []
        return [tuple(getattr(row, meta.get_field(name).attname) for name in returning) for row in rows]
    qn = connection.ops.quote_name
    columns = [[f.get_db_prep_save(f.pre_save(row, True), connection) for row in rows] for f in fields]
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608 - identifiers from the model
        f"SELECT * FROM unnest({', '.join(f'%s::{f.db_type(connection)}[]' for f in fields)})"
    )
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(qn(meta.get_field(name).column) for name in returning)}"
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, columns, prepare=True)
        fetched = cursor.fetchall() if returning else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return fetched


def rows_by_id(queryset: models.QuerySet, *, field: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The rows of a values() queryset whose `field` is one of `ids`, named and converted as values() gives them.

    On PostgreSQL one index probe per id (`unnest(ids) CROSS JOIN LATERAL (...)`: a nested loop whatever the planner's
    statistics say). Filtered as `field = ANY(ids)`, a table the planner has no statistics for yet (a fresh import,
    autovacuum behind, a new template's consents) is read whole for every page: 8-14 ms instead of about 1 ms for
    250 of 10,000 subscribers, and growing with the table. Elsewhere `field IN (ids)`."""
    db = queryset.db
    if connections[db].vendor != "postgresql":
        return list(queryset.filter(AnyOf(field, ids)))
    query = queryset.filter(**{field: RawSQL("u.id", ())}).order_by().query
    compiler = query.get_compiler(using=db)
    probe, params = compiler.as_sql()
    sql = f"SELECT p.* FROM unnest(%s::bigint[]) AS u(id) CROSS JOIN LATERAL ({probe}) p"  # noqa: S608
    with connections[db].cursor() as cursor:
        cursor.execute(sql, [list(ids), *params])
        fetched = cursor.fetchall()
    selected = list(query.selected) if query.selected else [*query.values_select, *query.annotation_select]
    return [dict(zip(selected, row, strict=True)) for row in compiler.results_iter(results=[fetched])]
