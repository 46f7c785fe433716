"""Database expressions shared by the subscriber model and its migrations."""

from django.db import NotSupportedError, models


class StageDelay(models.Func):
    """Microseconds from reaching the next-to-last of `stages` to reaching the last, for a generated column.

    `stages` are the timestamp columns of the funnel steps in order (the first is the follow). Each step counts from
    the latest of the steps before it, so a step reached early never gives a negative delay; the value is NULL until
    every step after the first is reached. Written per database because the generated column is computed by it:
    PostgreSQL (production and CI) and SQLite (the embedded default).
    """

    output_field = models.BigIntegerField(null=True)

    def __init__(self, *stages):
        if len(stages) < 2:
            raise ValueError("StageDelay needs the follow column and at least one later stage column.")
        super().__init__(*(models.F(stage) for stage in stages))

    def _columns(self, compiler, connection):
        columns, params = [], []
        for expression in self.get_source_expressions():
            sql, expression_params = compiler.compile(expression)
            columns.append(sql)
            params.extend(expression_params)
        return columns, params

    @staticmethod
    def _latest(columns, function):
        return columns[0] if len(columns) == 1 else f"{function}({', '.join(columns)})"

    def _case(self, columns, delay_sql):
        required = " AND ".join(f"{column} IS NOT NULL" for column in columns[1:])
        return f"CASE WHEN {required} THEN {delay_sql} END"

    def as_postgresql(self, compiler, connection, **extra_context):
        columns, params = self._columns(compiler, connection)
        until, since = self._latest(columns, "GREATEST"), self._latest(columns[:-1], "GREATEST")
        return self._case(columns, f"(extract(epoch FROM {until} - {since}) * 1000000)::bigint"), params

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores datetimes as "YYYY-MM-DD HH:MM:SS[.ffffff]" text in UTC, which sorts like time; SQLite's scalar
        # MAX() is NULL when any argument is (the CASE already requires every later stage). Whole seconds come from
        # strftime (its % doubled: Django %-formats DDL), microseconds from the text itself, as julianday() would be
        # off by some microseconds.
        columns, params = self._columns(compiler, connection)
        until, since = self._latest(columns, "MAX"), self._latest(columns[:-1], "MAX")

        def seconds(value):
            return f"CAST(strftime('%%s', {value}) AS INTEGER)"

        def micros(value):
            return f"CAST(substr({value} || '.000000', 21, 6) AS INTEGER)"

        delay = f"(({seconds(until)} - {seconds(since)}) * 1000000 + {micros(until)} - {micros(since)})"
        return self._case(columns, delay), params

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"StageDelay is written for PostgreSQL and SQLite, not {connection.vendor}.")
