"""The admin funnel page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python package):
a marketer logs in, opens the report and sees the charts drawn by our own static JavaScript with the right counts."""

import pytest
from django.contrib.auth.models import Group

from tests.campaigns.test_funnel import population  # noqa: F401  (the fixture)
from tests.helpers import migration_data_restore

pytestmark = [pytest.mark.usefixtures("english"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _migration_data(transactional_db):
    """The role groups and conversion types come from migrations; an earlier transactional test flushed them."""
    migration_data_restore()


def test_marketer_sees_the_funnel_chart_with_the_step_counts(
    live_server,
    django_user_model,
    population,  # noqa: F811
    browser,
    screenshot,
):
    user = django_user_model.objects.create_user(username="mia", password="s3cret-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    page = browser.new_page()
    page.set_default_timeout(60_000)
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "s3cret-pass")
    page.click("form [type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("a[href='/admin/campaigns/funnelreport/']").count() >= 1

    page.goto(f"{live_server.url}/admin/campaigns/funnelreport/?start=2026-03-01&end=2026-03-31&window_days=30")
    page.wait_for_selector("#funnel-chart svg g.step")
    steps = page.locator("#funnel-chart g.step")
    assert [steps.nth(i).get_attribute("data-count") for i in range(steps.count())] == ["6", "4", "2", "1"]
    assert page.locator("#funnel-chart text.count").all_text_contents() == ["6", "4", "2", "1"]
    widths = [
        float(w)
        for w in page.locator("#funnel-chart rect.bar").evaluate_all("els => els.map(e => e.getAttribute('width'))")
    ]
    assert widths[0] > widths[1] > widths[2] > widths[3] > 0
    weeks = page.locator("#cohort-chart g.cohort")
    assert [weeks.nth(i).get_attribute("data-week") for i in range(weeks.count())] == ["2026-03-02", "2026-03-09"]
    first_week = weeks.nth(0).locator("rect.bar")
    assert [first_week.nth(i).get_attribute("data-count") for i in range(4)] == ["4", "2", "1", "1"]
    assert "Poster A" in page.locator("#channel-table").inner_text()
    screenshot(page, "funnel-report")
    assert external == []  # everything from our own server: no CDN
    # A marketer cannot change data: no add button on campaigns, and the add page is refused.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    assert page.locator(".object-tools a.addlink").count() == 0
    response = page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    assert response.status == 403
