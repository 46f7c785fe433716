"""The funnel on the embedded default gives the same numbers as on PostgreSQL.

The same hand-built population (tests/campaigns/funnel_population.py: the small one of test_funnel.py and 240 seeded
random subscribers) is built on PostgreSQL (the suite's database) and on SQLite (a subprocess on the embedded
default); every report, breakdown, filter, drop-off list, attribution table and campaign summary is compared number
by number.
"""

import json

import pytest
from django.db import connection

from tests.campaigns.funnel_population import population_full, reports
from tests.fixtures.embedded import manage

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CODE = (
    "import json\n"
    "from django.db import connection\n"
    "from tests.campaigns.funnel_population import population_full, reports\n"
    "population_full()\n"
    "print('REPORTS ' + json.dumps({'vendor': connection.vendor, 'reports': reports()}, default=str))\n"
)


def sqlite_reports(env) -> dict:
    shell = manage(env, "shell", "-v0", "-c", CODE)
    assert shell.returncode == 0, shell.stderr[-4000:]
    line = next(line for line in shell.stdout.splitlines() if line.startswith("REPORTS "))
    result = json.loads(line.removeprefix("REPORTS "))
    assert result["vendor"] == "sqlite"
    return result["reports"]


def test_every_funnel_report_has_the_same_numbers_on_sqlite_and_postgresql(embedded_env):
    assert connection.vendor == "postgresql"
    population_full()
    on_postgresql = json.loads(json.dumps(reports(), default=str))
    on_sqlite = sqlite_reports(embedded_env[0])

    assert on_sqlite.keys() == on_postgresql.keys()
    assert len(on_postgresql) == 39
    for key, expected in on_postgresql.items():
        assert on_sqlite[key] == expected, key
    # The comparison is not vacuous: every step has people, medians and several groups.
    overall = on_postgresql["breakdown=None|window=30"]["steps"]
    assert [s["count"] for s in overall][-1] > 10
    assert all(s["median_seconds_from_previous"] for s in overall[1:])
    assert len(on_postgresql["breakdown=campaign|window=30"]["groups"]) == 3
    assert len(on_postgresql["breakdown=cohort_week|window=60"]["groups"]) >= 5
