"""The WeChat callback endpoint. Thin: everything happens in inbound.handle_callback."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from wechat_crm.metrics import observe_callback

from . import inbound


@csrf_exempt
@observe_callback
def callback(request: HttpRequest) -> HttpResponse:
    return inbound.handle_callback(request)
