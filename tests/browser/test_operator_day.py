"""An operator's day in headless Chromium, on the embedded default as `make run` starts it: SQLite, the SQLite Celery
broker, gunicorn, a real Celery worker and beat, and the fake WeChat server, each a process of its own; the product's
own language (Simplified Chinese). One module-scoped app; the tests run in order:

1. log in and read the dashboard;
2. write and schedule an article push, and watch its progress until it is done;
3. see a subscriber's messages (text, image) arrive in the inbox, answer with a quick reply, and see the reply's
   status arrive without reloading;
4. read the subscriber's timeline and give them a new remark;
5. open the funnel report and download its CSV.

Each page is saved as a screenshot under var/screenshots/<test>/ (with the Chinese text rendered)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest
import requests

from tests.browser.conftest import require_chromium
from tests.fixtures.embedded import App, embedded_stack
from tests.fixtures.wechat_payloads import build_message, fake_told, sign_callback
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

PASSWORD = "operator-day-pw"
OPENID = "oOperatorDay_follower_0001"
TIMEOUT = 90_000


class DayApp(App):
    def message(self, kind: str, **fields) -> None:
        xml = build_message(kind, openid=OPENID, **fields)
        fake_told(self.fake, xml)  # WeChat knows what the person sent (its customer-service window)
        query, body = sign_callback(xml, mode="plain", token="demo_token")
        response = requests.post(
            f"{self.url}/wechat/callback/?{urlencode(query)}", data=body, headers={"Content-Type": "text/xml"},
            timeout=30,
        )  # fmt: skip
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_chromium()
    work = tmp_path_factory.mktemp("operator-day")
    # The product's default language (Simplified Chinese), for the screenshots.
    with embedded_stack(
        work, work / "var", password=PASSWORD, app_class=DayApp, threads=4, DJANGO_LANGUAGE_CODE="zh-hans"
    ) as day:
        fake = day.fake
        # A follower who wrote to us this morning, with a remark set by the team on WeChat.
        fake.add_users([{"openid": OPENID, "nickname": "李雷", "remark": "李老师", "subscribe": 1}])
        day.message("subscribe")
        wait_for(lambda: day.value(f"__import__('accounts.models', fromlist=['x']).Subscriber.objects"
                                   f".filter(openid='{OPENID}', remark='李老师').exists()"),
                 timeout=60, message="the profile was not fetched")  # fmt: skip
        day.shell(
            "from content.models import SendPolicy\n"
            "p = SendPolicy.current(); p.quiet_hours_enabled = False; p.save()\n"  # the test runs at any hour
            "from conversations.models import QuickReply\n"
            "QuickReply.objects.create(title='问候', text='您好,我是客服小张,很高兴为您服务。')\n"
            "from content.models import Article, MessageTemplate\n"
            "MessageTemplate.objects.create(title='新文章通知', wechat_template_id='TPL_new_article',"
            " article=Article.objects.filter(status='published').first(),"
            " fields=[{'key': 'first', 'value': '{{ article.title }}', 'color': ''}])\n"
        )
        yield day


@pytest.fixture
def page(app, browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(app.url) else None)
    page.goto(f"{app.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("form [type=submit]")
    page.wait_for_url(f"{app.url}/admin/")
    yield page
    assert external == []  # every asset from our own server: no CDN
    context.close()


def test_log_in_and_read_the_dashboard(app, page, screenshot):
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.wait_for_selector("#dashboard")
    assert page.locator("[data-kpi='followers-1']").inner_text() == "1"  # today's follow
    assert page.locator("#unanswered-count").inner_text().strip() == "0"
    # unfold's bundled Chart.js drew both charts on their canvases.
    page.wait_for_function("document.querySelectorAll('canvas.chart').length === 2")
    page.wait_for_function(
        "[...document.querySelectorAll('canvas.chart')].every(c => window.Chart && Chart.getChart(c))"
    )
    assert page.locator("#funnel-table tr[data-step='followed'] td").first.inner_text() == "1"
    assert "首页" in page.content() or "注销" in page.content() or "欢迎" in page.content()  # Chinese UI
    screenshot(page, "dashboard")


def _select2(page, field: str, text: str) -> None:
    """Pick `text` in an autocomplete (select2) field."""
    page.click(f".field-{field} .select2-selection, #id_{field} + .select2 .select2-selection")
    page.keyboard.type(text)
    page.click(f".select2-results__option:has-text('{text}')")


def test_write_and_schedule_an_article_push_and_watch_it_finish(app, page, screenshot):
    page.goto(f"{app.url}/admin/content/push/add/")
    page.fill("#id_name", "周五推送:AI 小方法")
    page.select_option("#id_channel", "template")
    _select2(page, "article", "把 AI 用在日常工作里")
    _select2(page, "template", "新文章通知")
    _select2(page, "segment", app.value("__import__('content.models', fromlist=['x']).Segment.objects.first().name"))
    screenshot(page, "push-written")
    page.click("[name=_continue]")
    page.wait_for_selector("[name=_schedule]")
    push_id = int(page.url.rstrip("/").split("/")[-2])
    page.click("[name=_schedule]")
    page.wait_for_selector("#push-progress")
    screenshot(page, "push-scheduled")
    # push_progress.js polls the JSON endpoint: the bar reaches 100 % and the text says the push is sent.
    page.wait_for_function(
        "document.querySelector('#push-progress .push-progress-bar').style.width === '100%'", timeout=TIMEOUT
    )
    page.wait_for_timeout(600)  # the bar's width transition
    assert app.get(f"/api/pushes/{push_id}/").json()["status"] == "sent"
    assert "1 / 1" in page.locator("#push-progress .push-progress-text").inner_text()
    screenshot(page, "push-done")
    sent = app.fake.calls(path="/cgi-bin/message/template/send")
    assert [c["body"]["touser"] for c in sent] == [OPENID]


def test_answer_a_conversation_and_see_the_reply_status_arrive_without_reloading(app, page, screenshot):
    page.goto(f"{app.url}/admin/conversations/conversation/")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    png = _png()
    app.fake.add_media("MEDIA_OPERATOR_DAY_1", png, "image/png")
    app.message("text", Content="你好,我想问一下会员怎么续费?")
    app.message("image", MediaId="MEDIA_OPERATOR_DAY_1", PicUrl="http://mmbiz.qpic.cn/day/1/0")
    # The inbox list notices the new conversation by itself.
    row = page.locator("#result_list a.conversation-link", has_text="李老师")
    row.wait_for(timeout=TIMEOUT)
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "inbox")

    row.click()
    page.wait_for_selector("#thread-items li.inbound")
    page.wait_for_function("[...document.querySelectorAll('img.thread-image')].some(i => i.naturalWidth === 160)")
    assert page.locator("#window-state").get_attribute("data-allowed") == "1"
    screenshot(page, "thread")
    page.click("button.quick-reply")
    assert page.input_value("#reply-text").startswith("您好,我是客服小张")
    app.fake.configure(latency_ms=4000)  # WeChat answers slowly: the page shows the reply before it is sent
    try:
        with page.expect_navigation():
            page.click("#send-reply")
        page.evaluate("window.__sameDocument = true")
        ours = page.locator("#thread-items li.outbound").last
        assert ours.get_attribute("data-status") in ("queued", "sending")
        screenshot(page, "reply-queued")
    finally:
        app.fake.configure(latency_ms=0)
    last = "(() => { const o = document.querySelectorAll('#thread-items li.outbound'); return o[o.length - 1]; })()"
    assert page.evaluate(f"{last}.textContent").count("您好,我是客服小张") == 1
    page.wait_for_function(f"{last}.dataset.status === 'sent'", timeout=TIMEOUT)
    assert page.evaluate("window.__sameDocument") is True  # the status came without a reload
    screenshot(page, "reply-sent")
    calls = [c for c in app.fake.calls(path="/cgi-bin/message/custom/send") if c["body"].get("touser") == OPENID]
    assert calls[-1]["body"]["text"]["content"].startswith("您好,我是客服小张")


def test_the_subscriber_page_tells_the_story_and_takes_a_new_remark(app, page, screenshot):
    subscriber_id = app.value(
        f"__import__('accounts.models', fromlist=['x']).Subscriber.objects.get(openid='{OPENID}').pk"
    )
    page.goto(f"{app.url}/admin/accounts/subscriber/{subscriber_id}/change/")
    kinds = page.locator("#subscriber-timeline li").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert {"follow", "message", "push", "reply", "stage"} <= set(kinds), kinds
    screenshot(page, "subscriber")
    page.fill("#id_remark", "李老师(续费意向)")
    with page.expect_navigation():
        page.click("button[name=_continue]")
    assert page.input_value("#id_remark") == "李老师(续费意向)"
    page.goto(f"{app.url}/admin/conversations/conversation/")
    page.locator("#result_list a.conversation-link", has_text="李老师(续费意向)").wait_for()


def test_open_the_funnel_report_and_download_its_csv(app, page, screenshot, tmp_path):
    page.goto(f"{app.url}/admin/campaigns/funnelreport/")
    page.wait_for_selector("#funnel-chart svg g.step")
    assert page.locator("#funnel-chart g.step").first.get_attribute("data-count") == "1"
    screenshot(page, "funnel-report")
    with page.expect_download() as download:
        page.click("a[href*='format=csv']")
    path = tmp_path / "funnel.csv"
    download.value.save_as(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["section", "group", "step"]
    assert any(r[2] == "followed" and "1" in r for r in rows[1:]), rows[:6]


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (37, 99, 235)).save(buffer, format="PNG")
    return buffer.getvalue()
