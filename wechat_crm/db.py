"""Reports and exports read from a PostgreSQL replica when one is configured (REPORTS_DATABASE_URL).

Every read made inside `reports_database()` (or a function decorated with `@reads_reports`) goes to the `reports`
alias when settings.DATABASES has one, and to `default` otherwise; writes always go to `default`. Report selectors
and exports are decorated; nothing else is, so the callback, the follow-ups and the admin's forms keep reading the
primary (a replica lags behind it by a moment, which a report can afford and a read-modify-write cannot).
Raw SQL asks `reports_alias()` which connection to use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

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
