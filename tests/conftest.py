"""Shared test set-up. Fixtures live in tests/fixtures/ and are registered here."""

import pytest

pytest_plugins = [
    "tests.fixtures.wechat_payloads",
    "tests.fixtures.fake_wechat",
    "tests.fixtures.celery_worker",
    "tests.fixtures.wsgi",
    "tests.fixtures.embedded",
    "tests.fixtures.quiet_hours",
]


def _seed_after_flush(sender, using="default", **kwargs) -> None:
    """A transactional test ends with a flush of every table, which also removes the rows a data migration seeded (the
    built-in conversion types and the funnel settings row of campaigns/migrations/0003; the role groups come back
    through the product's own post_migrate). In one process pytest-django runs transactional tests last, so nothing
    after them needs those rows; under pytest-xdist (`make test`) a process runs whole modules in turn, and a later
    module would find them gone. The flush sends post_migrate (pytest-django sets no available_apps): seeded again
    here by the migration's own code."""
    if sender.label != "campaigns":
        return
    import importlib

    from django.apps import apps

    importlib.import_module("campaigns.migrations.0003_conversion_types_settings_roles").defaults_seed(apps, using)


def pytest_configure(config):
    from django.db.models.signals import post_migrate

    post_migrate.connect(_seed_after_flush, dispatch_uid="tests.seed_after_flush")


@pytest.fixture(autouse=True)
def _fresh_reply_caches():
    """The callback keeps the auto-reply rules and channel welcomes in the process for a few seconds; a test's
    rows are gone after it (rolled back or flushed, without signals), so neither copy may reach the next test."""
    from campaigns.selectors import channel_welcome_cache_clear
    from conversations.replies import rules_cache_clear

    channel_welcome_cache_clear()
    rules_cache_clear()
    yield
    channel_welcome_cache_clear()
    rules_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    """TrackedLink ids (by URL) and compiled templates are cached per process, and each test has its own rows: a
    link id another test left would sign this test's clicks for a link its database does not have, and the click
    buffer's drain would store nothing for them. Every test, not only tests/content's: under pytest-xdist a process
    runs modules of every directory in turn."""
    from content import links, templating

    links.cache_clear()
    templating.cache_clear()
    yield
    links.cache_clear()
    templating.cache_clear()


@pytest.fixture(autouse=True)
def _empty_click_buffer():
    """Tracked-link clicks an earlier test left in the click buffer (content.clicks) never reach this test's rows,
    and its click-window markers (ids restart with each test database) do not make this test's clicks repeats."""
    from content import clicks

    clicks.buffer_clear(markers=True)
    yield


@pytest.fixture
def staff_user(django_user_model):
    """A superuser (staff, every permission)."""
    return django_user_model.objects.create_superuser(username="operator", password="pw", email="o@example.com")


@pytest.fixture
def staff_client(client, staff_user):
    """The test client logged in as `staff_user` (for the admin)."""
    client.force_login(staff_user)
    return client


@pytest.fixture
def staff_api(staff_user):
    """An API client authenticated as `staff_user`; `.user` is that user."""
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(staff_user)
    api.user = staff_user
    return api


@pytest.fixture
def anonymous_api():
    """An API client that is not logged in."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def english(settings):
    """For tests that assert the product's English source strings (the product defaults to zh-hans): use it with
    `pytest.mark.usefixtures("english")`."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield
