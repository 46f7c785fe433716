"""One domain error for the whole product, and its mapping to a JSON 4xx in the API."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from wechat_crm.wechat.errors import WeChatError, WeChatOutcomeUnknown, WeChatTransient


class ApplicationError(Exception):
    """A business rule refused the request. `message` is shown to the user as it is."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=getattr(exc, "message_dict", None) or exc.messages)
    if isinstance(exc, ProtectedError | RestrictedError):
        rows = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        used_by = sorted({str(obj._meta.verbose_name) for obj in rows if hasattr(obj, "_meta")})
        return Response(
            {
                "message": gettext("This is still in use (%(by)s): change those first.") % {"by": ", ".join(used_by)},
                "extra": {"used_by": used_by},
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status_code)
    if isinstance(exc, WeChatError):
        return _wechat_error_response(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": gettext("Validation error"), "extra": {"fields": response.data}}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"message": str(response.data["detail"]), "extra": {}}
    return response


def _wechat_error_response(exc: WeChatError) -> Response:
    """A WeChat call an API view made failed: 503 (with Retry-After) when WeChat may answer later, 502 when it
    refused; the body names WeChat's error code, never a traceback."""
    transient = isinstance(exc, WeChatTransient | WeChatOutcomeUnknown)
    response = Response(
        {"message": exc.message, "extra": {"errcode": exc.errcode}},
        status=status.HTTP_503_SERVICE_UNAVAILABLE if transient else status.HTTP_502_BAD_GATEWAY,
    )
    if transient:
        response["Retry-After"] = str(int(exc.retry_after or 30))
    return response
