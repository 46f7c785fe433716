"""The WeChat callback endpoint. Thin: everything happens in inbound.handle_callback."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from wechat_crm.metrics import observe_callback

from . import dispatch, inbound  # noqa: F401 - dispatch: see below

# The dispatch table and every app handler it names are imported with this module (after django.setup(): by the WSGI
# handler, or with the URLs), not by the first callback each worker answers: that import took about 0.3 s of CPU,
# which the first message after a start or a worker's restart waited for.


@csrf_exempt
@observe_callback
def callback(request: HttpRequest) -> HttpResponse:
    return inbound.handle_callback(request)
