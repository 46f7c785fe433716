import pytest

from content import links, templating


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    """TrackedLink ids and compiled templates are cached per process; each test has its own rows."""
    links.cache_clear()
    templating.cache_clear()
    yield
    links.cache_clear()
    templating.cache_clear()


@pytest.fixture
def staff_client(client, db):
    from .factories import StaffFactory

    client.force_login(StaffFactory())
    return client
