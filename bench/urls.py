"""The product's URLs plus the yardsticks of bench/webhook.py.

/bench/bare/     answers "success" and nothing else;
/bench/minimal/  the least a safe-mode callback can do: decrypt with wechatpy, parse, one INSERT (no subscriber, no
                 checks beyond wechatpy's signature check) into the bench's own table.
"""

import xmltodict
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from wechatpy.crypto import WeChatCrypto

from wechat_crm.urls import urlpatterns as product_urlpatterns


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
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_minimal (dedupe_key, raw_xml) VALUES (%s, %s)", [key, xml])
    return HttpResponse("success", content_type="text/plain; charset=utf-8")


urlpatterns = [path("bench/bare/", bare), path("bench/minimal/", minimal), *product_urlpatterns]
