"""The product's URLs plus the yardsticks of bench/webhook.py.

/bench/bare/     answers "success" and nothing else;
/bench/minimal/  the least a safe-mode callback can do: decrypt with wechatpy, parse, one INSERT (no subscriber, no
                 checks beyond wechatpy's signature check) into the bench's own table, in one round trip (like the
                 product's callback it skips Django's per-request connection health check, a SELECT 1);
/bench/callback-without-replay-check/  the product's callback with its replay check switched off, for
                 `bench/webhook.py --replay-check-cost` only: what the check costs.
"""

import contextlib
from collections.abc import Iterator

import xmltodict
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from wechatpy.crypto import WeChatCrypto

from wechat_crm.urls import urlpatterns as product_urlpatterns
from wechat_crm.wechat import inbound
from wechat_crm.wechat.views import callback


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("success", content_type="text/plain; charset=utf-8")


@csrf_exempt
def minimal(request: HttpRequest) -> HttpResponse:
    query = request.GET
    cipher = WeChatCrypto(settings.WECHAT_TOKEN, settings.WECHAT_ENCODING_AES_KEY, settings.WECHAT_APP_ID)
    xml = cipher.decrypt_message(request.body, query["msg_signature"], query["timestamp"], query["nonce"])
    message = xmltodict.parse(xml)["xml"]
    key = message.get("MsgId") or f"{message['FromUserName']}:{message['CreateTime']}:{message.get('Event', '')}"
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:  # autocommit, as Django's own cursor
        cursor.execute("INSERT INTO bench_minimal (dedupe_key, raw_xml) VALUES (%s, %s)", [key, xml])
    return HttpResponse("success", content_type="text/plain; charset=utf-8")


@contextlib.contextmanager
def _replay_check_off() -> Iterator[None]:
    """The replay check does nothing for the time of one request (gunicorn's sync workers serve one at a time)."""
    if hasattr(inbound, "ReplayCheck"):
        original = inbound.ReplayCheck.__dict__["send"]
        inbound.ReplayCheck.send = classmethod(lambda cls, *args, **kwargs: cls(""))
        try:
            yield
        finally:
            inbound.ReplayCheck.send = original
    else:  # the product before the ReplayCheck class (commit 87dc1d6), so that this bench measures it too
        original = inbound._refuse_replay
        inbound._refuse_replay = lambda *args: None
        try:
            yield
        finally:
            inbound._refuse_replay = original


@csrf_exempt
def callback_without_replay_check(request: HttpRequest) -> HttpResponse:
    with _replay_check_off():
        return callback(request)


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/minimal/", minimal),
    path("bench/callback-without-replay-check/", callback_without_replay_check),
    *product_urlpatterns,
]
