"""Openids never appear in INFO logs (nor in any log line our handlers write), nor in our URLs."""

from __future__ import annotations

import io
import logging
import re
from logging.config import dictConfig

import pytest
from django.urls import get_resolver

from content.models import Push, Segment
from tests.accounts.factories import SubscriberFactory
from tests.content.factories import ArticleFactory, MessageTemplateFactory
from tests.content.push_factories import policy, send_now
from tests.fixtures.wechat_payloads import build_message
from wechat_crm.logging import mask_openids

OPENIDS = ["oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"]


@pytest.fixture
def log_stream(settings):
    """The product's LOGGING at DEBUG for our code, writing to a buffer (the handler's filters included)."""
    stream = io.StringIO()
    config = {**settings.LOGGING, "handlers": {"console": {**settings.LOGGING["handlers"]["console"],
                                                           "stream": stream}}}  # fmt: skip
    config["root"] = {"handlers": ["console"], "level": "INFO"}
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    dictConfig(config)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.django_db
def test_a_callback_and_a_push_log_no_openid(log_stream, wechat_callback, fake_wechat, settings):
    for openid in OPENIDS:
        assert wechat_callback.post(build_message("subscribe", openid=openid)).status_code == 200
        assert wechat_callback.post(build_message("text", openid=openid, Content="hi")).status_code == 200
    logging.getLogger("gunicorn.access").info('"POST /wechat/callback/?openid=%s&nonce=1 HTTP/1.1" 200 7', OPENIDS[0])
    wechat_callback.post(build_message("text", openid=OPENIDS[0], CreateTime="bad"))  # a rejection is logged
    policy()
    fake_wechat.add_users([{"openid": o, "subscribe": 1} for o in OPENIDS])
    article = ArticleFactory()
    segment = Segment.objects.create(name="all", rules={"op": "and", "rules": []})
    template = MessageTemplateFactory(article=article)
    push = Push.objects.create(name="p", channel="template", article=article, template=template, segment=segment)
    send_now(push)
    logging.getLogger("wechat_crm.test").warning("failed for %s", {"touser": OPENIDS[1]})
    output = log_stream.getvalue()
    assert "callback rejected" in output and "POST /wechat/callback/" in output  # the logs were captured
    for openid in OPENIDS:
        assert openid not in output


def test_the_mask_covers_query_strings_xml_json_and_bare_openids():
    text = (f"GET /x?openid={OPENIDS[0]}&a=1 <FromUserName><![CDATA[{OPENIDS[1]}]]></FromUserName> "
            f'{{"touser": "{OPENIDS[1]}"}} bare {OPENIDS[0]}.')  # fmt: skip
    masked = mask_openids(text)
    assert not any(o in masked for o in OPENIDS)
    assert "openid=***&a=1" in masked and "bare o***." in masked


def test_no_url_pattern_takes_an_openid():
    patterns: list[str] = []

    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if hasattr(p, "url_patterns"):
                walk(p, prefix + str(p.pattern))
            else:
                patterns.append(prefix + str(p.pattern))

    walk(get_resolver())
    assert patterns
    assert not [p for p in patterns if re.search("openid", p, re.IGNORECASE)]


@pytest.mark.django_db
def test_a_tracked_link_carries_no_openid(settings):
    from content.services import link_track

    sub = SubscriberFactory(openid=OPENIDS[0])
    url = link_track("https://example.com/a", subscriber_id=sub.pk, push_id=1)
    assert "/r/" in url and OPENIDS[0] not in url


# --- The real processes: gunicorn (its access and error logs) and a Celery worker --------------------------------

REAL_OPENIDS = ["oLogsGunicornAbCdEfGhIjKlMn0", "oLogsWorkerQrStUvWxYz0123456"]


@pytest.mark.slow
def test_gunicorn_and_a_worker_log_no_openid_signature_or_nonce(transactional_db, fake_wechat_server):
    """gunicorn and a worker run as in production; callbacks name openids in the URL (WeChat adds &openid=) and in the
    body, one is refused (a downgrade to plain mode), one is answered; the worker fetches their profiles. Every line
    of both logs is searched."""
    from django.db import connection

    from accounts.models import Subscriber
    from tests.fixtures.celery_worker import WorkerProcess
    from tests.fixtures.wechat_payloads import AES_KEY, APP_ID, TOKEN, sign_callback
    from tests.helpers import wait_for
    from tests.reliability.servers import AppServer, app_env, post

    assert all(len(o) == 28 for o in REAL_OPENIDS)
    fake_wechat_server.reset(appid=APP_ID, secret="log-test-secret", token=TOKEN, aes_key=AES_KEY)
    fake_wechat_server.add_users([{"openid": o, "subscribe": 1, "nickname": "Log"} for o in REAL_OPENIDS])
    env = app_env(
        connection.settings_dict,
        WECHAT_API_BASE_URL=fake_wechat_server.url,
        WECHAT_APP_SECRET="log-test-secret",
        PROFILE_FETCH_DELAY="0",
        LOG_LEVEL="DEBUG",
    )
    app, worker = AppServer(env), WorkerProcess(env)
    app.start()
    worker.start()
    secrets_seen: list[str] = []
    try:
        for openid in REAL_OPENIDS:
            for xml in (
                build_message("subscribe", openid=openid),
                build_message("text", openid=openid, Content=f"my id is {openid}"),
            ):
                query, body = sign_callback(xml, mode="safe")
                assert query["openid"] == openid  # in the URL, as WeChat sends it
                secrets_seen += [query["signature"], query["msg_signature"], query["nonce"]]
                assert post(app.url, query, body)[0] == 200
            query, body = sign_callback(build_message("text", openid=openid, Content="plain"), mode="plain")
            query["openid"] = openid
            secrets_seen += [query["signature"], query["nonce"]]
            assert post(app.url, query, body)[0] == 403  # refused: logged as a rejection
        wait_for(
            lambda: Subscriber.objects.filter(openid__in=REAL_OPENIDS, profile_fetched_at__isnull=False).count() == 2,
            timeout=60,
            message="the worker did not fetch the profiles",
        )
    finally:
        app.stop()
        worker.stop()
    logs = {"gunicorn": app.log(), "worker": worker.log()}
    assert "POST /wechat/callback/?" in logs["gunicorn"]  # the access log is on
    assert "callback rejected" in logs["gunicorn"]  # Django's own logs too
    assert "accounts.tasks" in logs["worker"]  # the worker logged its tasks
    for name, text in logs.items():
        for number, line in enumerate(text.splitlines(), 1):
            for secret in [*REAL_OPENIDS, *secrets_seen]:
                assert secret not in line, f"{name} log line {number} shows {secret}: {line}"
