"""The acceptance flows on the embedded default, as `make run` runs them on a fresh machine: no DATABASE_URL, no
REDIS_URL (SQLite and the SQLite Celery broker), a WECHAT_CRM_VAR_DIR that does not exist yet, DEBUG on; gunicorn, a
real Celery worker and beat, and the fake WeChat server, each a process of its own.

One module-scoped app; the tests run in order, each building on the previous one: a follow arrives on the callback,
its profile is fetched, the welcome journey's first step sends its message, a push reaches WeChat, the funnel report
and its drop-offs count the follower, the admin pages answer, and nothing was written outside WECHAT_CRM_VAR_DIR.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.fixtures.embedded import ROOT, embedded_environ, embedded_stack
from tests.fixtures.embedded import App as EmbeddedApp
from tests.fixtures.wechat_payloads import build_message, fake_told, sign_callback
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
OPENID = "oEmbedded_follower_0001"
PASSWORD = "embedded-demo-pw"


class App(EmbeddedApp):
    def callback(self, kind: str, **fields) -> requests.Response:
        xml = build_message(kind, openid=OPENID, **fields)
        fake_told(self.fake, xml)  # WeChat knows what the person sent (its customer-service window)
        query, body = sign_callback(xml, mode="plain", token="demo_token")
        return requests.post(
            f"{self.url}/wechat/callback/?{urlencode(query)}",
            data=body,
            headers={"Content-Type": "text/xml"},
            timeout=30,
        )


def _var_files_outside() -> dict[str, float]:
    default = ROOT / "var"
    return {str(p): p.stat().st_mtime for p in default.glob("*")} if default.exists() else {}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    started = time.monotonic()
    outside_before = _var_files_outside()
    work = tmp_path_factory.mktemp("embedded-acceptance")
    var_dir = work / "not" / "yet" / "there"  # every command must create it, or find it created
    with embedded_stack(work, var_dir, password=PASSWORD, app_class=App, DJANGO_DEBUG="true") as app:
        yield app
    # Nothing was written to ./var: the setting was honoured by every command.
    outside_after = _var_files_outside()
    changed = {p for p, m in outside_after.items() if outside_before.get(p) != m and p.endswith(("3", "schedule"))}
    assert not changed, changed
    print(f"embedded acceptance: {time.monotonic() - started:.1f} s")


def test_make_run_creates_the_var_dir_the_setting_names(tmp_path):
    target = tmp_path / "elsewhere" / "var"
    env = embedded_environ(target)
    dry_run = subprocess.run(["make", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert f'mkdir -p "{target}"' in dry_run.stdout, dry_run.stdout + dry_run.stderr
    clean = subprocess.run(["make", "-n", "clean"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert f'"{target}"/*.sqlite3*' in clean.stdout


def test_every_command_writes_under_wechat_crm_var_dir(embedded):
    assert (embedded.var_dir / "wechat_crm.sqlite3").exists()
    assert (embedded.var_dir / "static" / "admin").is_dir()
    assert embedded.get("/api/funnel/").status_code == 200  # a task's broker and the beat's schedule exist once used
    wait_for(lambda: (embedded.var_dir / "celery-broker.sqlite3").exists(), timeout=30)
    wait_for(lambda: list(embedded.var_dir.glob("celerybeat-schedule*")), timeout=30)
    assert embedded.value("__import__('django.db').db.connection.vendor") == "sqlite"


def test_follow_on_the_callback_then_the_worker_fetches_the_profile(embedded):
    embedded.fake.add_users([{"openid": OPENID, "nickname": "Embedded Alice", "subscribe": 1, "language": "zh_CN"}])
    response = embedded.callback("subscribe")
    assert response.status_code == 200
    wait_for(
        lambda: [r for r in embedded.get("/api/subscribers/", openid=OPENID).json()["results"] if r["nickname"]],
        timeout=60,
        message="the worker did not fetch the profile",
    )
    row = embedded.get("/api/subscribers/", openid=OPENID).json()["results"][0]
    assert row["nickname"] == "Embedded Alice" and row["is_following"] and row["stage"] == "followed"
    assert embedded.fake.count("/cgi-bin/user/info/batchget") >= 1
    # A message and a reply (an auto-reply rule of the demo, or none): the callback answers either way.
    assert embedded.callback("text", Content="你好").status_code == 200


def test_the_welcome_journey_sends_its_first_step(embedded):
    (welcome,) = [j for j in embedded.get("/api/journeys/").json()["results"] if j["trigger"] == "follow"]

    def first_step_done() -> bool:
        return embedded.get(f"/api/journeys/{welcome['id']}/report/").json()["steps"][0]["done"] >= 1

    wait_for(first_step_done, timeout=90, message="the welcome journey's first step did not run")
    assert embedded.get(f"/api/journeys/{welcome['id']}/report/").json()["entered"] == 1
    wait_for(lambda: embedded.fake.count("/cgi-bin/message/custom/send") >= 1, timeout=60)


def test_a_push_reaches_wechat_end_to_end(embedded):
    push_id = embedded.value(
        f"__import__('tests.wechat_crm.embedded_push', fromlist=['x']).push_scheduled(openid='{OPENID}')"
    )
    wait_for(
        lambda: embedded.get(f"/api/pushes/{push_id}/").json()["status"] in ("sent", "partially_failed"),
        timeout=90,
        message="the push did not finish",
    )
    assert embedded.get(f"/api/pushes/{push_id}/").json()["status"] == "sent"
    sent = [c for c in embedded.fake.calls(path="/cgi-bin/message/template/send") if OPENID in json.dumps(c)]
    assert len(sent) == 1
    report = embedded.get(f"/api/pushes/{push_id}/report/")
    assert report.status_code == 200, report.text


def test_funnel_report_and_dropoffs_count_the_follower(embedded):
    response = embedded.post(
        "/api/conversions/",
        {"openid": OPENID, "type": "purchase", "external_id": "emb-1", "value": "12.50",
         "occurred_at": "2099-01-01T00:00:00Z"},
    )  # fmt: skip
    assert response.status_code in (201, 422), response.text
    for breakdown in ("", "channel", "campaign", "content", "cohort_week"):
        report = embedded.get("/api/funnel/", breakdown=breakdown)
        assert report.status_code == 200, (breakdown, report.text[:500])
        assert report.json()["steps"][0]["count"] >= 1
    dropoffs = embedded.get("/api/funnel/dropoffs/", step="followed")
    assert dropoffs.status_code == 200
    download = embedded.get("/api/funnel/dropoffs/", step="followed", format="csv")
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert isinstance(rows, list)
    assert embedded.get("/api/funnel/attribution/", by="channel").status_code == 200
    # API errors are JSON under DEBUG.
    missing = embedded.get("/api/nothing-here/")
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("application/json")
    bad = embedded.get("/api/funnel/", window_days="lots")
    assert bad.status_code == 400 and "window_days" in bad.json()["extra"]["fields"]


def test_the_admin_pages_answer(embedded):
    admin = requests.Session()
    login = admin.get(f"{embedded.url}/admin/login/", timeout=30)
    assert login.status_code == 200
    response = admin.post(
        f"{embedded.url}/admin/login/?next=/admin/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": admin.cookies["csrftoken"],
              "next": "/admin/"},
        headers={"Referer": f"{embedded.url}/admin/login/"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 200 and "/admin/logout/" in response.text, response.text[:2000]
    pages = sorted(set(re.findall(r'href="(/admin/[a-z_]+/[a-z_]+/)"', response.text)))
    assert len(pages) >= 15, pages
    failed = {}
    for page in pages:
        answer = admin.get(embedded.url + page, timeout=60)
        if answer.status_code != 200:
            failed[page] = answer.status_code
        for change in sorted(set(re.findall(rf'href="({re.escape(page)}\d+/change/)"', answer.text)))[:1]:
            if (code := admin.get(embedded.url + change, timeout=60).status_code) != 200:
                failed[change] = code
    assert failed == {}
    report = admin.get(f"{embedded.url}/admin/campaigns/funnelreport/", timeout=60)
    assert report.status_code == 200
    download = admin.get(f"{embedded.url}/admin/campaigns/funnelreport/?format=csv", timeout=60)
    assert download.status_code == 200 and download.text.startswith("section,group,step")
